//! Cross-process wake-ups on Postgres: a dedicated connection that `LISTEN`s on
//! [`EVENTS_CHANNEL`](crate::EVENTS_CHANNEL), which the store `NOTIFY`s once work it added has
//! committed (so a woken dispatcher or live stream always finds the rows). Both the dispatcher
//! and the API's live event hub listen through this one function. When Postgres restarts the
//! connection is re-established with a short backoff (at most [`MAX_RECONNECT_BACKOFF`], so the
//! listener is back within half a second of the database), and the caller is woken once on
//! every (re)connect because notifications sent while nobody listened are lost: a dispatcher
//! or live stream that was backing off from the outage looks again at once.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;

/// What a notification announces, from its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// Events were committed, and deliveries any dispatcher may claim with them.
    Events,
    /// Events were committed with no delivery left to claim (none matched, or all went
    /// straight to the dispatcher of the process that wrote them): only event watchers care.
    Logged,
    /// Existing deliveries were made due again (a manual retry or recovery).
    Retries,
    /// The listener (re)connected: anything may have been missed.
    Anything,
}

/// The payload `NOTIFY` carries for [`Announcement::Retries`].
pub const RETRIES_PAYLOAD: &str = "retry";

/// The payload `NOTIFY` carries for [`Announcement::Logged`].
pub const LOGGED_PAYLOAD: &str = "logged";

/// The longest pause between two attempts to reconnect the listener. Kept short: events
/// accepted right after the database is back must not wait for a long backoff to run out, and
/// one connection attempt per half second costs the database nothing.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// The pause before reconnect attempt `failures` (1, 2, …): 100 ms doubling, capped at
/// [`MAX_RECONNECT_BACKOFF`].
pub fn reconnect_backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms).min(MAX_RECONNECT_BACKOFF)
}

/// Listens for committed work on `url` and calls `wake` for every notification (and once per
/// connection, with [`Announcement::Anything`]), until `stop` resolves. Never returns early:
/// connection failures are logged and retried with [`reconnect_backoff`].
pub async fn listen_for_events(
    url: String,
    wake: impl Fn(Announcement) + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut failures = 0;
    loop {
        let connected = std::sync::atomic::AtomicBool::new(false);
        let session = async {
            let mut conn = AsyncPgConnection::establish(&url)
                .await
                .map_err(|e| e.to_string())?;
            diesel::sql_query(format!("LISTEN {}", crate::EVENTS_CHANNEL))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!("listening for committed events");
            connected.store(true, std::sync::atomic::Ordering::Relaxed);
            // Anything committed while we were not listening is caught by this first wake.
            wake(Announcement::Anything);
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            while let Some(item) = notifications.next().await {
                match item {
                    Ok(n) if n.payload == RETRIES_PAYLOAD => wake(Announcement::Retries),
                    Ok(n) if n.payload == LOGGED_PAYLOAD => wake(Announcement::Logged),
                    Ok(_) => wake(Announcement::Events),
                    Err(error) => return Err(error.to_string()),
                }
            }
            Err::<(), String>("the listening connection closed".into())
        };
        let result = tokio::select! {
            _ = &mut stop => return,
            result = session => result,
        };
        if std::sync::atomic::AtomicBool::load(&connected, std::sync::atomic::Ordering::Relaxed) {
            // A working connection that broke is retried quickly, not after the last backoff.
            failures = 0;
        }
        failures += 1;
        let backoff = reconnect_backoff(failures);
        if let Err(error) = result {
            // Said once per outage, not at every attempt.
            if failures == 1 {
                tracing::warn!(%error, "event listener lost Postgres; reconnecting");
            } else {
                tracing::debug!(%error, retry_in_ms = backoff.as_millis() as u64, "event listener still cannot reach Postgres");
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnecting_backs_off_briefly_and_never_past_half_a_second() {
        assert_eq!(reconnect_backoff(1), Duration::from_millis(100));
        assert_eq!(reconnect_backoff(2), Duration::from_millis(200));
        assert_eq!(reconnect_backoff(3), Duration::from_millis(400));
        for failures in 4..100 {
            assert_eq!(reconnect_backoff(failures), MAX_RECONNECT_BACKOFF);
        }
    }
}
