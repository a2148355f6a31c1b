//! What the use cases and the dispatcher read the time through: the [`Clock`] (wall time) and
//! the [`Pause`] (waiting), so the domain never reads the system clock or sleeps itself and a
//! test can drive both.

use crate::Millis;
use async_trait::async_trait;

/// The current time.
pub trait Clock: Send + Sync {
    /// Epoch milliseconds now.
    fn now_ms(&self) -> Millis;
}

/// Waits without blocking: the one way a use case lets time pass (the read-your-writes wait of
/// the event log). The server's implementation sleeps on its runtime; a test's may just move a
/// fake clock forward.
#[async_trait]
pub trait Pause: Send + Sync {
    /// Returns after about `ms` milliseconds.
    async fn pause(&self, ms: u64);
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        // The domain reads wall time only through this port; this impl is the one place it's done.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}
