//! The inbound frame rate limit of one session: a token bucket.

use std::time::Duration;

use tokio::time::Instant;

/// A rate and a burst: `per_second` frames a second on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameRate {
    pub(crate) per_second: u32,
    pub(crate) burst: u32,
}

/// The bucket: refilled by elapsed time, one token a frame.
pub(crate) struct TokenBucket {
    rate: FrameRate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: FrameRate) -> Self {
        TokenBucket { rate, tokens: f64::from(rate.burst), last: Instant::now() }
    }

    /// Takes a token for one frame; `false` when the bucket is empty.
    pub(crate) fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens =
            (self.tokens + refill(elapsed, self.rate.per_second)).min(f64::from(self.rate.burst));
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

fn refill(elapsed: Duration, per_second: u32) -> f64 {
    elapsed.as_secs_f64() * f64::from(per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut bucket = TokenBucket::new(FrameRate { per_second: 10, burst: 5 });
        let start = bucket.last;
        for _ in 0..5 {
            assert!(bucket.take_at(start));
        }
        assert!(!bucket.take_at(start), "the burst is spent");
        let later = start + Duration::from_millis(100);
        assert!(bucket.take_at(later), "100 ms at 10/s refills one");
        assert!(!bucket.take_at(later));
        let much_later = later + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(bucket.take_at(much_later));
        }
        assert!(!bucket.take_at(much_later), "a long pause refills the burst, no more");
    }
}
