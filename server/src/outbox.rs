//! A connection's outbound queue: the frames that the session actor, and the connection
//! itself, queue for one client, and a request to close it.
//!
//! The queue is bounded in frames and in bytes, and lock-free. The byte bound is what
//! keeps a client that asks for much (history pages, a replay) and then stops reading
//! from pinning megabytes: past it, the connection is closed 4008 like any slow reader. Its memory follows what is queued:
//! crossbeam's `SegQueue` frees each 31-slot segment once it has been read, so an idle
//! connection keeps at most one part-used segment, where a tokio channel keeps every
//! block it ever grew to. With tens of thousands of mostly idle connections, that
//! difference is a large part of the server's memory.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use axum::extract::ws::{Message, Utf8Bytes};
use caucus_protocol::close;
use crossbeam_queue::SegQueue;
use futures::task::AtomicWaker;

/// Numbers connections for logs and for the actor's bookkeeping.
pub type ConnectionId = u64;

/// A frame's payload size in bytes, which is what the byte bound counts.
pub fn frame_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(_) => 0,
    }
}

/// The sending side, held by the session actor and the connection: cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    id: ConnectionId,
    shared: Arc<Shared>,
}

/// The receiving side, held by the connection task that writes to the socket.
#[derive(Debug)]
pub struct Outgoing {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    frames: SegQueue<Message>,
    /// Frames queued now; never more than `capacity`.
    queued: AtomicUsize,
    capacity: usize,
    /// Bytes of frames queued now; never more than `max_bytes`.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// Why the connection must close. The first reason wins.
    close: OnceLock<(u16, &'static str)>,
    /// Set when the receiving side is dropped: nothing queued now would be written.
    receiver_gone: AtomicBool,
    /// The connection task, waiting for a frame or a close.
    waker: AtomicWaker,
}

/// What the connection should do next.
#[derive(Debug)]
pub enum Next {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// Write this frame.
    Frame(Message),
}

/// A queue that holds at most `capacity` frames and `max_bytes` bytes for connection
/// `id`.
pub fn channel(id: ConnectionId, capacity: usize, max_bytes: usize) -> (Outbox, Outgoing) {
    let shared = Arc::new(Shared {
        frames: SegQueue::new(),
        queued: AtomicUsize::new(0),
        capacity: capacity.max(1),
        queued_bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
        close: OnceLock::new(),
        receiver_gone: AtomicBool::new(false),
        waker: AtomicWaker::new(),
    });
    (Outbox { id, shared: shared.clone() }, Outgoing { shared })
}

impl Outbox {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Queues a text frame without waiting: a cheap clone of shared bytes.
    pub fn deliver(&self, frame: &Utf8Bytes) -> bool {
        self.push(Message::Text(frame.clone()))
    }

    /// Queues a frame without waiting. Returns `false` when the connection is gone or
    /// too slow; a too-slow connection is told to close with 4008, so that the client
    /// reconnects and resumes instead of silently missing events.
    pub fn push(&self, message: Message) -> bool {
        let shared = &*self.shared;
        if shared.receiver_gone.load(Ordering::Acquire) || shared.close.get().is_some() {
            return false;
        }
        let bytes = frame_len(&message);
        let over_count = shared.queued.fetch_add(1, Ordering::AcqRel) >= shared.capacity;
        // An empty queue takes any one frame, however large (a welcome to a big
        // session): the bound is on what waits behind it.
        let before = shared.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        let over_bytes = before > 0 && before + bytes > shared.max_bytes;
        if over_count || over_bytes {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            metrics::counter!(crate::metrics::SLOW_CONSUMERS).increment(1);
            self.close(close::TOO_SLOW, "you fell too far behind; reconnect and resume");
            return false;
        }
        shared.frames.push(message);
        shared.waker.wake();
        true
    }

    /// Asks the connection to close. Frames queued before it are not written.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.shared.close.set((code, reason));
        self.shared.waker.wake();
    }
}

impl Outgoing {
    /// Waits for a close request or a frame; a close request comes first.
    pub async fn next(&mut self) -> Next {
        poll_fn(|cx| {
            if let Some(next) = self.ready() {
                return Poll::Ready(next);
            }
            self.shared.waker.register(cx.waker());
            // Anything queued between the first look and registering would otherwise
            // wait for the next wake.
            self.ready().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// A frame that is already queued, if there is one and no close is due.
    pub fn try_frame(&mut self) -> Option<Message> {
        if self.shared.close.get().is_some() {
            return None;
        }
        self.pop()
    }

    fn ready(&self) -> Option<Next> {
        if let Some(&(code, reason)) = self.shared.close.get() {
            return Some(Next::Close(code, reason));
        }
        self.pop().map(Next::Frame)
    }

    fn pop(&self) -> Option<Message> {
        let frame = self.shared.frames.pop()?;
        self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        self.shared.queued_bytes.fetch_sub(frame_len(&frame), Ordering::AcqRel);
        Some(frame)
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(body)
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_full_queue_asks_to_close() {
        let (outbox, mut outgoing) = channel(7, 2, 1024);
        assert!(outbox.deliver(&text("one")));
        assert!(outbox.deliver(&text("two")));
        assert!(!outbox.deliver(&text("three")), "a third frame overflows a queue of two");
        // The close request overtakes the frames still queued.
        assert!(matches!(outgoing.next().await, Next::Close(close::TOO_SLOW, _)));
        assert!(outgoing.try_frame().is_none());
        assert!(!outbox.deliver(&text("four")), "nothing is queued once closing");
    }

    #[tokio::test]
    async fn a_queue_full_in_bytes_asks_to_close_however_few_its_frames() {
        let (outbox, mut outgoing) = channel(7, 100, 10);
        assert!(outbox.deliver(&text("12345")));
        assert!(outbox.deliver(&text("67890")));
        assert!(!outbox.deliver(&text("x")), "an eleventh byte overflows a queue of ten");
        assert!(matches!(outgoing.next().await, Next::Close(close::TOO_SLOW, _)));
    }

    #[tokio::test]
    async fn an_empty_queue_takes_one_frame_larger_than_its_bound_but_nothing_behind_it() {
        let (outbox, mut outgoing) = channel(7, 100, 4);
        assert!(outbox.deliver(&text("a welcome larger than the bound")));
        assert!(!outbox.deliver(&text("x")));
        assert!(matches!(outgoing.next().await, Next::Close(close::TOO_SLOW, _)));
    }

    #[tokio::test]
    async fn bytes_read_make_room_again() {
        let (outbox, mut outgoing) = channel(7, 100, 10);
        assert!(outbox.deliver(&text("1234567890")));
        assert!(matches!(outgoing.next().await, Next::Frame(_)));
        assert!(outbox.deliver(&text("abcdefghij")), "the first frame's bytes were given back");
    }

    #[tokio::test]
    async fn a_reader_wakes_for_a_frame_sent_while_it_waits() {
        let (outbox, mut outgoing) = channel(1, 8, 1024);
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                match outgoing.next().await {
                    Next::Frame(Message::Text(body)) => seen.push(body.to_string()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            seen
        });
        for body in ["a", "b", "c"] {
            tokio::task::yield_now().await;
            assert!(outbox.deliver(&text(body)));
        }
        assert_eq!(reader.await.unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn a_gone_reader_refuses_frames_and_frees_room() {
        let (outbox, outgoing) = channel(1, 1, 1024);
        assert!(outbox.deliver(&text("queued")));
        drop(outgoing);
        assert!(!outbox.deliver(&text("after")));
    }
}
