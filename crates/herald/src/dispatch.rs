//! Running the dispatcher: in-process beside the API (single-node mode: the embedded store, or
//! `herald-api --with-dispatcher`) or alone as `herald-dispatcher`, which also serves
//! `/healthz`, `/readyz` and `/metrics` on `HERALD_DISPATCHER_LISTEN`.
//!
//! Fresh deliveries written by this process's store go to its dispatcher directly (the
//! dispatcher's direct intake), leased to it, without a claim. Wake-ups for the rest come from
//! two places: this process's own commits (the direct intake, and [`crate::wake::Wakeups`] for
//! requeued retries) and, on Postgres, every replica's commits through `LISTEN herald_events`
//! on a dedicated connection that reconnects by itself when Postgres restarts.

use crate::app::{assemble, Parts, StartError};
use crate::config::Config;
use herald_delivery::{
    DeliveryMetrics, Dispatcher, DispatcherConfig, DispatcherHandle, UreqTransport,
};
use herald_domain::ports::{DeliveryQueue, Store};
use herald_http::ops::OpsState;
use herald_http::readiness::StoreReadiness;
use herald_http::MetricsSource;
use herald_store::listen::Announcement;
use herald_store::Database;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Exposes the dispatcher's metrics on `/metrics`.
pub struct DeliveryMetricsSource(pub Arc<DeliveryMetrics>);

impl MetricsSource for DeliveryMetricsSource {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}

/// The dispatcher's settings from the configuration.
pub fn dispatcher_config(config: &Config) -> DispatcherConfig {
    let mut settings = DispatcherConfig::new(config.delivery_timeout);
    settings.fresh_workers = config.delivery_workers;
    settings.retry_workers = (config.delivery_workers / 2).max(1);
    settings.per_webhook = config.delivery_per_webhook;
    settings.slow_after = config.delivery_slow_after;
    settings.retention = Duration::from_secs(u64::from(config.retention_days) * 24 * 3600);
    settings.lease_margin = config.delivery_lease_margin;
    settings.health = config.health;
    if let Database::Sqlite(_) = config.database {
        // Its one writer runs on the async workers: larger completions cost latency there.
        settings.completion_linger = Duration::ZERO;
    }
    settings
}

/// The pool a dispatcher writes its own bookkeeping through, sized like the API's.
fn open_bookkeeping(config: &Config) -> Result<Arc<dyn Store>, herald_domain::StoreError> {
    herald_store::open_for_dispatch(
        &config.database,
        &herald_store::StoreOptions {
            max_connections: config.pool_size,
        },
    )
}

/// A dispatcher running in this process.
pub struct RunningDispatcher {
    handle: DispatcherHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningDispatcher {
    /// Starts a dispatcher on `parts`, woken by this process's commits and (on Postgres) by
    /// every replica's. The deliveries this process's store writes come to it directly.
    ///
    /// On Postgres its bookkeeping (claims, outcomes, releases) goes through a pool of its own
    /// whose commits do not wait for the WAL flush, as `herald-dispatcher`'s does (see
    /// [`herald_store::open_for_dispatch`]; events accepted by the API never go through it).
    /// Sharing the API's durable pool, every claim waited for an fsync and competed with the
    /// API for connections: 10 webhooks in a closed loop, four alternated pairs, 5,700–6,340
    /// deliveries/s shared against 7,750–8,460 on a pool of its own. The embedded store has one
    /// writer, which the dispatcher shares.
    pub fn start(config: &Config, parts: &Parts) -> Result<Self, StartError> {
        let bookkeeping: Arc<dyn DeliveryQueue> = match config.database {
            Database::Postgres(_) => open_bookkeeping(config)?,
            Database::Sqlite(_) => parts.store.clone(),
        };
        Ok(Self::start_on(config, parts, bookkeeping))
    }

    /// [`RunningDispatcher::start`] with the dispatcher's bookkeeping going through `store`.
    pub fn start_on(config: &Config, parts: &Parts, store: Arc<dyn DeliveryQueue>) -> Self {
        let allow_private = config.private_destinations_allowed();
        if allow_private {
            // Said once, at start-up: the one place that decides where deliveries may go.
            tracing::warn!(
                "webhook deliveries may reach private and loopback addresses ({}; set \
                 HERALD_DELIVERY_ALLOW_PRIVATE=false to refuse them)",
                if config.allow_private.is_some() {
                    "HERALD_DELIVERY_ALLOW_PRIVATE"
                } else {
                    "the embedded store's default"
                }
            );
        }
        let mut dispatcher = Dispatcher::new(
            store.clone(),
            parts.cipher.clone(),
            parts.gateway.clock.clone(),
            Arc::new(UreqTransport::new(config.delivery_timeout, allow_private)),
            dispatcher_config(config),
        );
        // Fresh deliveries written by this process come straight here (the API's, through
        // its store; the completions' operational events', through the bookkeeping store);
        // the rest are claimed. Attaching to one store twice keeps the first.
        store.attach_direct_dispatch(dispatcher.direct_dispatch());
        parts
            .store
            .attach_direct_dispatch(dispatcher.direct_dispatch());
        let handle = dispatcher.handle();
        let (stop, stopped) = watch::channel(false);
        if let Database::Postgres(url) = &config.database {
            // Every commit, this process's included, is announced by NOTIFY; waking on local
            // commits too would only double the claims.
            let remote = handle.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(herald_store::listen::listen_for_events(
                url.clone(),
                move |announced| match announced {
                    Announcement::Events => remote.wake_fresh(),
                    Announcement::Retries => remote.wake_retry(),
                    Announcement::Anything => remote.wake(),
                    // Nothing to claim: the events' deliveries went to their writer's dispatcher.
                    Announcement::Logged => {}
                },
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ));
        } else {
            // Fresh deliveries left for a claim wake the fresh lane through the direct intake
            // (`claimable_committed`), so only requeued retries need a subscription.
            let retry = handle.clone();
            parts.wakeups.subscribe_requeued(move || retry.wake_retry());
        }
        let mut stopped = stopped;
        let task = tokio::spawn(dispatcher.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Self { handle, stop, task }
    }

    /// Its handle (wake-ups, metrics).
    pub fn handle(&self) -> &DispatcherHandle {
        &self.handle
    }

    /// Stops claiming, finishes the attempts in flight, writes their outcomes, returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// `herald-dispatcher`: delivers until `shutdown` resolves and serves the operations endpoints
/// on `config.dispatcher_listen`.
pub async fn run_dispatcher(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let listener = TcpListener::bind(config.dispatcher_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.dispatcher_listen,
            source,
        })?;
    run_dispatcher_on(config, listener, shutdown).await
}

/// [`run_dispatcher`] on an already-bound listener.
pub async fn run_dispatcher_on(
    config: Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let parts = assemble(&config).await?;
    // The standalone dispatcher writes only its own bookkeeping, so its commits need not wait
    // for the WAL flush (see `herald_store::open_for_dispatch`).
    let running = RunningDispatcher::start_on(&config, &parts, open_bookkeeping(&config)?);
    // Ready when the store takes writes: the dispatcher's own bookkeeping is writes.
    let store: Arc<dyn herald_domain::ports::StoreHealth> = parts.store.clone();
    let ops = Arc::new(OpsState {
        readiness: vec![Arc::new(StoreReadiness::new(store))],
        metrics: vec![Arc::new(DeliveryMetricsSource(
            running.handle().metrics().clone(),
        ))],
        limits: config.http_limits,
        connections: Arc::default(),
    });
    let addr = listener.local_addr().ok();
    let (ops_stop, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops_task = tokio::spawn(herald_http::ops::run(listener, ops, async move {
        let _ = ops_stopped.await;
    }));
    tracing::info!(addr = ?addr, store = %config.database.describe(), "herald-dispatcher is delivering");
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    let _ = ops_stop.send(());
    let _ = ops_task.await;
    Ok(())
}

/// Delivery gauges for an API process that does not deliver (Postgres without
/// `--with-dispatcher`): the store-wide backlog, refreshed every 5 s, so `/metrics` of either
/// binary shows the queue. Its attempt counters stay at zero: this process makes no attempts.
pub struct BacklogWatcher {
    metrics: Arc<DeliveryMetrics>,
    task: JoinHandle<()>,
}

impl BacklogWatcher {
    /// Starts refreshing the backlog gauges from `store`.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn herald_domain::ports::Clock>) -> Self {
        let metrics = Arc::new(DeliveryMetrics::default());
        let gauges = metrics.clone();
        let task = tokio::spawn(async move {
            loop {
                match store.delivery_backlog(clock.now_ms()).await {
                    Ok(backlog) => gauges.set_backlog(backlog),
                    Err(error) => tracing::debug!(%error, "could not read the delivery backlog"),
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        Self { metrics, task }
    }

    /// The gauges.
    pub fn metrics(&self) -> &Arc<DeliveryMetrics> {
        &self.metrics
    }
}

impl Drop for BacklogWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_wait_for_company_on_postgres_only() {
        let postgres = Config {
            database: Database::Postgres("postgres://127.0.0.1/herald".into()),
            ..Config::default()
        };
        assert_eq!(
            dispatcher_config(&postgres).completion_linger,
            Duration::from_millis(10)
        );
        let embedded = Config::default();
        assert!(matches!(embedded.database, Database::Sqlite(_)));
        assert_eq!(
            dispatcher_config(&embedded).completion_linger,
            Duration::ZERO
        );
    }
}
