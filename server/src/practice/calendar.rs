//! A community's series as an iCalendar file (RFC 5545), for people's own calendars.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike};

use super::db::SeriesRow;

/// The series as a calendar named after the community. Each event links to its session
/// in the web client; its `UID` is stable, so a calendar that imports the file again
/// updates the events instead of doubling them.
pub fn series_calendar(community: &str, sessions: &[SeriesRow], public_url: &str, host: &str) -> String {
    let mut calendar = Calendar::new();
    calendar.name(community);
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
}
