//! Cross-process wake-ups on Postgres: a dedicated connection that `LISTEN`s on
//! [`EVENTS_CHANNEL`](crate::EVENTS_CHANNEL), which the store `NOTIFY`s once work it added has
//! committed (so a woken dispatcher or live stream always finds the rows). Both the dispatcher
//! and the API's live event hub listen through this one function. When Postgres restarts the
//! connection is re-established
//! with backoff, and the caller is woken once on every (re)connect because notifications sent
//! while nobody listened are lost.

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;

/// What a notification announces, from its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// Events (and their first deliveries) were committed.
    Events,
    /// Existing deliveries were made due again (a manual retry or recovery).
    Retries,
    /// The listener (re)connected: anything may have been missed.
    Anything,
}

/// The payload `NOTIFY` carries for [`Announcement::Retries`].
pub const RETRIES_PAYLOAD: &str = "retry";

/// Listens for committed work on `url` and calls `wake` for every notification (and once per
/// connection, with [`Announcement::Anything`]), until `stop` resolves. Never returns early:
/// connection failures are logged and retried with exponential backoff up to 5 s.
pub async fn listen_for_events(
    url: String,
    wake: impl Fn(Announcement) + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Duration::from_millis(100);
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
                    Ok(_) => wake(Announcement::Events),
                    Err(error) => return Err(error.to_string()),
                }
            }
            Err::<(), String>("the listening connection closed".into())
        };
        tokio::select! {
            _ = &mut stop => return,
            result = session => {
                if let Err(error) = result {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "event listener lost Postgres; reconnecting");
                }
            }
        }
        if std::sync::atomic::AtomicBool::load(&connected, std::sync::atomic::Ordering::Relaxed) {
            // A working connection that broke is retried quickly, not after the last backoff.
            backoff = Duration::from_millis(100);
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
