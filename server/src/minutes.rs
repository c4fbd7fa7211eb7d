//! The minutes as Markdown, for the secretary and facilitators to download.
//!
//! The content is people's own words, so the Markdown escapes anything that a renderer
//! could take for markup or HTML: the minutes read as text, whatever was typed.

use std::fmt::Write;

use caucus_protocol::api::{Minutes, MinutesKind};

/// Renders the minutes as a Markdown document.
pub fn to_markdown(minutes: &Minutes) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&minutes.title));
    let state = if minutes.ended { "ended" } else { "in progress" };
    let _ = writeln!(
        out,
        "Caucuses: {} and {}. The session is {state}.\n",
        escape(&minutes.caucuses.a),
        escape(&minutes.caucuses.b)
    );
    for round in &minutes.rounds {
        let topic = round.topic.as_deref().map_or_else(|| "no topic set".to_owned(), escape);
        let _ = writeln!(out, "## Round {}: {topic}\n", round.round);
        let _ = writeln!(out, "Opened {}.\n", timestamp(round.opened_at));
        if round.feedback.is_empty() {
            out.push_str("Not reconvened yet.\n\n");
        }
        for carried in &round.feedback {
            let _ = writeln!(out, "### {}\n", escape(&carried.label));
            if carried.points.is_empty() {
                out.push_str("No points carried.\n\n");
                continue;
            }
            for (index, point) in carried.points.iter().enumerate() {
                let _ = writeln!(out, "{}. {}", index + 1, escape(point));
            }
            out.push('\n');
        }
    }
    out.push_str("## Plenary\n\n");
    if minutes.transcript.is_empty() {
        out.push_str("Nothing was said in the plenary.\n");
    }
    for entry in &minutes.transcript {
        let who = entry.by.as_deref().map_or_else(|| "Facilitators".to_owned(), escape);
        let what = match entry.kind {
            MinutesKind::Message => String::new(),
            MinutesKind::Announcement => " (announcement)".into(),
            MinutesKind::TopicProposed => " (proposed a topic)".into(),
            MinutesKind::TopicSet => " (set the topic)".into(),
        };
        let _ = writeln!(out, "- {} **{who}**{what}: {}", timestamp(entry.at), escape(&entry.text));
    }
    out
}

/// Escapes Markdown and HTML so that text renders as typed. Line breaks become spaces
/// so that each entry stays one list item.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-26 14:05 UTC` from Unix milliseconds.
fn timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_calendar_dates_in_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00 UTC");
        assert_eq!(timestamp(1_795_671_624_000), "2026-11-26 05:40 UTC");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(escape("<img src=x onerror=alert(1)>"), "&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(escape("**bold** [link](x)\nnext"), "\\*\\*bold\\*\\* \\[link\\](x) next");
    }
}
