//! The retry schedule of the delivery protocol: after the k-th failed attempt (k ≥ 1) wait
//! `d` (constant), `d·k` (linear) or `d·2^(k-1)` (exponential), each delay capped at 24 hours,
//! with no jitter. A `Retry-After` hint can push the next attempt later, never earlier, never
//! past the cap.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};

/// The longest Herald ever waits between two attempts: 24 hours, in milliseconds.
pub const MAX_DELAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How the delay grows from one attempt to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Same delay every time.
    Constant,
    /// `delaySeconds · k`.
    Linear,
    /// `delaySeconds · 2^(k-1)`.
    Exponential,
}

impl Backoff {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Linear => "linear",
            Self::Exponential => "exponential",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Constant, Self::Linear, Self::Exponential]
            .into_iter()
            .find(|b| b.as_str() == text)
    }
}

/// A webhook's retry policy; always within the documented bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    policy: Backoff,
    delay_seconds: u32,
    attempts: u32,
}

impl Default for RetryPolicy {
    /// Exponential from 2 s, 15 attempts in total.
    fn default() -> Self {
        Self {
            policy: Backoff::Exponential,
            delay_seconds: 2,
            attempts: 15,
        }
    }
}

impl RetryPolicy {
    /// Allowed `delaySeconds`.
    pub const DELAY_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;
    /// Allowed `attempts` (total, including the first).
    pub const ATTEMPTS_RANGE: std::ops::RangeInclusive<u32> = 1..=30;

    /// A policy, or a 422 naming the out-of-range field.
    pub fn new(policy: Backoff, delay_seconds: u32, attempts: u32) -> Result<Self, DomainError> {
        if !Self::DELAY_RANGE.contains(&delay_seconds) {
            return Err(DomainError::invalid(
                "retryPolicy.delaySeconds",
                "retryPolicy.delaySeconds must be between 1 and 3600",
            ));
        }
        if !Self::ATTEMPTS_RANGE.contains(&attempts) {
            return Err(DomainError::invalid(
                "retryPolicy.attempts",
                "retryPolicy.attempts must be between 1 and 30",
            ));
        }
        Ok(Self {
            policy,
            delay_seconds,
            attempts,
        })
    }

    /// The growth rule.
    pub fn policy(&self) -> Backoff {
        self.policy
    }

    /// The base delay in seconds.
    pub fn delay_seconds(&self) -> u32 {
        self.delay_seconds
    }

    /// Attempts in total before a delivery is dead-lettered.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Milliseconds to wait after the `failed_attempts`-th failure (≥ 1), capped at 24 h.
    pub fn delay_after(&self, failed_attempts: u32) -> i64 {
        let k = u64::from(failed_attempts.max(1));
        let base_ms = u64::from(self.delay_seconds) * 1000;
        let delay = match self.policy {
            Backoff::Constant => base_ms,
            Backoff::Linear => base_ms.saturating_mul(k),
            Backoff::Exponential => {
                let shift = (k - 1).min(40) as u32;
                base_ms.saturating_mul(1u64 << shift)
            }
        };
        delay.min(MAX_DELAY_MS as u64) as i64
    }

    /// When to try next after the `failed_attempts`-th failure at `now`, or `None` when the
    /// budget is spent. `retry_after_ms` (from a 429/503) only ever moves the time later,
    /// and never past the 24 h cap.
    pub fn next_attempt_at(
        &self,
        now: i64,
        failed_attempts: u32,
        retry_after_ms: Option<i64>,
    ) -> Option<i64> {
        if failed_attempts >= self.attempts {
            return None;
        }
        let scheduled = self.delay_after(failed_attempts);
        let hinted = retry_after_ms.unwrap_or(0).clamp(0, MAX_DELAY_MS);
        Some(now + scheduled.max(hinted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(kind: Backoff, d: u32, n: u32) -> RetryPolicy {
        RetryPolicy::new(kind, d, n).unwrap()
    }

    #[test]
    fn default_is_exponential_2s_15_attempts() {
        let p = RetryPolicy::default();
        let delays: Vec<i64> = (1..=4).map(|k| p.delay_after(k)).collect();
        assert_eq!(delays, [2_000, 4_000, 8_000, 16_000]);
        assert_eq!(p.attempts(), 15);
    }

    #[test]
    fn constant_and_linear_follow_their_formulas() {
        let c = policy(Backoff::Constant, 5, 10);
        assert_eq!(
            (1..=3).map(|k| c.delay_after(k)).collect::<Vec<_>>(),
            [5_000, 5_000, 5_000]
        );
        let l = policy(Backoff::Linear, 5, 10);
        assert_eq!(
            (1..=3).map(|k| l.delay_after(k)).collect::<Vec<_>>(),
            [5_000, 10_000, 15_000]
        );
    }

    #[test]
    fn budget_ends_after_the_last_attempt() {
        let p = policy(Backoff::Constant, 1, 3);
        assert_eq!(p.next_attempt_at(0, 1, None), Some(1_000));
        assert_eq!(p.next_attempt_at(0, 2, None), Some(1_000));
        assert_eq!(p.next_attempt_at(0, 3, None), None);
    }

    #[test]
    fn retry_after_only_delays_and_is_capped() {
        let p = policy(Backoff::Constant, 10, 5);
        assert_eq!(p.next_attempt_at(0, 1, Some(1_000)), Some(10_000));
        assert_eq!(p.next_attempt_at(0, 1, Some(60_000)), Some(60_000));
        assert_eq!(p.next_attempt_at(0, 1, Some(i64::MAX)), Some(MAX_DELAY_MS));
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        for (d, n, field) in [
            (0, 5, "retryPolicy.delaySeconds"),
            (3601, 5, "retryPolicy.delaySeconds"),
            (1, 0, "retryPolicy.attempts"),
            (1, 31, "retryPolicy.attempts"),
        ] {
            match RetryPolicy::new(Backoff::Linear, d, n) {
                Err(DomainError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected 422 for {d}/{n}, got {other:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn schedule_is_monotonic_and_capped(d in 1u32..=3600, k in 1u32..=60, kind in 0usize..3) {
            let kind = [Backoff::Constant, Backoff::Linear, Backoff::Exponential][kind];
            let p = policy(kind, d, 30);
            let this = p.delay_after(k);
            let next = p.delay_after(k + 1);
            prop_assert!(this >= 1_000);
            prop_assert!(next >= this);
            prop_assert!(next <= MAX_DELAY_MS);
        }

        #[test]
        fn retry_after_never_brings_an_attempt_forward(d in 1u32..=3600, k in 1u32..30, hint in 0i64..200_000_000) {
            let p = policy(Backoff::Exponential, d, 30);
            let plain = p.next_attempt_at(0, k, None).unwrap();
            let hinted = p.next_attempt_at(0, k, Some(hint)).unwrap();
            prop_assert!(hinted >= plain);
            prop_assert!(hinted <= MAX_DELAY_MS);
        }
    }
}
