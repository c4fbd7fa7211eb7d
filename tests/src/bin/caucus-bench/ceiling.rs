//! The ceiling: a bare tokio-tungstenite broadcast server with no protocol at all. A
//! connection's first text frame names its room; every later text frame goes to
//! everyone in that room. Each message is shared bytes sent to every member's bounded
//! queue; each writer feeds its queue and flushes once per batch. It is what this
//! machine can do for fan-out, to compare Caucus against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued for one connection before it is dropped as too slow.
const QUEUE: usize = 2048;
/// Frames written per flush at most.
const BATCH: usize = 64;

type Rooms = Arc<Mutex<HashMap<String, Vec<mpsc::Sender<Message>>>>>;

/// Serves until the process is stopped. Prints `listening on ADDRESS` when ready.
pub(crate) async fn serve(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let rooms: Rooms = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, rooms.clone()));
    }
}

async fn connection(stream: tokio::net::TcpStream, rooms: Rooms) {
    // The same buffers as Caucus, so that the two differ only in what Caucus adds.
    let config = WebSocketConfig::default()
        .read_buffer_size(caucus_server::http::READ_BUFFER)
        .write_buffer_size(caucus_server::http::WRITE_BUFFER);
    let Ok(socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
    let (mut sink, mut stream) = socket.split();
    let room = loop {
        match stream.next().await {
            Some(Ok(Message::Text(name))) => break name.to_string(),
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    let (sender, mut queue) = mpsc::channel::<Message>(QUEUE);
    rooms.lock().expect("not poisoned").entry(room.clone()).or_default().push(sender);
    let writer = tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            for _ in 1..BATCH {
                match queue.try_recv() {
                    Ok(message) => {
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Text(text) = message {
            // Serialized once: every member's queue gets the same shared bytes.
            let frame = Message::Text(text);
            let mut rooms = rooms.lock().expect("not poisoned");
            if let Some(members) = rooms.get_mut(&room) {
                members.retain(|member| member.try_send(frame.clone()).is_ok());
            }
        }
    }
    writer.abort();
}
