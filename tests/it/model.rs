//! The model-based privacy test's second target: shorter random sequences over real
//! sockets against the running server, and against a cluster of three nodes with people
//! spread over them. A simple model tracks who sits where; after the run, every frame
//! each client received is checked against it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use caucus_protocol::{Caucus, Command, EventBody, MemberId, Room, RoomEvent, ServerMessage, Settings};
use caucus_tests::room;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::cluster::{join_on, three_nodes};
use crate::support::{Person, Scene, TestServer};

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

/// Runs `ops` on one server, or on three nodes of a cluster (`None` where the cluster's
/// servers are not installed, outside CI).
async fn run(ops: Vec<Op>, cluster: bool) -> Result<()> {
    let (mut scene, _others): (Scene, Vec<TestServer>) = if cluster {
        let Some((mut nodes, _)) = three_nodes(None).await? else { return Ok(()) };
        let first = nodes.remove(0);
        (Scene::on(first, Settings::default()).await?, nodes)
    } else {
        (Scene::new(Settings::default()).await?, Vec::new())
    };
    // Where people connect: in a cluster, each to a node of their own, moving on to the
    // next when they reconnect; the facilitator to a node that does not run the session.
    let nodes: Vec<std::net::SocketAddr> =
        std::iter::once(scene.server.address).chain(_others.iter().map(|node| node.address)).collect();
    if nodes.len() > 1 {
        let mut client = caucus_tests::Client::connect(nodes[nodes.len() - 1]).await?;
        client.hello(&scene.session, &scene.facilitator.token).await?;
        std::mem::replace(&mut scene.facilitator.client, client).close().await;
    }
    let mut people: Vec<Person> = Vec::new();
    let mut places: Vec<usize> = Vec::new();
    for n in 0..MEMBERS {
        let place = n % nodes.len();
        let (joined, client) = join_on(nodes[place], &scene.session, &scene.invite, &format!("P{n}")).await?;
        let token = caucus_tests::GuestToken::guest_token(&joined).to_owned();
        people.push(Person { id: joined.member, token, client });
        places.push(place);
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
                places[*who] = (places[*who] + 1) % nodes.len();
                let mut fresh = caucus_tests::Client::connect(nodes[places[*who]]).await?;
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

fn run_cases(cases: u32, cluster: bool) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&ops(), |ops| {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(run(ops, cluster)).map_err(|err| TestCaseError::fail(format!("{err:#}")))
        })
        .unwrap();
}

#[test]
fn random_sessions_over_real_sockets_keep_caucuses_private() {
    run_cases(24, false);
}

#[test]
fn random_sessions_with_people_spread_over_three_nodes_keep_caucuses_private() {
    // Fewer cases: each starts three nodes on a database of its own.
    run_cases(8, true);
}
