//! Reconvene at scale: a session of `members` people split evenly across the two
//! caucuses, each caucus with `points / 2` points written. The clock runs from the
//! moment the facilitator sends `reconvene` until the *last* member has the plenary's
//! `reconvened` and both `feedback` events; the round is then reopened and it all runs
//! again. Caucus only: the peers have no caucuses to reconvene.

use caucus_tests::GuestToken;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use caucus_protocol::{Caucus, ClientFrame, ClientId, Command, RoomName};
use caucus_tests::Client;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::process::ServerProcess;

/// What a member's reader reports.
enum Report {
    /// One of this harness's commands was acknowledged.
    Acked,
    /// The last event of a reconvene (caucus B's feedback) arrived, at this time.
    Reconvened(Instant),
}

/// What the scenario measured, in microseconds.
pub(crate) struct Timings {
    /// Per run: until the last member had everything.
    pub(crate) last_member: Histogram<u64>,
    /// Per member and run: until that member had everything.
    pub(crate) each_member: Histogram<u64>,
    pub(crate) members: usize,
    pub(crate) points: usize,
    pub(crate) runs: usize,
}

/// Runs the scenario against a fresh `caucus serve` process.
pub(crate) async fn run(members: usize, points: usize, runs: usize) -> Result<Timings> {
    ensure!(members >= 2 && points <= members, "need at least two members and no more points than members");
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path())?;
    let (session, joined) = server.populate(1, members).await?.pop().context("one session")?;
    let mut facilitator = Client::connect(server.address).await?;
    facilitator.hello(&session, &server.sign_in).await?;

    // Every member's socket is read by its own task from the start, so that nothing
    // queues up behind a slow reader in the harness.
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let mut sinks = Vec::with_capacity(members);
    for chunk in joined.chunks(50) {
        let connecting = chunk.iter().map(|member| {
            let session = session.clone();
            let token = member.guest_token().to_owned();
            let address = server.address;
            tokio::spawn(async move {
                let mut client = Client::connect(address).await?;
                client.hello(&session, &token).await?;
                Ok::<_, anyhow::Error>(client.into_socket().split())
            })
        });
        for task in connecting.collect::<Vec<_>>() {
            let (sink, stream) = task.await??;
            tokio::spawn(read(stream, reports.clone()));
            sinks.push(sink);
        }
    }
    eprintln!("reconvene: {members} members connected");

    // Half choose each caucus.
    for (n, sink) in sinks.iter_mut().enumerate() {
        let caucus = if n % 2 == 0 { Caucus::A } else { Caucus::B };
        sink.send(command(format!("b-seat-{n}"), Command::ChooseCaucus { caucus: Some(caucus) })).await?;
    }
    wait_for_acks(&mut inbox, members).await?;

    let mut last_member = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut each_member = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for round in 1..=runs as u32 {
        facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
        for (n, sink) in sinks.iter_mut().enumerate().take(points) {
            let caucus = if n % 2 == 0 { Caucus::A } else { Caucus::B };
            let text = format!("Round {round}, point {n}: what we want the other caucus to hear.");
            let write = Command::WritePoint { room: RoomName::from(caucus.room()), text };
            sink.send(command(format!("b-point-{round}-{n}"), write)).await?;
        }
        wait_for_acks(&mut inbox, points).await?;
        // Let the caucuses' point events drain before the clock starts.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let started = Instant::now();
        facilitator.ok(Command::Reconvene { round }).await?;
        let mut latest = started;
        for _ in 0..members {
            match tokio::time::timeout(Duration::from_secs(60), inbox.recv()).await {
                Ok(Some(Report::Reconvened(at))) => {
                    each_member.record(micros(at - started))?;
                    latest = latest.max(at);
                }
                Ok(Some(Report::Acked)) => bail!("an unexpected acknowledgement during reconvene"),
                Ok(None) | Err(_) => bail!("not every member saw round {round} reconvene within a minute"),
            }
        }
        last_member.record(micros(latest - started))?;
    }
    Ok(Timings { last_member, each_member, members, points, runs })
}

fn micros(duration: Duration) -> u64 {
    (duration.as_micros() as u64).max(1)
}

fn command(id: String, command: Command) -> Message {
    Message::text(ClientFrame::with_id(ClientId::new(id).expect("a valid client id"), command).encode())
}

async fn wait_for_acks(inbox: &mut mpsc::UnboundedReceiver<Report>, count: usize) -> Result<()> {
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(60), inbox.recv()).await {
            Ok(Some(Report::Acked)) => {}
            Ok(Some(Report::Reconvened(_))) => bail!("a reconvene arrived before one was sent"),
            Ok(None) | Err(_) => bail!("commands were not acknowledged within a minute"),
        }
    }
    Ok(())
}

/// Reads one member's connection for as long as it is open. A cheap look at each frame
/// is enough, so that the harness's own parsing does not add to what is measured.
async fn read(
    mut stream: futures::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    >,
    reports: mpsc::UnboundedSender<Report>,
) {
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else { continue };
        let report = if text.contains(r#""kind":"feedback""#) && text.contains(r#""caucus":"b""#) {
            Report::Reconvened(Instant::now())
        } else if text.starts_with(r#"{"type":"ack""#) && text.contains(r#""client_id":"b-"#) {
            Report::Acked
        } else if text.starts_with(r#"{"type":"error""#) {
            eprintln!("reconvene: the server refused a command: {text}");
            continue;
        } else {
            continue;
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}

impl Timings {
    /// A Markdown table of the timings.
    pub(crate) fn table(&self) -> String {
        let ms =
            |histogram: &Histogram<u64>, quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        format!(
            "| measure | p50 | p99 | max |\n| --- | --- | --- | --- |\n\
             | until the last of {} members has reconvened, {} points carried ({} runs) | {:.2} ms | {:.2} ms | {:.2} ms |\n\
             | until each member has reconvened ({} deliveries) | {:.2} ms | {:.2} ms | {:.2} ms |\n",
            self.members,
            self.points,
            self.runs,
            ms(&self.last_member, 0.5),
            ms(&self.last_member, 0.99),
            self.last_member.max() as f64 / 1000.0,
            self.each_member.len(),
            ms(&self.each_member, 0.5),
            ms(&self.each_member, 0.99),
            self.each_member.max() as f64 / 1000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_reconvene_event_is_recognised_in_its_encoded_form() {
        let event = caucus_protocol::RoomEvent {
            room: caucus_protocol::Room::Plenary,
            seq: 3,
            at: 1,
            body: caucus_protocol::EventBody::Feedback {
                round: 1,
                caucus: Caucus::B,
                label: "B".into(),
                points: vec!["x".into()],
            },
        };
        let text = serde_json::to_string(&caucus_protocol::ServerMessage::Event(event)).unwrap();
        assert!(text.contains(r#""kind":"feedback""#) && text.contains(r#""caucus":"b""#), "{text}");
    }
}
