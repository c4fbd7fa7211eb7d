//! The community archive: search, and the whole series as one Markdown document.
//! Carried points are attributed to their caucus, never to a person.

use caucus_protocol::community::{Action, Archive, PastSession};

/// Keeps only what mentions every word of `query` (ignoring case): a round stays if its
/// topic or a carried point matches, with only the matching points unless the topic
/// does; a session stays if any round does; an action stays if its text, owner or due
/// date does.
pub fn search(mut archive: Archive, query: &str) -> Archive {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return archive;
    }
    let matches = |text: &str| {
        let text = text.to_lowercase();
        words.iter().all(|word| text.contains(word))
    };
    for session in &mut archive.sessions {
        session.rounds.retain_mut(|round| {
            if round.topic.as_deref().is_some_and(matches) {
                return true;
            }
            for carried in &mut round.feedback {
                carried.points.retain(|point| matches(point));
            }
            round.feedback.retain(|carried| !carried.points.is_empty());
            !round.feedback.is_empty()
        });
    }
    archive.sessions.retain(|session| !session.rounds.is_empty() || matches(&session.title));
    archive.actions.retain(|action| {
        matches(&action.text)
            || action.owner.as_deref().is_some_and(matches)
            || action.due.as_deref().is_some_and(matches)
    });
    archive.query = Some(query.to_owned());
    archive
}

/// Text as Markdown that shows as typed: every character Markdown reads is escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.' | '!'
            | '|' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '\n' | '\r' => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

fn date(seconds: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0)
        .map_or_else(|| seconds.to_string(), |at| at.format("%Y-%m-%d").to_string())
}

fn session_markdown(out: &mut String, session: &PastSession) {
    out.push_str(&format!("\n## {} ({})\n", escape(&session.title), date(session.starts_at)));
    if session.rounds.is_empty() {
        out.push_str("\nNo rounds.\n");
    }
    for round in &session.rounds {
        let topic = round.topic.as_deref().map_or_else(|| "no topic".to_owned(), escape);
        out.push_str(&format!("\n### Round {}: {topic}\n", round.round));
        for carried in &round.feedback {
            if carried.points.is_empty() {
                out.push_str(&format!("\n{}: nothing carried.\n", escape(&carried.label)));
                continue;
            }
            out.push_str(&format!("\n{}:\n\n", escape(&carried.label)));
            for (index, point) in carried.points.iter().enumerate() {
                out.push_str(&format!("{}. {}\n", index + 1, escape(point)));
            }
        }
    }
}

fn action_markdown(action: &Action) -> String {
    let mut line =
        format!("- [{}] {}", if action.closed_at.is_some() { "x" } else { " " }, escape(&action.text));
    if let Some(owner) = &action.owner {
        line.push_str(&format!(" (owner: {})", escape(owner)));
    }
    if let Some(due) = &action.due {
        line.push_str(&format!(" (due {due})"));
    }
    line.push('\n');
    line
}

/// The archive as one Markdown document: the whole series' rounds and carried points,
/// then the actions.
pub fn to_markdown(archive: &Archive) -> String {
    let mut out = format!("# {}: archive\n", escape(&archive.name));
    if let Some(query) = &archive.query {
        out.push_str(&format!("\nWhat mentions: {}\n", escape(query)));
    }
    for session in &archive.sessions {
        session_markdown(&mut out, session);
    }
    out.push_str("\n## Actions\n\n");
    if archive.actions.is_empty() {
        out.push_str("None.\n");
    }
    for action in &archive.actions {
        out.push_str(&action_markdown(action));
    }
    out
}

#[cfg(test)]
mod tests {
    use caucus_protocol::api::{CarriedPoints, MinutesRound};
    use caucus_protocol::{Caucus, SessionId};

    use super::*;

    fn archive() -> Archive {
        Archive {
            community: "c-1".into(),
            name: "Practice".into(),
            query: None,
            sessions: vec![PastSession {
                session: SessionId::new("s-1").unwrap(),
                title: "March".into(),
                starts_at: 1_795_000_000,
                rounds: vec![MinutesRound {
                    round: 1,
                    topic: Some("Naming racism in meetings".into()),
                    opened_at: 0,
                    feedback: vec![
                        CarriedPoints {
                            caucus: Caucus::A,
                            label: "Racially minoritised caucus".into(),
                            points: vec!["We are tired of explaining".into(), "Credit *our* ideas".into()],
                        },
                        CarriedPoints {
                            caucus: Caucus::B,
                            label: "White caucus".into(),
                            points: vec!["We stay quiet".into()],
                        },
                    ],
                }],
            }],
            actions: vec![Action {
                id: 1,
                text: "Draft a recruitment checklist".into(),
                owner: Some("Sam".into()),
                due: Some("2027-04-01".into()),
                opened_in: None,
                opened_at: 0,
                closed_at: None,
                closed_in: None,
            }],
        }
    }

    #[test]
    fn search_keeps_only_what_mentions_every_word() {
        let found = search(archive(), "QUIET stay");
        let round = &found.sessions[0].rounds[0];
        assert_eq!(round.feedback.len(), 1, "only the white caucus's point matches");
        assert_eq!(round.feedback[0].points, ["We stay quiet"]);
        assert!(found.actions.is_empty());
        let by_topic = search(archive(), "meetings");
        assert_eq!(
            by_topic.sessions[0].rounds[0].feedback.len(),
            2,
            "a matching topic keeps its round whole"
        );
        let action = search(archive(), "checklist");
        assert!(action.sessions.is_empty() && action.actions.len() == 1);
        assert_eq!(search(archive(), "  ").query, None);
    }

    #[test]
    fn markdown_attributes_points_to_caucuses_and_escapes_text() {
        let text = to_markdown(&archive());
        assert!(text.contains("### Round 1: Naming racism in meetings"), "{text}");
        assert!(text.contains("Racially minoritised caucus:\n\n1. We are tired of explaining"), "{text}");
        assert!(text.contains("Credit \\*our\\* ideas"), "{text}");
        assert!(text.contains("- [ ] Draft a recruitment checklist (owner: Sam) (due 2027-04-01)"), "{text}");
    }
}
