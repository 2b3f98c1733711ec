//! [`Signal`]: the one flag a session's loop waits on for everything that may end it from
//! outside (a handler's fatal error, the application closing it, its relay connection ending,
//! the server shutting down).
//!
//! Each of those used to be a cancellation token of its own, polled on every turn of the
//! session loop: four mutex-guarded checks per wake-up, which showed at 2.4 % of the server's
//! CPU with 10,000 quiet subscribers (`docs/benchmarks.md`). A signal is polled with two atomic
//! operations, and the loop then asks the sources which one it was.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// A flag raised once, from any thread, and awaited by one task.
#[derive(Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Raises the flag and wakes the task waiting on it. Whatever the waiter must read to
    /// know why is to be stored before this.
    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether it was raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Ready once raised (and every time after). `registered`: the waker this waiter last
    /// registered, if any. Only a raise takes a registered waker (and it raises the flag
    /// first), so until then the registration stands, and polling again with a waker that
    /// wakes the same task registers nothing (two atomic exchanges on each of a quiet
    /// session's polls).
    fn poll_raised(&self, cx: &mut Context<'_>, registered: &mut Option<Waker>) -> Poll<()> {
        if self.is_raised() {
            return Poll::Ready(());
        }
        if registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        self.waker.register(cx.waker());
        *registered = Some(cx.waker().clone());
        // A raise between the first look and the registration woke nobody: look again.
        match self.is_raised() {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// Completes once raised. One waiter at a time: the signal holds one waker.
    pub(crate) fn raised(&self) -> impl Future<Output = ()> + '_ {
        let mut registered = None;
        std::future::poll_fn(move |cx| self.poll_raised(cx, &mut registered))
    }
}

/// Skips polling a future that cannot have progressed: the future is polled with a waker of
/// the gate's own, and polled again only once that waker has fired (or after it completed).
///
/// The session loop polls its transport's read on every turn, and most turns of a busy
/// subscriber are writes: down through the WebSocket layers, a read with nothing to read cost
/// about 800 instructions, once per delivery at low rates.
pub(crate) struct Gate {
    state: Arc<GateState>,
    /// A waker that opens the gate and wakes the task behind it.
    waker: Waker,
}

struct GateState {
    open: AtomicBool,
    task: AtomicWaker,
}

impl Wake for GateState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate that lets the first poll through.
    pub(crate) fn new() -> Self {
        let state = Arc::new(GateState { open: AtomicBool::new(true), task: AtomicWaker::new() });
        let waker = Waker::from(state.clone());
        Gate { state, waker }
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
            self.state.open.store(true, Ordering::Release);
            return make().await;
        }
        let mut make = Some(make);
        let mut future = std::pin::pin!(None::<F>);
        std::future::poll_fn(|cx| {
            self.state.task.register(cx.waker());
            if !self.state.open.swap(false, Ordering::AcqRel) {
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
                    self.state.open.store(true, Ordering::Release);
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
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
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

        fn make_ready(&self) {
            self.ready.store(true, Ordering::SeqCst);
            if let Some(waker) = self.waker.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_gated_future_is_polled_again_only_after_its_waker_fired() {
        let (gate, source) = (Gate::new(), Source::default());
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

    #[tokio::test]
    async fn the_gates_waker_wakes_the_task_that_polled_it() {
        let source = Arc::new(Source::default());
        let reader = source.clone();
        let task = tokio::spawn(async move {
            let gate = Gate::new();
            loop {
                // Another branch keeps the loop turning, as the session's writes do.
                tokio::select! {
                    () = gate.gated(true, || reader.read()) => break,
                    () = tokio::task::yield_now() => {}
                }
            }
        });
        tokio::task::yield_now().await;
        source.make_ready();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the read was not polled after its waker fired")
            .expect("the task panicked");
    }

    #[tokio::test]
    async fn a_raise_from_another_task_wakes_the_waiter() {
        let signal = Arc::new(Signal::default());
        let raiser = signal.clone();
        let waiter = tokio::spawn(async move { signal.raised().await });
        tokio::task::yield_now().await;
        raiser.raise();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was not woken")
            .expect("the waiter panicked");
    }

    #[tokio::test]
    async fn a_waiter_polled_again_and_again_is_still_woken_by_a_raise() {
        let signal = Arc::new(Signal::default());
        let raiser = signal.clone();
        let (polled, was_polled) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(async move {
            let mut raised = std::pin::pin!(signal.raised());
            // Polled on several turns with the task's waker, as the session loop does.
            for _ in 0..3 {
                std::future::poll_fn(|cx| {
                    assert!(raised.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                tokio::task::yield_now().await;
            }
            let _ = polled.send(());
            raised.await;
        });
        was_polled.await.expect("the waiter ended early");
        raiser.raise();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was not woken")
            .expect("the waiter panicked");
    }

    #[test]
    fn a_waiter_polled_with_another_waker_registers_that_one() {
        let signal = Signal::default();
        let mut raised = std::pin::pin!(signal.raised());
        let (first, second) = (Arc::new(WakeCount::default()), Arc::new(WakeCount::default()));
        for count in [&first, &second, &second] {
            let waker = Waker::from(count.clone());
            assert!(raised.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        }
        signal.raise();
        assert_eq!(first.count(), 0, "replaced: not woken");
        assert_eq!(second.count(), 1, "the waker of the last poll is woken");
    }

    #[tokio::test]
    async fn a_raised_signal_stays_raised() {
        let signal = Signal::default();
        signal.raise();
        signal.raised().await;
        signal.raised().await;
        assert!(signal.is_raised());
    }
}
