//! Token buckets for per-user and per-connection flood limits.

use std::time::Duration;
use tokio::time::Instant;

/// A rate and a burst: `per_second` tokens flow in, at most `burst` are banked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed at once after a quiet spell.
    pub burst: f64,
}

impl RateLimit {
    /// `per_second` events per second with bursts of `burst`.
    pub const fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }
}

/// A token bucket. Not shared between tasks: each owner keeps its own (a user's bucket is
/// kept by the engine behind a lock).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: limit.burst,
            refilled_at: Instant::now(),
        }
    }

    /// Takes one token if there is one; otherwise says how long until there will be.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(self.limit.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.limit.per_second > 0.0 {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.limit.per_second,
            ))
        } else {
            Err(Duration::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_refills_at_rate() {
        let mut bucket = TokenBucket::new(RateLimit::new(2.0, 3.0));
        for _ in 0..3 {
            assert!(bucket.try_take().is_ok());
        }
        let wait = bucket.try_take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(bucket.try_take().is_ok());
        assert!(bucket.try_take().is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(bucket.try_take().is_ok(), "refills up to the burst only");
        }
        assert!(bucket.try_take().is_err());
    }
}
