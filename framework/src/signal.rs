//! [`Signal`]: the one flag a session's loop waits on for everything that may end it from
//! outside (a handler's fatal error, the application closing it, its relay connection ending,
//! the server shutting down).
//!
//! Each of those used to be a cancellation token of its own, polled on every turn of the
//! session loop: four mutex-guarded checks per wake-up, which showed at 2.4 % of the server's
//! CPU with 10,000 quiet subscribers (`docs/benchmarks.md`). A signal is polled with two atomic
//! operations, and the loop then asks the sources which one it was.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

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

    /// Ready once raised (and every time after).
    fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_raised() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A raise between the first look and the registration woke nobody: look again.
        match self.is_raised() {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// Completes once raised.
    pub(crate) fn raised(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_raised(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

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
    async fn a_raised_signal_stays_raised() {
        let signal = Signal::default();
        signal.raise();
        signal.raised().await;
        signal.raised().await;
        assert!(signal.is_raised());
    }
}
