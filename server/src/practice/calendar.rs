//! A community's series as an iCalendar file (RFC 5545), for people's own calendars.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, Property};

use super::db::SeriesRow;

/// The series as a calendar named after the community. Each event links to its session
/// in the web client; its `UID` is stable, so a calendar that imports the file again
/// updates the events instead of doubling them.
pub fn series_calendar(community: &str, sessions: &[SeriesRow], public_url: &str, host: &str) -> String {
    let mut calendar = Calendar::new();
    // Not `Calendar::name`: it writes `NAME` unescaped (its crate knows no value type
    // for it), so a name with a line break could add events of its own. Marked as
    // text, it is escaped like every other text.
    calendar.append_property(Property::new("NAME", community).add_parameter("VALUE", "TEXT").done());
    calendar.append_property(Property::new("X-WR-CALNAME", community));
    for session in sessions {
        let (Some(starts), Some(ends)) = (
            DateTime::<Utc>::from_timestamp(session.starts_at, 0),
            DateTime::<Utc>::from_timestamp(session.starts_at + i64::from(session.duration_minutes) * 60, 0),
        ) else {
            continue;
        };
        let mut event = Event::new();
        event
            .uid(&format!("{}@{host}", session.session))
            .summary(&session.title)
            .starts(starts)
            .ends(ends)
            .url(&format!("{public_url}/#session={}", session.session));
        if let Some(agenda) = &session.agenda {
            event.description(agenda);
        }
        calendar.push(event.done());
    }
    calendar.done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_is_an_event_with_a_stable_uid_and_a_link() {
        let sessions = vec![SeriesRow {
            session: "s-abc".into(),
            title: "Circle, March".into(),
            starts_at: 1_795_000_000,
            duration_minutes: 90,
            agenda: Some("Terms review; caucuses".into()),
        }];
        let text = series_calendar(
            "Anti-racism practice",
            &sessions,
            "https://caucus.example.org",
            "caucus.example.org",
        );
        assert!(text.starts_with("BEGIN:VCALENDAR"), "{text}");
        assert!(text.contains("UID:s-abc@caucus.example.org"), "{text}");
        assert!(text.contains("SUMMARY:Circle\\, March"), "commas are escaped: {text}");
        assert!(text.contains("DTSTART:20261118T"), "{text}");
        assert!(text.contains("URL:https://caucus.example.org/#session=s-abc"), "{text}");
        assert!(text.contains("DESCRIPTION:Terms review\\; caucuses"), "{text}");
    }

    #[test]
    fn a_name_with_line_breaks_adds_no_event_of_its_own() {
        let forged = "Team\nBEGIN:VEVENT\nUID:fake@x\nURL:https://evil.example/login\nEND:VEVENT";
        let text = series_calendar(forged, &[], "https://caucus.example.org", "caucus.example.org");
        for forged in ["BEGIN:VEVENT", "UID:", "URL:", "END:VEVENT"] {
            assert!(text.lines().all(|line| !line.starts_with(forged)), "{forged} in {text}");
        }
        assert!(text.contains("NAME;VALUE=TEXT:Team\\nBEGIN:VEVENT"), "{text}");
        assert!(text.contains("X-WR-CALNAME:Team\\nBEGIN:VEVENT"), "{text}");
    }
}
