//! A connection's outbound queue: the frames that the session actor, and the connection
//! itself, queue for one client, and a request to close it.
//!
//! The queue is bounded in frames and in bytes. The byte bound is what keeps a client
//! that asks for much (history pages, a replay) and then stops reading from pinning
//! megabytes: past it, the connection is closed 4008 like any slow reader.
//!
//! Its memory follows what is queued, down to nothing: the frames are a `VecDeque` behind
//! a mutex, and when the connection finds it empty its storage is freed (a `VecDeque`
//! that was never pushed to holds no allocation). With tens of thousands of mostly idle
//! connections, what an empty queue keeps is a large part of the server's memory: a
//! tokio channel keeps every block it ever grew to, and crossbeam's `SegQueue`, used
//! before, kept a part-used segment of 31 slots (1.7 KiB) per connection. The mutex is
//! held only to push or pop one frame, by the session actor on one side and the
//! connection's task on the other; a frame pushed to an empty queue allocates again.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Poll;

use axum::extract::ws::{Message, Utf8Bytes};
use caucus_protocol::close;
use futures::task::AtomicWaker;

/// Numbers connections for logs and for the actor's bookkeeping.
pub type ConnectionId = u64;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A number no other connection of this process has: a WebSocket, or a connection on
/// another node that this node's session serves over the bus.
pub fn next_connection_id() -> ConnectionId {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// Why a connection must close, as its close frame gives it. Most reasons are fixed
/// text; one relayed from another node is not.
pub type Reason = Cow<'static, str>;

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
    queue: Mutex<Queue>,
    /// The most frames `queue` holds.
    capacity: usize,
    /// The most bytes `queue` holds, unless it holds one frame only.
    max_bytes: usize,
    /// Why the connection must close. The first reason wins.
    close: OnceLock<(u16, Reason)>,
    /// The connection task, waiting for a frame or a close.
    waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Message>,
    /// The payload bytes of `frames`.
    bytes: usize,
    /// The receiving side is gone: nothing queued now would be written.
    receiver_gone: bool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock, and the queue is consistent between
        // any two statements that change it anyway.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the connection should do next.
#[derive(Debug)]
pub enum Next {
    /// Close with this code and reason.
    Close(u16, Reason),
    /// Write this frame.
    Frame(Message),
}

/// A queue that holds at most `capacity` frames and `max_bytes` bytes for connection
/// `id`.
pub fn channel(id: ConnectionId, capacity: usize, max_bytes: usize) -> (Outbox, Outgoing) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        capacity: capacity.max(1),
        max_bytes: max_bytes.max(1),
        close: OnceLock::new(),
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
        if shared.close.get().is_some() {
            return false;
        }
        let bytes = frame_len(&message);
        {
            let mut queue = shared.queue();
            if queue.receiver_gone {
                return false;
            }
            let over_count = queue.frames.len() >= shared.capacity;
            // An empty queue takes any one frame, however large (a welcome to a big
            // session): the bound is on what waits behind it.
            let over_bytes = queue.bytes > 0 && queue.bytes + bytes > shared.max_bytes;
            if !over_count && !over_bytes {
                queue.frames.push_back(message);
                queue.bytes += bytes;
                drop(queue);
                shared.waker.wake();
                return true;
            }
        }
        metrics::counter!(crate::metrics::SLOW_CONSUMERS).increment(1);
        self.close(close::TOO_SLOW, "you fell too far behind; reconnect and resume");
        false
    }

    /// Asks the connection to close. Frames queued before it are not written.
    pub fn close(&self, code: u16, reason: impl Into<Reason>) {
        let _ = self.shared.close.set((code, reason.into()));
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
        if let Some((code, reason)) = self.shared.close.get() {
            return Some(Next::Close(*code, reason.clone()));
        }
        self.pop().map(Next::Frame)
    }

    /// The first frame queued. Finding the queue empty frees its storage: this is where
    /// a connection that has written everything falls idle.
    fn pop(&self) -> Option<Message> {
        let mut queue = self.shared.queue();
        let Some(frame) = queue.frames.pop_front() else {
            if queue.frames.capacity() > 0 {
                queue.frames = VecDeque::new();
            }
            return None;
        };
        queue.bytes -= frame_len(&frame);
        Some(frame)
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // The frames still queued would never be written: free them now rather than
        // when the session actor lets go of its `Outbox`.
        let frames = {
            let mut queue = self.shared.queue();
            queue.receiver_gone = true;
            queue.bytes = 0;
            std::mem::take(&mut queue.frames)
        };
        drop(frames);
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
        assert_eq!(outbox.shared.queue().frames.capacity(), 0, "the queued frame was freed");
    }

    #[tokio::test]
    async fn a_drained_queue_holds_no_storage() {
        let (outbox, mut outgoing) = channel(1, 100, 1024);
        assert_eq!(outbox.shared.queue().frames.capacity(), 0, "a new queue allocates nothing");
        for body in ["a", "b", "c"] {
            assert!(outbox.deliver(&text(body)));
        }
        assert!(outbox.shared.queue().frames.capacity() >= 3);
        assert!(matches!(outgoing.next().await, Next::Frame(_)));
        assert!(outgoing.try_frame().is_some());
        assert!(outgoing.try_frame().is_some());
        assert!(outgoing.try_frame().is_none());
        let queue = outbox.shared.queue();
        assert_eq!((queue.frames.capacity(), queue.bytes), (0, 0), "found empty, it was freed");
    }
}
