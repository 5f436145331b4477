//! A token bucket for host work a guest drives by calling in a loop (log lines, heartbeats):
//! up to one second's worth at once, then the configured rate. Time comes from a monotonic
//! clock; nothing here sleeps, callers decide what "over the rate" means.

use std::time::Instant;

#[derive(Debug)]
pub struct RateLimit {
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// `per_sec` events a second, bursts of up to `per_sec` (at least one).
    pub fn per_second(per_sec: u32) -> Self {
        let per_sec = f64::from(per_sec.max(1));
        Self {
            per_sec,
            tokens: per_sec,
            last: Instant::now(),
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.per_sec);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut rate = RateLimit::per_second(10);
        let start = rate.last;
        let burst = (0..100).filter(|_| rate.try_take_at(start)).count();
        assert_eq!(burst, 10);
        // Half a second later, five more.
        let later = start + Duration::from_millis(500);
        let refill = (0..100).filter(|_| rate.try_take_at(later)).count();
        assert_eq!(refill, 5);
    }
}
