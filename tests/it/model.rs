//! The model-based privacy test's second target: shorter random sequences over real
//! sockets against the running server. A simple model tracks who sits where; after
//! the run, every frame each client received is checked against it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use caucus_protocol::{Caucus, Command, EventBody, MemberId, Room, RoomEvent, ServerMessage, Settings};
use caucus_tests::room;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::{Person, Scene};

#[derive(Debug, Clone)]
enum Op {
    Choose(usize, Option<Caucus>),
    Move(usize, Option<Caucus>),
    Say(usize, Option<Caucus>),
    Open,
    Reconvene,
    Reconnect(usize),
}

const MEMBERS: usize = 4;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let who = 0..MEMBERS;
    let seat = prop_oneof![Just(None), Just(Some(Caucus::A)), Just(Some(Caucus::B))];
    let op = prop_oneof![
        2 => (who.clone(), seat.clone()).prop_map(|(w, s)| Op::Choose(w, s)),
        2 => (who.clone(), seat.clone()).prop_map(|(w, s)| Op::Move(w, s)),
        6 => (who.clone(), seat).prop_map(|(w, s)| Op::Say(w, s)),
        2 => Just(Op::Open),
        1 => Just(Op::Reconvene),
        2 => who.prop_map(Op::Reconnect),
    ];
    proptest::collection::vec(op, 5..25)
}

/// Who sat in each caucus when each caucus message was stored.
type Entitled = BTreeMap<(Room, u64), BTreeSet<MemberId>>;

async fn run(ops: Vec<Op>) -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut people: Vec<Person> = Vec::new();
    for n in 0..MEMBERS {
        people.push(scene.member(&format!("P{n}")).await?);
    }
    let mut seats: BTreeMap<MemberId, Caucus> = BTreeMap::new();
    let mut entitled = Entitled::new();
    // What earlier connections received, kept after they are closed.
    let mut retired: Vec<(MemberId, Vec<String>)> = Vec::new();
    let mut round = 0;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Choose(who, caucus) | Op::Move(who, caucus) => {
                let person = &mut people[*who];
                let reply = if matches!(op, Op::Choose(..)) {
                    person.client.request(Command::ChooseCaucus { caucus: *caucus }).await?
                } else {
                    scene
                        .facilitator
                        .client
                        .request(Command::Move { member: person.id.clone(), caucus: *caucus })
                        .await?
                };
                if reply.is_ok() {
                    match caucus {
                        Some(caucus) => seats.insert(person.id.clone(), *caucus),
                        None => seats.remove(&person.id),
                    };
                }
            }
            Op::Say(who, caucus) => {
                let person = &mut people[*who];
                let target = caucus.map_or(Room::Plenary, Caucus::room);
                let text = format!("step-{step}-{}", target.as_str());
                if let Ok(ack) = person.client.request(Command::Say { room: room(target), text }).await?
                    && let (Some(room), Some(seq)) = (ack.room, ack.seq)
                    && let Room::Caucus(caucus) = room
                {
                    let members =
                        seats.iter().filter(|(_, c)| **c == caucus).map(|(m, _)| m.clone()).collect();
                    entitled.insert((room, seq), members);
                }
            }
            Op::Open => {
                if scene
                    .facilitator
                    .client
                    .request(Command::OpenCaucuses { duration_secs: None })
                    .await?
                    .is_ok()
                {
                    round += 1;
                }
            }
            Op::Reconvene => {
                scene.facilitator.client.request(Command::Reconvene { round }).await?.ok();
            }
            Op::Reconnect(who) => {
                let person = &mut people[*who];
                let cursors = person.client.resume_cursors();
                let mut fresh = scene.server.client().await;
                fresh.hello_resume(&scene.session, &person.token, cursors).await?;
                let old = std::mem::replace(&mut person.client, fresh);
                retired.push((person.id.clone(), old.raw.clone()));
                // Closed, so that reconnecting never runs into the per-person cap.
                old.close().await;
            }
        }
    }
    for person in &mut people {
        person.client.sync().await?;
    }
    scene.facilitator.client.sync().await?;

    // Every caucus message any connection received, it was entitled to when stored;
    // and no connection received the same event twice.
    let mut connections: Vec<(MemberId, &Vec<String>)> =
        people.iter().map(|p| (p.id.clone(), &p.client.raw)).collect();
    connections.extend(retired.iter().map(|(id, raw)| (id.clone(), raw)));
    connections.push((scene.facilitator.id.clone(), &scene.facilitator.client.raw));
    for (member, raw) in connections {
        let mut seen = BTreeSet::new();
        for frame in raw {
            let Ok(ServerMessage::Event(RoomEvent { room, seq, body, .. })) = serde_json::from_str(frame)
            else {
                continue;
            };
            assert!(seen.insert((room, seq)), "{member} received {room} #{seq} twice on one connection");
            if let (Room::Caucus(_), EventBody::Message { .. }) = (room, &body) {
                let allowed = entitled.get(&(room, seq)).is_some_and(|members| members.contains(&member));
                assert!(
                    allowed,
                    "{member} received caucus message {room} #{seq} without being in the caucus"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn random_sessions_over_real_sockets_keep_caucuses_private() {
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    runner
        .run(&ops(), |ops| {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(run(ops)).map_err(|err| TestCaseError::fail(format!("{err:#}")))
        })
        .unwrap();
}
