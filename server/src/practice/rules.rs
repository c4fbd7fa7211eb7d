//! The pure rules of the practice: who may do what in a community, whether someone
//! must accept the terms of reference before entering a session, what changed between
//! two versions, and the order a community's sessions are shown in.

use caucus_protocol::Role;
use caucus_protocol::community::{CommunityRole, ScheduledSession};

use crate::session::JoinAs;

/// Co-chairs lead: they invite, publish terms and schedule sessions.
pub fn may_lead(role: CommunityRole) -> bool {
    role == CommunityRole::CoChair
}

/// Co-chairs and the secretary see who has accepted the terms.
pub fn sees_acceptance(role: CommunityRole) -> bool {
    matches!(role, CommunityRole::CoChair | CommunityRole::Secretary)
}

/// A person's seat in the community's sessions: co-chairs facilitate them, and the
/// secretary is their secretary, who exports the minutes.
pub fn session_seat(role: CommunityRole) -> JoinAs {
    match role {
        CommunityRole::CoChair => Role::Facilitator.into(),
        CommunityRole::Secretary => JoinAs { role: Role::Member, secretary: true },
        CommunityRole::Member => Role::Member.into(),
    }
}

/// Whether someone must accept the terms before entering a session: there are terms,
/// and they have not accepted the current version.
pub fn must_accept(current: Option<u32>, accepted: Option<u32>) -> bool {
    match current {
        Some(current) => accepted != Some(current),
        None => false,
    }
}

/// What changed from one version of the terms to another, as a unified diff; `None`
/// when there is nothing earlier to compare with, or nothing changed.
pub fn changes(before: Option<&str>, after: &str, before_version: u32, after_version: u32) -> Option<String> {
    let before = before?;
    if before == after {
        return None;
    }
    let diff = similar::TextDiff::from_lines(before, after);
    Some(
        diff.unified_diff()
            .context_radius(2)
            .header(&format!("version {before_version}"), &format!("version {after_version}"))
            .to_string(),
    )
}

/// Upcoming sessions soonest first, then past ones latest first. A session counts as
/// past once it has ended or its planned time is over.
pub fn order_sessions(now: i64, mut sessions: Vec<ScheduledSession>) -> Vec<ScheduledSession> {
    let is_past = |session: &ScheduledSession| {
        session.phase == caucus_protocol::Phase::Ended
            || session.starts_at + i64::from(session.duration_minutes) * 60 < now
    };
    sessions.sort_by(|a, b| match (is_past(a), is_past(b)) {
        (false, false) => a.starts_at.cmp(&b.starts_at),
        (true, true) => b.starts_at.cmp(&a.starts_at),
        (past_a, _) => past_a.cmp(&!past_a),
    });
    sessions
}

/// Whether the secretary's tools are this person's: the secretary's and co-chairs'.
pub fn may_record(role: CommunityRole) -> bool {
    matches!(role, CommunityRole::CoChair | CommunityRole::Secretary)
}

/// Whether `text` is a calendar date written `YYYY-MM-DD`.
pub fn is_date(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() && text.len() == 10
}

/// A name for a community or a session title: trimmed, with a letter or digit, short
/// enough.
pub fn check_name(what: &str, text: &str, max_chars: usize) -> Result<String, String> {
    let text = text.trim();
    if !text.chars().any(char::is_alphanumeric) {
        return Err(format!("{what} needs at least one letter or digit"));
    }
    if text.chars().count() > max_chars {
        return Err(format!("{what} may be at most {max_chars} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} is one line, without control characters"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use caucus_protocol::{Phase, SessionId};

    use super::*;

    fn session(id: &str, starts_at: i64, phase: Phase) -> ScheduledSession {
        ScheduledSession {
            session: SessionId::new(id).unwrap(),
            title: id.into(),
            starts_at,
            duration_minutes: 60,
            agenda: None,
            phase,
        }
    }

    #[test]
    fn terms_must_be_accepted_again_after_a_new_version() {
        assert!(!must_accept(None, None), "no terms, nothing to accept");
        assert!(must_accept(Some(1), None));
        assert!(!must_accept(Some(1), Some(1)));
        assert!(must_accept(Some(2), Some(1)));
    }

    #[test]
    fn changes_show_what_a_new_version_says_differently() {
        let before = "We meet monthly.\nWe listen first.\n";
        let after = "We meet monthly.\nWe listen first.\nWe keep caucus talk in the caucus.\n";
        let diff = changes(Some(before), after, 1, 2).unwrap();
        assert!(diff.contains("+We keep caucus talk in the caucus."), "{diff}");
        assert!(diff.contains("version 1") && diff.contains("version 2"), "{diff}");
        assert_eq!(changes(None, after, 0, 1), None);
        assert_eq!(changes(Some(after), after, 2, 2), None);
    }

    #[test]
    fn upcoming_sessions_come_first_soonest_first_then_the_past_latest_first() {
        let now = 10_000;
        let ordered = order_sessions(
            now,
            vec![
                session("s-past-old", 1_000, Phase::Ended),
                session("s-later", 50_000, Phase::Gathering),
                session("s-past-new", 5_000, Phase::Ended),
                session("s-next", 20_000, Phase::Gathering),
            ],
        );
        let ids: Vec<&str> = ordered.iter().map(|session| session.session.as_str()).collect();
        assert_eq!(ids, ["s-next", "s-later", "s-past-new", "s-past-old"]);
    }

    #[test]
    fn only_co_chairs_lead_and_facilitate() {
        assert!(may_lead(CommunityRole::CoChair) && !may_lead(CommunityRole::Secretary));
        assert!(sees_acceptance(CommunityRole::Secretary) && !sees_acceptance(CommunityRole::Member));
        assert_eq!(
            session_seat(CommunityRole::CoChair),
            JoinAs { role: Role::Facilitator, secretary: false }
        );
        assert_eq!(session_seat(CommunityRole::Secretary), JoinAs { role: Role::Member, secretary: true });
        assert_eq!(session_seat(CommunityRole::Member), JoinAs { role: Role::Member, secretary: false });
        assert!(may_record(CommunityRole::Secretary) && !may_record(CommunityRole::Member));
        assert!(
            is_date("2027-03-31") && !is_date("2027-02-30") && !is_date("31/03/2027") && !is_date("2027-3-1")
        );
        assert!(check_name("a name", "  ", 10).is_err());
        assert_eq!(check_name("a name", " Circle ", 10).unwrap(), "Circle");
        for broken in ["Team\nBEGIN:VEVENT", "Team\r\nX", "Tab\there", "Nul\0"] {
            assert!(check_name("a name", broken, 80).unwrap_err().contains("one line"), "{broken:?}");
        }
    }
}
