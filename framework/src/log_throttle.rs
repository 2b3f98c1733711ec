//! Warnings a flood could repeat: at most one line per interval, counting what it held back.
//!
//! A peer can make the server refuse it as often as it likes (a SockJS session past
//! `max_sessions`, a forbidden origin, a connection past `max_http_connections`); one WARN line
//! each would let it fill the log. A [`LogThrottle`] lets the first line through, then one per
//! interval, each saying how many were held back since the last.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval of every throttled warning.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// One kind of warning's throttle.
pub(crate) struct LogThrottle {
    every: Duration,
    /// When the last line went out, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(EVERY)
    }
}

impl LogThrottle {
    pub(crate) const fn new(every: Duration) -> Self {
        LogThrottle { every, state: Mutex::new((None, 0)) }
    }

    /// `Some(held_back)` when a line may be logged now (`held_back` lines were suppressed
    /// since the previous one); `None` when this one is to be held back.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut state = crate::locks::lock(&self.state);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let held_back = state.1;
                *state = (Some(now), 0);
                Some(held_back)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LogThrottle;

    #[test]
    fn a_flood_gives_one_line_then_the_count_of_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0));
        let allowed = (0..10_000).filter(|_| throttle.allow().is_some()).count();
        assert_eq!(allowed, 0);
        assert_eq!(throttle.state.lock().expect("not poisoned").1, 10_000);
    }

    #[test]
    fn the_next_line_after_the_interval_reports_what_was_held_back() {
        let throttle = LogThrottle::new(Duration::ZERO);
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), Some(0));
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        throttle.allow();
        throttle.allow();
        throttle.allow();
        throttle.state.lock().expect("not poisoned").0 = None; // as if the interval had passed
        assert_eq!(throttle.allow(), Some(2));
    }
}
