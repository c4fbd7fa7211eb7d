//! Golden-JSON tests: every example in `docs/PROTOCOL.md` must decode into the protocol
//! types and encode back to the same JSON, so the document and the types cannot drift.
//!
//! An example is a fenced `json` block directly after a marker line:
//! `<!-- golden: client -->` (a [`ClientFrame`]), `<!-- golden: server -->` (a
//! [`ServerMessage`]), or `<!-- golden: api:NAME -->` for an HTTP body.

use caucus_protocol::api::{
    AddFacilitator, ApiError, AttachSeat, CreateSession, EmailSent, EmailSignIn, EmailVerify,
    FacilitatedSessions, FacilitatorAdded, GrantFacilitator, InviteInfo, InviteLink, JoinRequest, Joined, Me,
    Minutes, MySessions, Rename, SeatAttached, SessionCreated, SignInOptions,
};
use caucus_protocol::community::{
    AcceptTerms, Action, AddCommunityPerson, Archive, CloseAction, Communities, CommunityEntry,
    CommunityInvite, CommunityPage, CommunityPerson, CreateCommunity, EnteredSession, FromLastTime,
    JoinCommunity, PublishTerms, RecordAction, ScheduleSession, ScheduledSession, TermsStatus,
};
use caucus_protocol::{ClientFrame, EncodedEvent, ServerMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

struct Example {
    kind: String,
    json: String,
    line: usize,
}

fn examples() -> Vec<Example> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let text = std::fs::read_to_string(path).expect("docs/PROTOCOL.md is readable");
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim();
        if let Some(kind) = line.strip_prefix("<!-- golden:").and_then(|rest| rest.strip_suffix("-->")) {
            assert_eq!(
                lines.get(index + 1).map(|l| l.trim()),
                Some("```json"),
                "line {}: a golden marker must be followed by a ```json block",
                index + 1
            );
            let start = index + 2;
            let end = (start..lines.len()).find(|&i| lines[i].trim() == "```").expect("json block is closed");
            examples.push(Example {
                kind: kind.trim().to_owned(),
                json: lines[start..end].join("\n"),
                line: index + 1,
            });
            index = end;
        }
        index += 1;
    }
    examples
}

fn round_trip<T: DeserializeOwned + Serialize>(example: &Example) -> Value {
    let value: T = serde_json::from_str(&example.json).unwrap_or_else(|err| {
        panic!("PROTOCOL.md line {}: does not decode: {err}\n{}", example.line, example.json)
    });
    serde_json::to_value(&value).unwrap()
}

#[test]
fn every_protocol_example_round_trips() {
    let examples = examples();
    assert!(examples.len() >= 40, "expected examples for every message, found {}", examples.len());
    for example in &examples {
        let original: Value = serde_json::from_str(&example.json)
            .unwrap_or_else(|err| panic!("PROTOCOL.md line {}: not JSON: {err}", example.line));
        let encoded = match example.kind.as_str() {
            "client" => {
                let frame = ClientFrame::decode(&example.json).unwrap_or_else(|err| {
                    panic!("PROTOCOL.md line {}: {err}\n{}", example.line, example.json)
                });
                let mut encoded: Value = serde_json::from_str(&frame.encode()).unwrap();
                // A signed-in browser's `hello` leaves `token` out; the type reads that as
                // empty and writes it back as `""`.
                if encoded["type"] == "hello" && original.get("token").is_none() && encoded["token"] == "" {
                    encoded.as_object_mut().unwrap().remove("token");
                }
                encoded
            }
            "server" => round_trip::<ServerMessage>(example),
            "api:create_session" => round_trip::<CreateSession>(example),
            "api:session_created" => round_trip::<SessionCreated>(example),
            "api:invite_info" => round_trip::<InviteInfo>(example),
            "api:invite_link" => round_trip::<InviteLink>(example),
            "api:facilitated_sessions" => round_trip::<FacilitatedSessions>(example),
            "api:add_facilitator" => round_trip::<AddFacilitator>(example),
            "api:facilitator_added" => round_trip::<FacilitatorAdded>(example),
            "api:join_request" => round_trip::<JoinRequest>(example),
            "api:joined" => round_trip::<Joined>(example),
            "api:error" => round_trip::<ApiError>(example),
            "api:minutes" => round_trip::<Minutes>(example),
            "api:sign_in_options" => round_trip::<SignInOptions>(example),
            "api:email_sign_in" => round_trip::<EmailSignIn>(example),
            "api:email_sent" => round_trip::<EmailSent>(example),
            "api:email_verify" => round_trip::<EmailVerify>(example),
            "api:me" => round_trip::<Me>(example),
            "api:rename" => round_trip::<Rename>(example),
            "api:my_sessions" => round_trip::<MySessions>(example),
            "api:attach_seat" => round_trip::<AttachSeat>(example),
            "api:seat_attached" => round_trip::<SeatAttached>(example),
            "api:grant_facilitator" => round_trip::<GrantFacilitator>(example),
            "api:facilitator_grants" => round_trip::<caucus_protocol::api::FacilitatorGrants>(example),
            "api:account_export" => round_trip::<caucus_protocol::api::AccountExport>(example),
            "api:create_community" => round_trip::<CreateCommunity>(example),
            "api:community_invite" => round_trip::<CommunityInvite>(example),
            "api:communities" => round_trip::<Communities>(example),
            "api:community_page" => round_trip::<CommunityPage>(example),
            "api:join_community" => round_trip::<JoinCommunity>(example),
            "api:community_entry" => round_trip::<CommunityEntry>(example),
            "api:add_community_person" => round_trip::<AddCommunityPerson>(example),
            "api:community_person" => round_trip::<CommunityPerson>(example),
            "api:terms_status" => round_trip::<TermsStatus>(example),
            "api:publish_terms" => round_trip::<PublishTerms>(example),
            "api:accept_terms" => round_trip::<AcceptTerms>(example),
            "api:schedule_session" => round_trip::<ScheduleSession>(example),
            "api:scheduled_session" => round_trip::<ScheduledSession>(example),
            "api:entered_session" => round_trip::<EnteredSession>(example),
            "api:record_action" => round_trip::<RecordAction>(example),
            "api:action" => round_trip::<Action>(example),
            "api:close_action" => round_trip::<CloseAction>(example),
            "api:actions" => round_trip::<Vec<Action>>(example),
            "api:from_last_time" => round_trip::<FromLastTime>(example),
            "api:archive" => round_trip::<Archive>(example),
            "api:calendar_feed" => round_trip::<caucus_protocol::community::CalendarFeed>(example),
            "api:erased_from_community" => {
                round_trip::<caucus_protocol::community::ErasedFromCommunity>(example)
            }
            other => panic!("PROTOCOL.md line {}: unknown golden kind `{other}`", example.line),
        };
        assert_eq!(encoded, original, "PROTOCOL.md line {}: re-encoding changed the JSON", example.line);
    }
}

#[test]
fn an_event_frame_spliced_from_its_stored_body_is_the_frame_serde_writes() {
    let mut events = 0;
    for example in examples().iter().filter(|example| example.kind == "server") {
        let Ok(ServerMessage::Event(event)) = serde_json::from_str::<ServerMessage>(&example.json) else {
            continue;
        };
        let encoded = EncodedEvent::of(&event);
        let expected = serde_json::to_string(&ServerMessage::Event(event.clone())).unwrap();
        assert_eq!(encoded.frame(), expected, "PROTOCOL.md line {}", example.line);
        assert_eq!(encoded.decode().unwrap(), event, "PROTOCOL.md line {}", example.line);
        events += 1;
    }
    assert!(events >= 20, "expected examples of every event kind, found {events}");
}

#[test]
fn every_command_and_event_kind_has_an_example() {
    let examples = examples();
    let types: Vec<String> = examples
        .iter()
        .filter_map(|example| {
            let value: Value = serde_json::from_str(&example.json).ok()?;
            let kind = value.get("kind").and_then(Value::as_str);
            let ty = value.get("type").and_then(Value::as_str)?;
            Some(match kind {
                Some(kind) => format!("{}:{ty}:{kind}", example.kind),
                None => format!("{}:{ty}", example.kind),
            })
        })
        .collect();
    let commands = [
        "hello",
        "say",
        "typing",
        "propose_topic",
        "vote_topic",
        "set_topic",
        "choose_caucus",
        "move",
        "open_caucuses",
        "extend_round",
        "reconvene",
        "end_session",
        "broadcast",
        "ask_for_help",
        "answer_help",
        "remove",
        "set_role",
        "set_secretary",
        "flag",
        "write_point",
        "edit_point",
        "withdraw_point",
        "restore_point",
        "reorder_points",
        "agree_point",
        "history",
        "erase_member",
    ];
    for command in commands {
        let wanted = format!("client:{command}");
        assert!(types.contains(&wanted), "PROTOCOL.md has no example of the `{command}` command");
    }
    assert!(
        examples.iter().any(|example| example.kind == "api:minutes"),
        "PROTOCOL.md has no example of the minutes"
    );
    let server = ["welcome", "ack", "error", "presence", "typing", "seat", "history"];
    for message in server {
        let wanted = format!("server:{message}");
        assert!(types.iter().any(|t| t == &wanted), "PROTOCOL.md has no example of the `{message}` message");
    }
    let events = [
        "joined",
        "message",
        "topic_proposed",
        "topic_voted",
        "topic_set",
        "caucuses_opened",
        "timer_warning",
        "round_extended",
        "time_up",
        "reconvened",
        "feedback",
        "announcement",
        "removed",
        "role_changed",
        "session_ended",
        "seated",
        "caucus_joined",
        "caucus_left",
        "help_requested",
        "help_answered",
        "point_added",
        "point_edited",
        "point_withdrawn",
        "point_restored",
        "points_reordered",
        "point_agreed",
        "points_counted",
        "erased",
    ];
    for event in events {
        let wanted = format!("server:event:{event}");
        assert!(types.contains(&wanted), "PROTOCOL.md has no example of the `{event}` event");
    }
}
