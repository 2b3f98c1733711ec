//! [`Signal`]: the one flag a session's loop looks at for everything that may end it from
//! outside (a handler's fatal error, the application closing it, its relay connection ending,
//! the server shutting down); and [`Gate`], which keeps the loop from polling a read that
//! cannot have progressed.
//!
//! Each of those sources used to be a cancellation token of its own, polled on every turn of
//! the session loop: four mutex-guarded checks per wake-up, which showed at 2.4 % of the
//! server's CPU with 10,000 quiet subscribers (`docs/benchmarks.md`). Both flags now live in
//! the session's [`Outbox`], beside what every wake-up of the session reads anyway, and wake
//! the session through the outbox's one waker: a look at either is a load from a cache line
//! the loop has just read (their own allocations, each with a waker of its own, were two
//! cache lines missed and two more atomic exchanges per quiet delivery).
//!
//! What that asks of the loop: the outbox's waker is registered only when the loop is about
//! to wait (`OutboxReceiver::poll_recv_many`, polled on every turn that waits), so a raise or
//! a read's wake-up that came between the loop's look at its flag and that registration woke
//! nobody. The loop looks at both flags again after it (`session::next_event`).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::outbox::Outbox;

/// The raising end of a session's signal; cheap to clone. One made with `default` belongs to
/// no session: raising it does nothing (a handler called in-process, with no session to end).
#[derive(Clone, Default)]
pub(crate) struct Signal {
    outbox: Option<Arc<Outbox>>,
}

impl Signal {
    /// The signal of the session that writes from `outbox`.
    pub(crate) fn new(outbox: Arc<Outbox>) -> Self {
        Signal { outbox: Some(outbox) }
    }

    /// Raises the flag and wakes the session. Whatever the session must read to know why is
    /// to be stored before this.
    pub(crate) fn raise(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.raise();
        }
    }

    /// Whether it was raised.
    #[cfg(test)]
    pub(crate) fn is_raised(&self) -> bool {
        self.outbox.as_ref().is_some_and(|outbox| outbox.is_raised())
    }
}

/// Skips polling a future that cannot have progressed: the future is polled with the
/// outbox's read waker ([`Outbox::read_waker`]), and polled again only once that waker has
/// fired (or after it completed).
///
/// The session loop polls its transport's read on every turn, and most turns of a busy
/// subscriber are writes: down through the WebSocket layers, a read with nothing to read cost
/// about 800 instructions, once per delivery at low rates.
///
/// The gate registers no waker of the task's: the read's waker wakes the task through the
/// outbox, whose waker the task registers before it waits (see the module's docs).
pub(crate) struct Gate {
    outbox: Arc<Outbox>,
    /// The outbox's read waker.
    waker: Waker,
}

impl Gate {
    /// The gate of the read of the session that writes from `outbox`; it lets the first poll
    /// through.
    pub(crate) fn new(outbox: Arc<Outbox>) -> Self {
        let waker = outbox.read_waker();
        Gate { outbox, waker }
    }

    /// The future `make` makes, polled only when the gate is open: it opens when a waker the
    /// future was polled with fires, and stays open after the future completes (whatever it
    /// reads from may hold more than it took). The future is made only once the gate is open:
    /// a closed gate costs no future made and dropped (a session's read is a few hundred
    /// bytes of state, made and dropped twice per message at low rates).
    ///
    /// That is only right when every waker the future registers stays registered after it is
    /// dropped unfinished (a socket's readiness does; a timer or a cancellation token inside
    /// the future does not). With `enabled` false the future is simply awaited (and the gate
    /// left open).
    pub(crate) async fn gated<F: Future>(
        &self,
        enabled: bool,
        make: impl FnOnce() -> F,
    ) -> F::Output {
        if !enabled {
            self.outbox.reopen_read();
            return make().await;
        }
        let mut make = Some(make);
        let mut future = std::pin::pin!(None::<F>);
        std::future::poll_fn(|_| {
            if !self.outbox.take_read_wake() {
                return Poll::Pending;
            }
            if let Some(make) = make.take() {
                future.set(Some(make()));
            }
            let Some(made) = future.as_mut().as_pin_mut() else {
                // Made above, the first time the gate was open.
                return Poll::Pending;
            };
            match made.poll(&mut Context::from_waker(&self.waker)) {
                Poll::Ready(output) => {
                    self.outbox.reopen_read();
                    Poll::Ready(output)
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// A waker that counts how often it was woken, for tests of what registers and wakes.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct WakeCount(std::sync::atomic::AtomicUsize);

#[cfg(test)]
impl WakeCount {
    pub(crate) fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
impl std::task::Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Batch, OutboxReceiver};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// A source the gated future reads: counts its polls, keeps the waker of the last one, and
    /// is ready once `ready` is set.
    #[derive(Default)]
    struct Source {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Source {
        async fn read(&self) {
            std::future::poll_fn(|cx| {
                self.polls.fetch_add(1, Ordering::SeqCst);
                if self.ready.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                *self.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
        }

        /// [`read`](Self::read), which takes the readiness: the next one waits again.
        async fn read_once(&self) {
            self.read().await;
            self.ready.store(false, Ordering::SeqCst);
        }

        fn make_ready(&self) {
            self.ready.store(true, Ordering::SeqCst);
            if let Some(waker) = self.waker.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    fn outbox() -> (Arc<Outbox>, OutboxReceiver) {
        Outbox::new(1 << 20, Duration::from_secs(10))
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// What the session loop does before it waits: registers the task's waker with the
    /// outbox (nothing is queued), then looks at the flags again.
    fn register(receiver: &mut OutboxReceiver, waker: &Waker) {
        let mut batch = Batch::default();
        let polled = receiver.poll_recv_many(&mut Context::from_waker(waker), &mut batch, 16);
        assert!(polled.is_pending(), "nothing queued, not closed");
    }

    #[test]
    fn a_gated_future_is_polled_again_only_after_its_waker_fired() {
        let (outbox, _receiver) = outbox();
        let (gate, source) = (Gate::new(outbox), Source::default());
        // Recreated on every poll, as the session loop does with its read.
        assert!(poll_once(std::pin::pin!(gate.gated(true, || source.read()))).is_pending());
        assert_eq!(source.polls.load(Ordering::SeqCst), 1, "the first poll goes through");
        for _ in 0..3 {
            assert!(poll_once(std::pin::pin!(gate.gated(true, || source.read()))).is_pending());
        }
        assert_eq!(source.polls.load(Ordering::SeqCst), 1, "nothing woke it: not polled");
        source.make_ready();
        assert!(poll_once(std::pin::pin!(gate.gated(true, || source.read()))).is_ready());
        assert_eq!(source.polls.load(Ordering::SeqCst), 2);
        // Completed: the next one is polled at once (the source may hold more).
        assert!(poll_once(std::pin::pin!(gate.gated(true, || source.read()))).is_ready());
        assert_eq!(source.polls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_reads_waker_wakes_the_task_registered_with_the_outbox_and_marks_the_read() {
        let (outbox, mut receiver) = outbox();
        let (gate, source) = (Gate::new(outbox.clone()), Source::default());
        assert!(poll_once(std::pin::pin!(gate.gated(true, || source.read()))).is_pending());
        assert!(!outbox.read_woken(), "the gate's poll took the first wake-up");
        let task = Arc::new(WakeCount::default());
        register(&mut receiver, &Waker::from(task.clone()));
        source.make_ready();
        assert_eq!(task.count(), 1, "the read's waker woke the task");
        assert!(outbox.read_woken(), "and marked the read as worth polling");
    }

    #[test]
    fn a_raise_wakes_the_task_registered_with_the_outbox_and_stays_raised() {
        let (outbox, mut receiver) = outbox();
        let signal = Signal::new(outbox.clone());
        let task = Arc::new(WakeCount::default());
        register(&mut receiver, &Waker::from(task.clone()));
        assert!(!signal.is_raised());
        signal.clone().raise();
        assert_eq!(task.count(), 1);
        assert!(signal.is_raised() && outbox.is_raised());
        signal.raise();
        assert!(signal.is_raised(), "raised once, raised for good");
    }

    #[test]
    fn a_signal_of_no_session_raises_nothing() {
        let signal = Signal::default();
        signal.raise();
        assert!(!signal.is_raised());
    }

    #[tokio::test]
    async fn a_session_loop_waiting_on_the_outbox_is_woken_by_a_raise_and_by_its_read() {
        let (outbox, mut receiver) = outbox();
        let source = Arc::new(Source::default());
        let (reader, signal) = (source.clone(), Signal::new(outbox.clone()));
        let (first_read, was_read) = tokio::sync::oneshot::channel::<()>();
        let mut first_read = Some(first_read);
        let looping = outbox.clone();
        // The session loop's shape: the signal, the read behind its gate, the outbox (whose
        // poll registers the task), then the flags looked at again.
        let task = tokio::spawn(async move {
            let gate = Gate::new(looping.clone());
            let mut batch = Batch::default();
            let mut reads = 0;
            loop {
                let mut read = std::pin::pin!(gate.gated(true, || reader.read_once()));
                let event = std::future::poll_fn(|cx| {
                    if looping.is_raised() {
                        return Poll::Ready(None);
                    }
                    if read.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(()));
                    }
                    assert!(receiver.poll_recv_many(cx, &mut batch, 16).is_pending());
                    if looping.is_raised() || looping.read_woken() {
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                })
                .await;
                match event {
                    Some(()) => {
                        reads += 1;
                        if let Some(first_read) = first_read.take() {
                            let _ = first_read.send(());
                        }
                    }
                    None => return reads,
                }
            }
        });
        tokio::task::yield_now().await;
        source.make_ready();
        tokio::time::timeout(Duration::from_secs(5), was_read)
            .await
            .expect("the read was not polled after its waker fired")
            .expect("the loop ended early");
        signal.raise();
        let reads = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the raise did not end the loop")
            .expect("the loop panicked");
        assert_eq!(reads, 1);
    }
}
