//! Group commit off the poll loop: a thread that owns the [`Store`] and
//! writes the framed records it is given (encoded on the loop's thread, so
//! no record crosses threads) with one `fdatasync` per group, and the gate that holds the loop's outputs until
//! the records queued before them are on disk.
//!
//! The loop hands each turn's records to [`JournalWriter::submit`] (a
//! numbered batch) and puts the turn's outputs behind that number in a
//! [`Gate`]; it keeps taking input meanwhile. The thread takes every batch
//! waiting when it wakes (so a slow `fdatasync` makes the next group
//! larger, not the loop slower), and after each sync publishes the number
//! of the last batch on disk and wakes the loop through a socket pair.
//! Outputs leave the gate in order once their batch is durable, so no
//! client hears "accepted" or a result before the journal holds it, and
//! messages to a peer keep their order.

use super::{Store, StoreError};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the thread publishes: the last durable batch, or why it stopped.
#[derive(Debug, Default)]
struct Shared {
    durable: AtomicU64,
    failure: Mutex<Option<StoreError>>,
    /// The segment has grown enough to be compacted.
    wants_compaction: AtomicBool,
}

/// The writer thread and its wake-up socket.
#[derive(Debug)]
pub struct JournalWriter {
    sender: Option<Sender<(u64, Vec<u8>)>>,
    thread: Option<JoinHandle<Store>>,
    shared: Arc<Shared>,
    wake: UnixStream,
    /// The number of the last batch submitted.
    submitted: u64,
}

impl JournalWriter {
    /// Starts the thread that writes to `store`; batches are numbered
    /// after `first` (the last number of a writer this one follows).
    pub fn start(store: Store, first: u64) -> Result<Self, StoreError> {
        let path = store.path().to_path_buf();
        let io_error = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let (wake, thread_wake) = UnixStream::pair().map_err(io_error)?;
        wake.set_nonblocking(true).map_err(io_error)?;
        let shared = Arc::new(Shared::default());
        shared.durable.store(first, Ordering::Release);
        let (sender, receiver) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("journal".to_owned())
            .spawn(move || write_batches(store, &receiver, &thread_shared, thread_wake))
            .map_err(io_error)?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            shared,
            wake,
            submitted: first,
        })
    }

    /// Queues `frames` (records framed with [`super::frame`] on the
    /// caller's thread; none: nothing happens); gives the number of the
    /// last batch submitted, which outputs of this turn wait for.
    pub fn submit(&mut self, frames: Vec<u8>) -> Result<u64, StoreError> {
        if !frames.is_empty() {
            self.submitted += 1;
            let sent = self
                .sender
                .as_ref()
                .is_some_and(|sender| sender.send((self.submitted, frames)).is_ok());
            if !sent {
                return Err(self.failure());
            }
        }
        Ok(self.submitted)
    }

    /// The last batch on disk; an error once the thread failed.
    pub fn durable(&self) -> Result<u64, StoreError> {
        if let Ok(mut failure) = self.shared.failure.lock() {
            if let Some(error) = failure.take() {
                return Err(error);
            }
        }
        Ok(self.shared.durable.load(Ordering::Acquire))
    }

    /// The number of the last batch submitted.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Whether the segment has grown enough to be compacted (stop the
    /// writer, [`Store::compact`], start a new one).
    pub fn wants_compaction(&self) -> bool {
        self.shared.wants_compaction.load(Ordering::Acquire)
    }

    /// The fd that becomes readable when a batch is durable.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Empties the wake-up socket.
    pub fn take_wake(&mut self) {
        let mut buffer = [0u8; 64];
        while matches!(self.wake.read(&mut buffer), Ok(n) if n > 0) {}
    }

    /// Waits until every batch submitted is on disk.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let target = self.submitted;
        self.wake
            .set_nonblocking(false)
            .map_err(|source| self.io_failure(source))?;
        let mut buffer = [0u8; 64];
        let outcome = loop {
            match self.durable() {
                Err(error) => break Err(error),
                Ok(durable) if durable >= target => break Ok(()),
                Ok(_) => {}
            }
            if matches!(self.wake.read(&mut buffer), Ok(0) | Err(_)) {
                // The thread is gone: its failure says why.
                break self.durable().and(Err(self.failure()));
            }
        };
        self.wake
            .set_nonblocking(true)
            .map_err(|source| self.io_failure(source))?;
        outcome
    }

    /// Stops the thread once everything submitted is written; gives the
    /// store back.
    pub fn stop(mut self) -> Result<Store, StoreError> {
        self.sender = None;
        let store = self.thread.take().and_then(|thread| thread.join().ok());
        self.durable()?;
        store.ok_or_else(|| self.failure())
    }

    fn failure(&self) -> StoreError {
        self.shared
            .failure
            .lock()
            .ok()
            .and_then(|mut failure| failure.take())
            .unwrap_or_else(|| self.io_failure(std::io::Error::other("the journal thread stopped")))
    }

    fn io_failure(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: "journal writer".into(),
            source,
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: every batch waiting at once, one write and one sync.
fn write_batches(
    mut store: Store,
    receiver: &Receiver<(u64, Vec<u8>)>,
    shared: &Shared,
    mut wake: UnixStream,
) -> Store {
    while let Ok((mut last, frames)) = receiver.recv() {
        let mut groups = vec![frames];
        while let Ok((number, more)) = receiver.try_recv() {
            last = number;
            groups.push(more);
        }
        let groups: Vec<&[u8]> = groups.iter().map(Vec::as_slice).collect();
        if let Err(error) = store.append_frames(&groups) {
            if let Ok(mut failure) = shared.failure.lock() {
                *failure = Some(error);
            }
            let _ = wake.write(&[1]);
            break;
        }
        shared.durable.store(last, Ordering::Release);
        if store.should_compact() {
            shared.wants_compaction.store(true, Ordering::Release);
        }
        // A full socket already wakes the loop.
        let _ = wake.write(&[1]);
    }
    store
}

/// Items held until the batch they follow is durable, in order.
#[derive(Debug)]
pub struct Gate<T> {
    held: VecDeque<(u64, T)>,
}

impl<T> Default for Gate<T> {
    fn default() -> Self {
        Self {
            held: VecDeque::new(),
        }
    }
}

impl<T> Gate<T> {
    /// Holds `item` until batch `after` is durable.
    pub fn push(&mut self, after: u64, item: T) {
        self.held.push_back((after, item));
    }

    /// The next item whose batch is durable (`durable` is the last batch on
    /// disk); items behind one still held wait too.
    pub fn pop(&mut self, durable: u64) -> Option<T> {
        if self.held.front()?.0 <= durable {
            self.held.pop_front().map(|(_, item)| item)
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
