//! A session's outbound queue, bounded in bytes: what the broker delivers into and the
//! session writes out. Below both, so neither reaches into the other.
//!
//! Publishers (the broker's fan-out, other sessions, the messaging template) push frames
//! without ever waiting. The queue may go over its byte limit for a while: a consumer that is
//! merely slow catches up. One that stays over the limit for longer than the send time limit,
//! or lets the queue reach twice the limit, is closed with a logged reason; its memory is then
//! freed, and nobody else is slowed down. So the queue never holds more than
//! `2 × limit` bytes (plus one frame, which an empty queue always accepts).

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::locks::lock;
use crate::prefetch;
use crate::ring::Ring;
use crate::stomp::EncodedFrame;

/// A queue holding more than this many frames' worth of capacity gives it back when it drains
/// and the session has gone quiet (this many frames or fewer in [`QUIET_TAKES`] takes in a
/// row): an idle session keeps almost nothing, a busy one keeps what it needs rather than grow
/// it again frame by frame (a copy of every queued entry each time it doubles).
const KEEP_CAPACITY: usize = 16;

/// See [`KEEP_CAPACITY`].
const QUIET_TAKES: u8 = 4;

/// A drained queue with more capacity than this gives it back at once, busy or not: what a
/// session keeps after a burst stays small (56 KiB of entries in each of its two buffers, the
/// queue's and the write's, until it goes quiet). A busy subscriber's takes of a few hundred
/// frames keep their room: 256 made each such take free the buffer and the next pushes grow
/// a new one, copying every entry at each doubling (callgrind, 20,000 SENDs to 10
/// subscribers: growing the queues took 166 instructions per SEND, then 86).
const MAX_KEPT_CAPACITY: usize = 1024;

/// The most capacity a queue starts from again (see `Outbox::last_take`): 4,096 entries of
/// 56 bytes.
const MAX_HINT: usize = 4096;

/// The sending side of a session's outbound queue, shared with every publisher.
///
/// A ring buffer ([`Ring`]) behind a mutex rather than a channel: it allocates nothing until the first
/// frame and returns its capacity after a burst, which matters with tens of thousands of
/// mostly idle sessions. The lock is held only to push, to take a batch, to count what was
/// written, or to close.
///
/// Laid out for the fan-out: what every push touches comes first, in the struct's first two
/// cache lines (aligned to one), which [`prefetch`](Outbox::prefetch) asks for ahead of the
/// push. (The alignment costs an idle session about 0.1 KiB: 7.8 KiB in all, measured.)
#[repr(C, align(64))]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    /// [`Queue::bytes`], for reading without the lock (stored under it).
    queued: AtomicUsize,
    /// Where the next push will store its entry (a hint kept under the queue's lock: only
    /// ever prefetched, never read through).
    next_slot: AtomicPtr<Queued>,
    limit: usize,
    /// Set by `close`: what `push` checks for every delivery. The session learns of it from
    /// its receiver, which `close` wakes and which then reports the outbox closed.
    is_closed: AtomicBool,
    /// Whether `over_since` may be set: a write that leaves the queue at or under the limit
    /// clears it then (a push racing a write, or lossy drops, can leave it set under the limit).
    /// Beside `is_closed` (in its padding): every write looks at it, and further down it was a
    /// cache line of its own for a quiet session's wake-up.
    clock_running: AtomicBool,
    /// The session's signal ([`Signal`](crate::signal::Signal)): raised when something outside
    /// ends the session (a handler's fatal error, the application closing it, its relay
    /// connection ending, the shutdown). Here, beside `is_closed`, rather than in an allocation
    /// of its own: the loop looks at it on every turn, and a quiet subscriber's session is
    /// woken with all of its state out of cache (an allocation of its own was a cache line
    /// missed per delivery, callgrind's cache simulation).
    raised: AtomicBool,
    /// Whether the transport's read may have progressed: set by the read's waker
    /// ([`read_waker`](Outbox::read_waker), a [`Gate`](crate::signal::Gate)'s), cleared when
    /// the gate lets the read be polled. Starts set: the first poll goes through.
    read_woken: AtomicBool,
    /// The session's task, woken by the push that makes the queue non-empty (and by `close`,
    /// a raise of the signal, and the read's waker). One waiter: an atomic waker, not a
    /// `Notify` (whose waiter list is behind a mutex: a second lock per delivery to a waiting
    /// session). The session registers it before every wait (see `poll_recv_many`), and looks
    /// at `raised` and `read_woken` again after.
    ready: AtomicWaker,
    /// The data pointer of the waker last registered in `ready` (a hint, only prefetched:
    /// waking a task writes to it).
    task: AtomicPtr<()>,
    /// How many frames the last take found (not only took): the capacity a queue that gave
    /// its capacity back starts from again (one allocation instead of a doubling for every power of two).
    last_take: AtomicUsize,
    /// Woken when the queue drops back to its limit (or closes): publishers held back by a
    /// `Backpressure` subscriber wait on it.
    room: Notify,
    send_time_limit: Duration,
    over_since: Mutex<Option<Instant>>,
    reason: OnceLock<String>,
}

/// What the outbox's lock guards.
#[derive(Default)]
struct Queue {
    frames: Ring<Queued>,
    /// Bytes pushed and not yet written to the transport. The queue's bound rests on this.
    /// Kept under the lock rather than in an atomic of its own: a push takes the lock anyway,
    /// and each locked instruction of a push costs the fan-out (each waits for the stores
    /// before it to reach memory).
    bytes: usize,
}

impl Queue {
    /// Sets the byte count, and its copy readable without the lock.
    fn set_bytes(&mut self, bytes: usize, mirror: &AtomicUsize) {
        self.bytes = bytes;
        mirror.store(bytes, Ordering::Release);
    }
}

/// A queued frame; a lossy subscription's (DropOldest) carries the counter of the messages
/// it lost, so that it can be dropped to make room, and the count its own `missed-messages`
/// header reports (given back to the counter if it is dropped).
struct Queued {
    frame: EncodedFrame,
    // Boxed: rare, and every queue entry is smaller for it (56 bytes, from 120 before the
    // encoded frame lost its third part).
    lossy: Option<Box<(Arc<AtomicU64>, u64)>>,
}

/// Frames taken from an outbox for one write, in order.
///
/// When the queue holds no more than one batch, a take hands over the queue's buffer itself:
/// the batch's (empty) buffer and the queue's trade places, and no frame is copied. A busy
/// session's two buffers then keep trading places, each with the room a batch needs.
#[derive(Default)]
pub(crate) struct Batch {
    frames: Ring<Queued>,
    /// Writes in a row of fewer than [`KEEP_CAPACITY`] frames.
    quiet_writes: u8,
    /// The frames' sizes, as [`measure`](Batch::measure) found them; `None` once the frames
    /// changed since.
    measured: Option<Measured>,
}

/// The sizes of a batch's frames (see [`Batch::measure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Measured {
    /// All of them together.
    pub(crate) bytes: usize,
    /// The largest.
    pub(crate) largest: usize,
}

impl Batch {
    /// How many frames the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Goes over the frames once, handing each to `each` with its size, and remembers their
    /// sizes for whoever writes them next (see [`measured`](Batch::measured)): the session
    /// counts what it writes and the transport checks and reserves for it, in one pass.
    pub(crate) fn measure(&mut self, mut each: impl FnMut(&EncodedFrame, usize)) -> Measured {
        let mut measured = Measured { bytes: 0, largest: 0 };
        let (front, back) = self.frames.as_slices();
        for part in [front, back] {
            for queued in part {
                let len = queued.frame.len();
                measured.bytes += len;
                measured.largest = measured.largest.max(len);
                each(&queued.frame, len);
            }
        }
        self.measured = Some(measured);
        measured
    }

    /// What [`measure`](Batch::measure) found, if the frames have not changed since.
    pub(crate) fn measured(&self) -> Option<Measured> {
        self.measured
    }

    /// Whether the batch holds no frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &EncodedFrame> + Send {
        self.frames.iter().map(|queued| &queued.frame)
    }

    /// Takes the frames out, in order, leaving the batch empty (with its capacity).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = EncodedFrame> + Send + '_ {
        self.measured = None;
        self.frames.drain().map(|queued| queued.frame)
    }

    /// Adds a frame at the end.
    pub(crate) fn push(&mut self, frame: EncodedFrame) {
        self.measured = None;
        self.frames.push_back(Queued { frame, lossy: None });
    }

    /// Drops the frames (those of a write that failed).
    pub(crate) fn clear(&mut self) {
        self.measured = None;
        self.frames.clear();
    }

    /// Empties the batch after a write of `n` frames. A session that has gone quiet (writes of
    /// fewer than [`KEEP_CAPACITY`] frames, [`QUIET_TAKES`] in a row), or a buffer a burst made
    /// larger than [`MAX_KEPT_CAPACITY`], gives the excess back; a busy session keeps its room
    /// (shrinking at every small write made a busy queue grow again, a copy per doubling, after
    /// each one). The buffer goes back to the queue at the next take.
    pub(crate) fn written(&mut self, n: usize) {
        self.measured = None;
        self.frames.clear();
        self.quiet_writes = match n < KEEP_CAPACITY {
            true => self.quiet_writes.saturating_add(1),
            false => 0,
        };
        let capacity = self.frames.capacity();
        if capacity > MAX_KEPT_CAPACITY
            || (capacity > KEEP_CAPACITY && self.quiet_writes >= QUIET_TAKES)
        {
            self.frames.shrink_to(KEEP_CAPACITY);
        }
    }
}

impl From<Vec<EncodedFrame>> for Batch {
    fn from(frames: Vec<EncodedFrame>) -> Batch {
        let frames = frames.into_iter().map(|frame| Queued { frame, lossy: None }).collect();
        Batch { frames, quiet_writes: 0, measured: None }
    }
}

/// The session's end of the queue. Dropping it closes the outbox, so nothing more is queued
/// for a session that has ended.
pub(crate) struct OutboxReceiver {
    outbox: Arc<Outbox>,
    /// Takes in a row that found fewer than [`KEEP_CAPACITY`] frames.
    quiet_takes: u8,
    /// Whether the queue's buffer held no more than [`KEEP_CAPACITY`] entries after the last
    /// take (only a push, which counts bytes, can grow it since): an empty look then has
    /// nothing to give back, and `poll_recv_many` may skip the lock.
    queue_kept_small: bool,
}

impl Outbox {
    pub(crate) fn new(limit: usize, send_time_limit: Duration) -> (Arc<Outbox>, OutboxReceiver) {
        let outbox = Arc::new(Outbox {
            queue: Mutex::new(Queue::default()),
            queued: AtomicUsize::new(0),
            next_slot: AtomicPtr::new(std::ptr::null_mut()),
            limit,
            is_closed: AtomicBool::new(false),
            ready: AtomicWaker::new(),
            task: AtomicPtr::new(std::ptr::null_mut()),
            last_take: AtomicUsize::new(0),
            room: Notify::new(),
            send_time_limit,
            over_since: Mutex::new(None),
            clock_running: AtomicBool::new(false),
            raised: AtomicBool::new(false),
            read_woken: AtomicBool::new(true),
            reason: OnceLock::new(),
        });
        (outbox.clone(), OutboxReceiver { outbox, quiet_takes: 0, queue_kept_small: true })
    }

    /// Asks for this outbox's own cache lines (what a push reads and writes), a few
    /// deliveries ahead of a push into it. Reads nothing.
    #[inline(always)]
    pub(crate) fn prefetch(outbox: &Arc<Outbox>) {
        let at = Arc::as_ptr(outbox).cast::<u8>();
        prefetch::line(at);
        prefetch::line(at.wrapping_add(64));
    }

    /// Asks for the queue slot the next push will fill and the session task it may wake; once
    /// [`prefetch`](Outbox::prefetch) has brought the outbox in (it reads the two hints).
    #[inline(always)]
    pub(crate) fn prefetch_slot(&self) {
        let slot = self.next_slot.load(Ordering::Relaxed);
        prefetch::line(slot);
        prefetch::line(slot.cast::<u8>().wrapping_add(std::mem::size_of::<Queued>() - 1));
        prefetch::line(self.task.load(Ordering::Relaxed));
    }

    /// Queues a frame. Returns false when the session is closed (or is being closed now
    /// because of this push); the frame is dropped then.
    #[inline]
    pub(crate) fn push(&self, frame: EncodedFrame) -> bool {
        let len = frame.len();
        self.push_with(len, || frame)
    }

    /// [`push`](Self::push) of the `len`-byte frame `make` makes, only if the push goes
    /// ahead, straight into its place in the queue (the fan-out's frames are a shared buffer:
    /// made here, they are not copied on their way in).
    #[inline(always)]
    pub(crate) fn push_with(&self, len: usize, make: impl FnOnce() -> EncodedFrame) -> bool {
        // `poll_recv_many` tells an empty queue by its byte count.
        debug_assert!(len > 0, "an empty frame");
        if self.is_closed.load(Ordering::Acquire) {
            return false;
        }
        let mut queue = lock(&self.queue);
        // Again under the lock: `close` sets the flag before it empties the queue under the
        // lock, so a push that raced it adds nothing after the queue was emptied.
        if self.is_closed.load(Ordering::Relaxed) {
            return false;
        }
        let before = queue.bytes;
        let total = before + len;
        if before > 0 && total > self.limit {
            if let Some(reason) = self.overflow(total) {
                drop(queue);
                self.close(reason);
                return false;
            }
        }
        queue.set_bytes(total, &self.queued);
        let frames = &mut queue.frames;
        let was_empty = frames.is_empty();
        if frames.capacity() == 0 {
            // Room for what the last take found, at least one (not the usual four): most
            // sessions are quiet, and hold a frame at a time; a busy one that gave its
            // capacity back after a large batch gets it back at once.
            let hint = self.last_take.load(Ordering::Relaxed);
            frames.reserve_exact(hint.clamp(1, MAX_HINT));
        }
        frames.push_back_with(|| Queued { frame: make(), lossy: None });
        self.next_slot.store(frames.next_slot(), Ordering::Relaxed);
        drop(queue);
        // The receiver registers before it looks at the queue, so only the push that makes it
        // non-empty needs to wake it.
        if was_empty {
            self.ready.wake();
        }
        true
    }

    /// Queues a MESSAGE of a lossy subscription (`SlowConsumerPolicy::DropOldest`): when the
    /// queue is over its limit, the oldest queued frames of lossy subscriptions are dropped to
    /// make room (each counted in its subscription's `missed`), and if that is not enough, this
    /// one is (counted in `missed`). `reported` is the count the frame's `missed-messages`
    /// header carries: a dropped frame gives it back. Never closes the session. Returns false
    /// when it is closed.
    pub(crate) fn push_lossy(
        &self,
        frame: EncodedFrame,
        missed: &Arc<AtomicU64>,
        reported: u64,
    ) -> bool {
        if self.is_closed.load(Ordering::Acquire) {
            return false;
        }
        let len = frame.len();
        let mut queue = lock(&self.queue);
        if self.is_closed.load(Ordering::Relaxed) {
            return false;
        }
        let before_drops = queue.bytes;
        let mut queued = before_drops;
        while queued > 0 && queued + len > self.limit {
            let Some(i) = queue.frames.iter().position(|q| q.lossy.is_some()) else { break };
            let Some(old) = queue.frames.remove(i) else { break };
            if let Some((counter, carried)) = old.lossy.as_deref() {
                counter.fetch_add(1 + carried, Ordering::AcqRel);
                metrics::counter!("stompede_messages_dropped_total", "where" => "session")
                    .increment(1);
            }
            queued -= old.frame.len();
            queue.set_bytes(queued, &self.queued);
        }
        self.notify_crossings(before_drops, queued);
        if queued > 0 && queued + len > self.limit {
            // Frames being written, or other subscriptions' frames, fill the queue.
            missed.fetch_add(1 + reported, Ordering::AcqRel);
            metrics::counter!("stompede_messages_dropped_total", "where" => "session").increment(1);
            return true;
        }
        queue.set_bytes(queued + len, &self.queued);
        let was_empty = queue.frames.is_empty();
        let lossy = Some(Box::new((missed.clone(), reported)));
        queue.frames.push_back(Queued { frame, lossy });
        self.next_slot.store(queue.frames.next_slot(), Ordering::Relaxed);
        drop(queue);
        if was_empty {
            self.ready.wake();
        }
        true
    }

    /// Whether more than the limit waits to be written.
    pub(crate) fn over_limit(&self) -> bool {
        self.queued.load(Ordering::Acquire) > self.limit
    }

    /// Completes when no more than the limit waits to be written, or the outbox is closed.
    pub(crate) async fn under_limit(&self) {
        self.at_most(self.limit).await;
    }

    /// Completes when no more than half the limit waits to be written, or the outbox is
    /// closed. Half, not the limit: a publisher held back resumes with room for many messages,
    /// not one (resuming at the limit made every SEND of a full-speed publisher a wait and a
    /// wake-up, and its subscribers write one frame per batch).
    pub(crate) async fn room(&self) {
        self.at_most(self.low_water()).await;
    }

    async fn at_most(&self, bytes: usize) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued.load(Ordering::Acquire) <= bytes
                || self.is_closed.load(Ordering::Acquire)
            {
                return;
            }
            notified.await;
        }
    }

    /// Where publishers held back by this outbox resume: half the limit.
    fn low_water(&self) -> usize {
        self.limit / 2
    }

    /// Why a queue that now holds `total` bytes, over the limit, must be closed, if it must:
    /// at twice the limit at once, otherwise once it has stayed over for the send time limit.
    #[inline(never)]
    fn overflow(&self, total: usize) -> Option<String> {
        if total > self.limit.saturating_mul(2) {
            return Some(format!(
                "slow consumer: outbound queue reached {total} bytes, twice the {}-byte send buffer limit (raise send_buffer_size_limit, or make the client read faster)",
                self.limit
            ));
        }
        let since = *lock(&self.over_since).get_or_insert_with(|| {
            self.clock_running.store(true, Ordering::Release);
            Instant::now()
        });
        (since.elapsed() > self.send_time_limit).then(|| {
            format!(
                "slow consumer: outbound queue stayed over the {}-byte send buffer limit for more than {:?} (the send time limit)",
                self.limit, self.send_time_limit
            )
        })
    }

    /// Records that `bytes` of queued frames reached the transport; returns whether that
    /// brought the queue back to its limit from above it. Publishers waiting for room are
    /// woken when it drops to the limit and to half the limit.
    pub(crate) fn written(&self, bytes: usize) -> bool {
        let (before, left) = {
            let mut queue = lock(&self.queue);
            let before = queue.bytes;
            debug_assert!(bytes <= before, "{bytes} bytes written of {before} queued");
            queue.set_bytes(before.saturating_sub(bytes), &self.queued);
            (before, queue.bytes)
        };
        self.notify_crossings(before, left);
        if left <= self.limit
            && self.clock_running.load(Ordering::Acquire)
            && self.clock_running.swap(false, Ordering::AcqRel)
        {
            *lock(&self.over_since) = None;
        }
        before > self.limit && left <= self.limit
    }

    /// Wakes the publishers waiting for room when the queue went from `before` bytes down to
    /// `left`, past the limit or half of it.
    fn notify_crossings(&self, before: usize, left: usize) {
        let low = self.low_water();
        if (before > low && left <= low) || (before > self.limit && left <= self.limit) {
            self.room.notify_waiters();
        }
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Asks the session to close, for `reason` (the first reason given wins), and drops
    /// whatever is queued.
    pub(crate) fn close(&self, reason: String) {
        let _ = self.reason.set(reason);
        self.is_closed.store(true, Ordering::Release);
        self.ready.wake();
        self.room.notify_waiters();
        let mut queue = lock(&self.queue);
        self.next_slot.store(std::ptr::null_mut(), Ordering::Relaxed);
        let dropped: usize = std::mem::take(&mut queue.frames).iter().map(|q| q.frame.len()).sum();
        debug_assert!(dropped <= queue.bytes, "{dropped} bytes dropped of {} queued", queue.bytes);
        let left = queue.bytes.saturating_sub(dropped);
        queue.set_bytes(left, &self.queued);
    }

    /// Why the session was closed, if it was. The flag first: it sits in the cache line every
    /// take reads, the reason does not (a line missed per quiet delivery, looked at after
    /// every take).
    pub(crate) fn close_reason(&self) -> Option<&str> {
        if !self.is_closed.load(Ordering::Acquire) {
            return None;
        }
        self.reason.get().map(String::as_str)
    }

    /// Raises the session's signal and wakes its task. Whatever the session must read to know
    /// why is to be stored before this.
    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.ready.wake();
    }

    /// Whether the session's signal was raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// A waker for the session's transport read: it marks the read as worth polling again
    /// and wakes the session's task (see [`Gate`](crate::signal::Gate)).
    pub(crate) fn read_waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::new(ReadWake(self.clone())))
    }

    /// Whether the read's waker fired since [`take_read_wake`](Outbox::take_read_wake) last
    /// cleared it.
    pub(crate) fn read_woken(&self) -> bool {
        self.read_woken.load(Ordering::Acquire)
    }

    /// Clears the read's wake-up and returns whether there was one: a load, and a store only
    /// when set (a wake-up racing the store is one the read, polled next, sees for itself).
    pub(crate) fn take_read_wake(&self) -> bool {
        let woken = self.read_woken.load(Ordering::Acquire);
        if woken {
            self.read_woken.store(false, Ordering::Release);
        }
        woken
    }

    /// Marks the read as worth polling (it completed: what it reads from may hold more).
    pub(crate) fn reopen_read(&self) {
        self.read_woken.store(true, Ordering::Release);
    }
}

/// The waker a session's read is polled with: see [`Outbox::read_waker`].
struct ReadWake(Arc<Outbox>);

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.read_woken.store(true, Ordering::Release);
        self.0.ready.wake();
    }
}

impl OutboxReceiver {
    /// Waits for frames and moves up to `max` of them into `batch`. Returns 0 only when the
    /// outbox was closed. (For tests: the session loop polls
    /// [`poll_recv_many`](Self::poll_recv_many) in place.)
    #[cfg(test)]
    pub(crate) async fn recv_many(&mut self, batch: &mut Batch, max: usize) -> usize {
        std::future::poll_fn(|cx| self.poll_recv_many(cx, batch, max)).await
    }

    /// Moves up to `max` queued frames into `batch`, or registers the task to be woken by the
    /// next push: `Ready(0)` only when the outbox was closed. What the session loop polls in
    /// place, with no future made and dropped on each of its turns.
    #[inline]
    pub(crate) fn poll_recv_many(
        &mut self,
        cx: &mut std::task::Context<'_>,
        batch: &mut Batch,
        max: usize,
    ) -> Poll<usize> {
        // Something queued (the usual wake-up): taken without registering, since this
        // poll does not wait (a quiet subscriber's every delivery registered twice).
        if self.outbox.queued.load(Ordering::Acquire) > 0 {
            let taken = self.take(batch, max);
            if taken > 0 {
                return Poll::Ready(taken);
            }
        }
        // Registered before the look below: a push (or close) after it wakes this task.
        self.outbox.ready.register(cx.waker());
        self.outbox.task.store(cx.waker().data().cast_mut(), Ordering::Relaxed);
        // Nothing queued (no byte counted: every frame has some, and what was taken
        // before has been written by the time the session looks again), and no room of a
        // burst to give back (empty looks are what trims it, in `take`): no lock to take.
        // Most looks of a quiet session find nothing; a push after this one wakes it.
        if self.queue_kept_small
            && batch.frames.capacity() <= KEEP_CAPACITY
            && self.outbox.queued.load(Ordering::Acquire) == 0
            && !self.outbox.is_closed.load(Ordering::Acquire)
        {
            return Poll::Pending;
        }
        let taken = self.take(batch, max);
        if taken > 0 {
            return Poll::Ready(taken);
        }
        if self.outbox.is_closed.load(Ordering::Acquire) {
            return Poll::Ready(0);
        }
        Poll::Pending
    }

    /// Moves up to `max` more queued frames into `batch` now, after those the last take put
    /// there; returns how many. Never waits. Part of the last take for the capacity it
    /// remembers and the quiet takes it counts (see `take`).
    pub(crate) fn take_more(&mut self, batch: &mut Batch, max: usize) -> usize {
        self.take_with(batch, max, true)
    }

    /// Takes whatever is queued now, without waiting.
    pub(crate) fn drain_now(&mut self, batch: &mut Batch) {
        self.take(batch, usize::MAX);
    }

    fn take(&mut self, batch: &mut Batch, max: usize) -> usize {
        self.take_with(batch, max, false)
    }

    /// [`take`](Self::take); `more`: the rest of the last take (see
    /// [`take_more`](Self::take_more)).
    fn take_with(&mut self, batch: &mut Batch, max: usize, more: bool) -> usize {
        let mut guard = lock(&self.outbox.queue);
        let queue = &mut guard.frames;
        let found = queue.len();
        let n = found.min(max);
        batch.measured = None;
        if found > 0 && n == found && batch.is_empty() {
            // All of it: the buffers trade places (see `Batch`).
            std::mem::swap(queue, &mut batch.frames);
        } else {
            queue.move_front_to(n, &mut batch.frames);
        }
        // What it found, not what it took (and not the empty looks in between): a queue that
        // gave its capacity back gets room for a burst like the last one in one allocation.
        // The rest of a take adds to it.
        if found > 0 {
            if more {
                self.outbox.last_take.fetch_add(found, Ordering::Relaxed);
            } else {
                self.outbox.last_take.store(found, Ordering::Relaxed);
            }
        }
        // One take per write is counted: the rest of one counts with it (the batch holds
        // what both took).
        self.quiet_takes = match (more, n < KEEP_CAPACITY) {
            (true, _) if batch.frames.len() >= KEEP_CAPACITY => 0,
            (true, _) => self.quiet_takes,
            (false, true) => self.quiet_takes.saturating_add(1),
            (false, false) => 0,
        };
        let quiet = self.quiet_takes >= QUIET_TAKES;
        if queue.is_empty()
            && queue.capacity() > KEEP_CAPACITY
            && (quiet || queue.capacity() > MAX_KEPT_CAPACITY)
        {
            *queue = Ring::new();
        }
        if quiet && found == 0 && batch.is_empty() && batch.frames.capacity() > KEEP_CAPACITY {
            // The batch's buffer too, once the session has looked and found nothing a few
            // times (a heart-beat or a read since its last burst): an idle session keeps room
            // for a few frames, not a burst's worth, in either buffer.
            batch.frames.shrink_to(KEEP_CAPACITY);
        }
        self.outbox.next_slot.store(queue.next_slot(), Ordering::Relaxed);
        self.queue_kept_small = queue.capacity() <= KEEP_CAPACITY;
        n
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        // Publishers may still hold this session's subscriptions for a moment: make their
        // pushes no-ops and free what is queued.
        self.outbox.close("session ended".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::{Command, Frame, Version, encode};

    fn frame(size: usize) -> EncodedFrame {
        encode(&Frame::new(Command::Message).body(vec![b'x'; size]), Version::V1_2)
    }

    /// What a session does once it wrote `batch` (its `n` frames): the outbox counts their
    /// bytes written, the batch is emptied.
    fn wrote(outbox: &Outbox, batch: &mut Batch, n: usize) {
        outbox.written(batch.iter().map(EncodedFrame::len).sum());
        batch.written(n);
    }

    #[test]
    fn the_rest_of_a_take_counts_with_it() {
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let mut batch = Batch::default();
        let push = |n: usize| (0..n).for_each(|_| assert!(outbox.push(frame(10))));
        push(2);
        assert_eq!(rx.take(&mut batch, usize::MAX), 2);
        assert_eq!((outbox.last_take.load(Ordering::Relaxed), rx.quiet_takes), (2, 1));
        push(3);
        assert_eq!(rx.take_more(&mut batch, usize::MAX), 3);
        assert_eq!(batch.len(), 5, "after the first take's frames");
        assert_eq!(
            (outbox.last_take.load(Ordering::Relaxed), rx.quiet_takes),
            (5, 1),
            "one take of five, not a second quiet take of three"
        );
        push(KEEP_CAPACITY);
        rx.take_more(&mut batch, usize::MAX);
        assert_eq!(rx.quiet_takes, 0, "a write of {} frames is not a quiet one", batch.len());
    }

    #[test]
    fn an_empty_queue_accepts_any_frame() {
        let (outbox, _rx) = Outbox::new(100, Duration::from_secs(10));
        assert!(outbox.push(frame(1000)));
        assert!(outbox.close_reason().is_none());
    }

    #[test]
    fn reaching_twice_the_limit_closes_at_once_and_frees_the_bytes() {
        let (outbox, _rx) = Outbox::new(1000, Duration::from_secs(3600));
        let mut pushed = 0;
        while outbox.push(frame(100)) {
            pushed += 1;
            assert!(pushed < 100, "the queue never closed");
        }
        assert!(outbox.close_reason().unwrap().contains("twice the 1000-byte"));
        assert!(outbox.queued_bytes() <= 2000);
        assert!(!outbox.push(frame(1)), "a closed outbox takes nothing");
    }

    #[test]
    fn staying_over_the_limit_past_the_time_limit_closes() {
        let limit = Duration::from_millis(300);
        let (outbox, _rx) = Outbox::new(150, limit);
        assert!(outbox.push(frame(100)));
        // Over the limit for the first time: the clock starts, well within the time limit.
        assert!(outbox.push(frame(10)));
        // The behaviour under test is "stays over the limit for longer than the time limit":
        // let that time pass, then the next push closes the session.
        std::thread::sleep(limit + Duration::from_millis(50));
        assert!(!outbox.push(frame(10)));
        assert!(outbox.close_reason().unwrap().contains("send time limit"));
    }

    #[test]
    fn catching_up_resets_the_clock() {
        let (outbox, mut rx) = Outbox::new(150, Duration::from_millis(50));
        assert!(outbox.push(frame(100)));
        assert!(outbox.push(frame(100)));
        let mut batch = Batch::default();
        rx.drain_now(&mut batch);
        outbox.written(batch.iter().map(EncodedFrame::len).sum());
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(outbox.over_since.lock().unwrap().is_none());
    }

    #[test]
    fn a_clock_left_running_under_the_limit_is_cleared_by_the_next_write() {
        let (outbox, mut rx) = Outbox::new(150, Duration::from_secs(10));
        let missed = Arc::new(AtomicU64::new(0));
        assert!(outbox.push_lossy(frame(60), &missed, 0));
        // An ordinary frame takes the queue over the limit: the clock starts.
        assert!(outbox.push(frame(60)));
        assert!(outbox.over_since.lock().unwrap().is_some());
        // Dropping the lossy frame brings it back under the limit, with no write.
        assert!(outbox.push_lossy(frame(10), &missed, 0));
        assert_eq!(missed.load(Ordering::Acquire), 1);
        assert!(!outbox.over_limit());
        let mut batch = Batch::default();
        rx.drain_now(&mut batch);
        let first = batch.iter().next().map_or(0, EncodedFrame::len);
        outbox.written(first);
        assert!(
            outbox.over_since.lock().unwrap().is_none(),
            "a stale clock would close the session at its next brief overflow"
        );
    }

    #[tokio::test]
    async fn a_publisher_held_back_resumes_at_half_the_limit() {
        use futures_util::FutureExt;
        let (outbox, mut rx) = Outbox::new(1000, Duration::from_secs(10));
        while !outbox.over_limit() {
            assert!(outbox.push(frame(100)));
        }
        let mut batch = Batch::default();
        rx.drain_now(&mut batch);
        let mut sizes = batch.iter().map(EncodedFrame::len).peekable();
        let mut room = Box::pin(outbox.room());
        assert!(room.as_mut().now_or_never().is_none(), "over the limit: no room");
        // Written down to just over half the limit: still no room.
        let mut left = outbox.queued_bytes();
        while let Some(size) = sizes.next_if(|&size| left - size > 500) {
            outbox.written(size);
            left -= size;
        }
        assert!(left > 500 && left <= 1000, "{left}");
        assert!(room.as_mut().now_or_never().is_none(), "under the limit, over half: no room yet");
        for size in sizes {
            outbox.written(size);
        }
        assert!(room.as_mut().now_or_never().is_some(), "at half the limit: room");
    }

    #[test]
    fn a_take_hands_the_queue_over_and_quiet_or_large_buffers_are_given_back() {
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let queue_capacity = || outbox.queue.lock().unwrap().frames.capacity();
        let mut batch = Batch::default();
        // One turn of a session: `count` frames queued, taken and written. Returns the
        // capacity of the buffer the batch was handed.
        let mut turn = |count: usize, batch: &mut Batch| {
            for _ in 0..count {
                assert!(outbox.push(frame(10)));
            }
            rx.drain_now(batch);
            assert_eq!(batch.len(), count);
            let handed = batch.frames.capacity();
            batch.written(count);
            handed
        };
        // A burst is handed over whole: the queue's own buffer, not a copy...
        let burst = turn(100, &mut batch);
        assert!(burst >= 100, "{burst}");
        // ...which a busy session keeps for its next burst.
        assert_eq!(batch.frames.capacity(), burst);
        // Quiet long enough: both buffers are small again.
        for _ in 0..=QUIET_TAKES {
            turn(1, &mut batch);
        }
        assert!(queue_capacity() <= KEEP_CAPACITY, "{}", queue_capacity());
        assert!(batch.frames.capacity() <= KEEP_CAPACITY, "{}", batch.frames.capacity());
        // A burst past MAX_KEPT_CAPACITY is given back as soon as it is written.
        let burst = turn(MAX_KEPT_CAPACITY + 1, &mut batch);
        assert!(burst > MAX_KEPT_CAPACITY, "{burst}");
        assert!(batch.frames.capacity() <= KEEP_CAPACITY, "{}", batch.frames.capacity());
        assert!(queue_capacity() <= KEEP_CAPACITY, "{}", queue_capacity());
    }

    #[test]
    fn an_idle_session_gives_a_bursts_room_back_after_a_few_empty_looks() {
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let mut batch = Batch::default();
        for _ in 0..100 {
            assert!(outbox.push(frame(10)));
        }
        assert_eq!(rx.take(&mut batch, 128), 100);
        wrote(&outbox, &mut batch, 100);
        assert!(batch.frames.capacity() >= 100, "a busy session keeps its room");
        // A heart-beat or a read wakes the session now and then; the outbox stays empty.
        for _ in 0..QUIET_TAKES {
            assert_eq!(rx.take(&mut batch, 128), 0);
        }
        assert!(batch.frames.capacity() <= KEEP_CAPACITY, "{}", batch.frames.capacity());
        assert!(outbox.queue.lock().unwrap().frames.capacity() <= KEEP_CAPACITY);
    }

    /// The same through `recv_many`, which skips the lock for an empty outbox only once there
    /// is nothing to give back.
    #[test]
    fn an_idle_session_waiting_in_recv_many_gives_a_bursts_room_back() {
        use futures_util::FutureExt;
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let mut batch = Batch::default();
        for _ in 0..200 {
            assert!(outbox.push(frame(10)));
        }
        assert_eq!(rx.recv_many(&mut batch, 128).now_or_never(), Some(128));
        wrote(&outbox, &mut batch, 128);
        assert_eq!(rx.recv_many(&mut batch, 128).now_or_never(), Some(72));
        wrote(&outbox, &mut batch, 72);
        for _ in 0..QUIET_TAKES {
            assert_eq!(rx.recv_many(&mut batch, 128).now_or_never(), None, "nothing queued");
        }
        assert!(batch.frames.capacity() <= KEEP_CAPACITY, "{}", batch.frames.capacity());
        assert!(outbox.queue.lock().unwrap().frames.capacity() <= KEEP_CAPACITY);
        // Trimmed: a quiet session's frame is taken, and its empty looks skip the lock.
        assert!(outbox.push(frame(10)));
        assert_eq!(rx.recv_many(&mut batch, 128).now_or_never(), Some(1));
        assert!(rx.queue_kept_small);
    }

    #[test]
    fn a_take_that_found_frames_registers_nothing_and_the_next_wait_does() {
        use crate::signal::WakeCount;
        use std::task::{Context, Waker};
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let mut batch = Batch::default();
        let (taker, waiter) = (Arc::new(WakeCount::default()), Arc::new(WakeCount::default()));
        let mut poll_with = |count: &Arc<WakeCount>, batch: &mut Batch| {
            let waker = Waker::from(count.clone());
            let mut recv = std::pin::pin!(rx.recv_many(batch, 128));
            recv.as_mut().poll(&mut Context::from_waker(&waker))
        };
        assert!(outbox.push(frame(10)));
        assert_eq!(poll_with(&taker, &mut batch), Poll::Ready(1));
        wrote(&outbox, &mut batch, 1);
        assert!(outbox.push(frame(10)), "pushed between the take and the next wait");
        assert_eq!(taker.count(), 0, "the take registered no waker");
        assert_eq!(poll_with(&waiter, &mut batch), Poll::Ready(1));
        wrote(&outbox, &mut batch, 1);
        assert_eq!(poll_with(&waiter, &mut batch), Poll::Pending);
        assert!(outbox.push(frame(10)));
        assert_eq!(waiter.count(), 1, "the waiting poll's waker is woken");
    }

    #[test]
    fn a_queue_larger_than_a_batch_is_taken_a_batch_at_a_time_in_order() {
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        for size in 1..=10 {
            assert!(outbox.push(frame(size)));
        }
        let mut batch = Batch::default();
        let mut sizes = Vec::new();
        let mut taken = Vec::new();
        while outbox.queued_bytes() > 0 {
            let n = rx.take(&mut batch, 4);
            taken.push(n);
            let bytes: usize = batch.iter().map(EncodedFrame::len).sum();
            sizes.extend(batch.drain().map(|frame| frame.len()));
            outbox.written(bytes);
            batch.written(n);
        }
        assert_eq!(taken, [4, 4, 2]);
        let expected: Vec<usize> = (1..=10).map(|size| frame(size).len()).collect();
        assert_eq!(sizes, expected);
    }

    #[test]
    fn the_next_slot_hint_is_where_the_next_push_lands() {
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let mut batch = Batch::default();
        let mut checked = 0;
        for count in [3, 20, 1, 7] {
            for _ in 0..count {
                let hint = outbox.next_slot.load(Ordering::Relaxed);
                let capacity = outbox.queue.lock().unwrap().frames.capacity();
                assert!(outbox.push(frame(10)));
                let guard = outbox.queue.lock().unwrap();
                let queue = &guard.frames;
                // A push that grew the buffer moved it: the hint is stale then, and harmless.
                if queue.capacity() == capacity {
                    assert_eq!(queue.back().map(|q| q as *const Queued), Some(hint.cast_const()));
                    checked += 1;
                }
            }
            // The take hands the queue's buffer over: the hint follows the one left behind.
            rx.drain_now(&mut batch);
            wrote(&outbox, &mut batch, count);
        }
        assert!(checked >= 20, "only {checked} pushes into a buffer with room");
    }

    #[test]
    fn a_queue_entry_stays_small() {
        // Every queued delivery costs this much queue memory, copied on every push and take:
        // a frame's head and body, and the rarely used lossy tag behind one pointer.
        assert!(std::mem::size_of::<Queued>() <= 56, "{}", std::mem::size_of::<Queued>());
    }

    #[test]
    fn dropping_the_receiver_closes_the_outbox() {
        let (outbox, rx) = Outbox::new(1000, Duration::from_secs(10));
        assert!(outbox.push(frame(10)));
        drop(rx);
        assert!(!outbox.push(frame(10)));
        assert_eq!(outbox.queued_bytes(), 0, "queued frames were freed");
    }

    #[test]
    fn a_batch_remembers_its_sizes_only_until_its_frames_change() {
        let (outbox, mut rx) = Outbox::new(1 << 20, Duration::from_secs(10));
        let sizes = [frame(10), frame(300), frame(20)].map(|f| f.len());
        for size in [10, 300, 20] {
            assert!(outbox.push(frame(size)));
        }
        let mut batch = Batch::default();
        rx.drain_now(&mut batch);
        assert_eq!(batch.measured(), None, "a take has not measured anything");
        let mut seen = Vec::new();
        let measured = batch.measure(|frame, len| {
            assert_eq!(frame.len(), len);
            seen.push(len);
        });
        assert_eq!(seen, sizes);
        let expected = Measured { bytes: sizes.iter().sum(), largest: sizes[1] };
        assert_eq!((measured, batch.measured()), (expected, Some(expected)));
        batch.push(frame(5));
        assert_eq!(batch.measured(), None, "a frame more");
        batch.measure(|_, _| {});
        let _ = batch.drain().count();
        assert_eq!(batch.measured(), None, "drained");
        batch.measure(|_, _| {});
        assert!(outbox.push(frame(1)));
        rx.drain_now(&mut batch);
        assert_eq!(batch.measured(), None, "taken into");
        batch.measure(|_, _| {});
        batch.written(1);
        assert_eq!(batch.measured(), None, "written");
    }
}
