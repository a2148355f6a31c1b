//! The embedded SQLite store: one file, WAL mode, a single in-process writer, several readers.

use crate::{checkout, StoreOptions};
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::SimpleAsyncConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use herald_domain::StoreError;
use std::path::Path;

/// The SQLite connection type.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, SqliteRuntime>;

/// Where a SQLite connection runs its calls: in place, on the calling task. A read served
/// from SQLite's page cache takes microseconds, less than handing it to another thread and
/// back; and the writer runs each statement of a transaction as its own call, so handing each
/// to the blocking pool cost a thread wake-up and a context switch per statement — measured,
/// it held the embedded store to 1,400 events/s with a core idle; in place it serves 3,200.
/// The price is that a commit's `fsync` (about 0.3 ms here, once per group commit) and each
/// 1,000-row chunk of the hourly retention sweep hold the worker they run on; the runtime's
/// other workers go on.
#[derive(Clone, Copy, Debug)]
pub struct SqliteRuntime;

impl SpawnBlocking for SqliteRuntime {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        Box::pin(std::future::ready(Ok(task())))
    }

    fn get_runtime() -> Self {
        Self
    }
}

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Set on every connection: WAL for concurrent readers, a busy wait instead of instant
/// `SQLITE_BUSY`, enforced foreign keys, and full fsync so an acknowledged write survives a crash.
/// The busy wait comes first: `journal_mode` itself needs a lock, which another connection
/// (say, one checkpointing as it closes) may briefly hold.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                       PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;";

fn prepare_path(path: &Path) -> Result<String, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::new("database path is not UTF-8"))
}

pub(crate) async fn migrate(path: &Path) -> Result<(), StoreError> {
    let file = prepare_path(path)?;
    tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::establish(&file)
            .map_err(|e| StoreError::new(format!("cannot open {file}: {e}")))?;
        conn.batch_execute(PRAGMAS).map_err(StoreError::new)?;
        conn.run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::new(format!("migration failed: {e}")))?;
        Ok(())
    })
    .await
    .map_err(StoreError::new)?
}

fn pool(file: &str, size: usize) -> Result<Pool<SqliteConn>, StoreError> {
    let mut config = ManagerConfig::<SqliteConn>::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        async move {
            let opened = tokio::task::spawn_blocking(move || SqliteConnection::establish(&url))
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))??;
            let mut conn = SqliteConn::with_runtime(opened, SqliteRuntime);
            conn.batch_execute(PRAGMAS)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(file, config);
    crate::hot_first_pool(manager, size)
}

/// The embedded store: writes go through one connection (SQLite's one-writer rule, kept
/// in-process so a writer never fails on a lock upgrade), reads through several.
pub struct SqliteStore {
    reader: Pool<SqliteConn>,
    writer: Pool<SqliteConn>,
    changes: Option<ChangeBatcher>,
    webhooks: crate::webhook_cache::WebhookCache,
    /// The dispatcher in this process that new deliveries go to directly, once attached.
    direct: crate::direct::DirectSlot,
}

/// Group commit of messaging changes (see [`crate::batch`]): with one writer, this is what
/// turns many fsyncs into one.
type ChangeBatcher = crate::batch::Batcher<
    herald_domain::message::Change,
    Result<crate::message_repo::Applied, StoreError>,
>;

impl SqliteStore {
    async fn reader(&self) -> Result<Object<SqliteConn>, StoreError> {
        checkout(self.reader.get()).await
    }

    async fn writer(&self) -> Result<Object<SqliteConn>, StoreError> {
        checkout(self.writer.get()).await
    }

    fn change_batcher(&self) -> Option<&ChangeBatcher> {
        self.changes.as_ref()
    }

    /// Enabled: the embedded file is served by this one process, so every webhook write goes
    /// through this store and drops the kept lists.
    fn webhook_cache(&self) -> &crate::webhook_cache::WebhookCache {
        &self.webhooks
    }

    /// Nothing to announce: no other process shares the file, and this one's listeners are
    /// woken by the domain's `ChangeListener` (and its dispatcher by the handover).
    fn announce(&self, _claimable: bool) {}

    fn direct_slot(&self) -> &crate::direct::DirectSlot {
        &self.direct
    }
}

pub(crate) fn open(path: &Path, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
    let file = prepare_path(path)?;
    let writer = pool(&file, 1)?;
    let batch_pool = writer.clone();
    let direct = crate::direct::DirectSlot::default();
    let batch_direct = direct.clone();
    let changes = ChangeBatcher::spawn(128, move |changes| {
        let pool = batch_pool.clone();
        let direct = batch_direct.clone();
        async move {
            match checkout(pool.get()).await {
                Ok(mut conn) => message_queries::apply_batch(&mut conn, &changes, &direct).await,
                Err(error) => changes.iter().map(|_| Err(error.clone())).collect(),
            }
        }
    });
    Ok(SqliteStore {
        reader: pool(&file, options.max_connections.clamp(1, 8))?,
        writer,
        changes,
        webhooks: crate::webhook_cache::WebhookCache::enabled(),
        direct,
    })
}

pub(crate) mod backend {
    use crate::message_rows::VoteRow;
    use crate::rows::{NewDeliveryRow, NewEventRow};
    use crate::schema::{deliveries, events, poll_votes};
    use diesel::prelude::*;
    use diesel::sqlite::Sqlite;
    use diesel_async::RunQueryDsl;
    use herald_domain::events_log::{LogPosition, Unsettled};

    // SQLite has no `DEFAULT` keyword in multi-row inserts, so rows go one statement each;
    // inside the surrounding transaction that costs no extra fsync.

    /// Nothing to set up: the file's one writer commits with `synchronous = FULL` (a commit
    /// here is cheap next to Postgres's round trips), and SQLite's planner, which keeps no
    /// statistics, looks rows up by key without being told.
    pub async fn begin_completion(_conn: &mut super::SqliteConn) -> diesel::QueryResult<()> {
        Ok(())
    }

    /// Records inbound keys, skipping those recorded already; returns the keys written, as
    /// `(session_id, inbound_id)`.
    pub async fn insert_inbound_keys(
        conn: &mut super::SqliteConn,
        rows: &[crate::message_rows::InboundKeyRow],
    ) -> diesel::QueryResult<Vec<(String, String)>> {
        let mut written = Vec::new();
        for row in rows {
            let inserted = diesel::insert_into(crate::schema::inbound_keys::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if inserted > 0 {
                written.push((row.session_id.clone(), row.inbound_id.clone()));
            }
        }
        Ok(written)
    }

    /// Inserts messages, skipping those stored already; how many rows were written.
    pub async fn insert_messages(
        conn: &mut super::SqliteConn,
        rows: &[crate::message_rows::MessageRow],
    ) -> diesel::QueryResult<usize> {
        let mut written = 0;
        for row in rows {
            written += diesel::insert_into(crate::schema::messages::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        Ok(written)
    }

    /// Inserts a batch of events.
    pub async fn insert_events(
        conn: &mut super::SqliteConn,
        rows: &[NewEventRow],
    ) -> diesel::QueryResult<()> {
        for row in rows {
            diesel::insert_into(events::table)
                .values(row)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Inserts a batch of deliveries.
    pub async fn insert_deliveries(
        conn: &mut super::SqliteConn,
        rows: &[NewDeliveryRow],
    ) -> diesel::QueryResult<()> {
        for row in rows {
            diesel::insert_into(deliveries::table)
                .values(row)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Nothing to lock: the one writer already runs transactions one at a time.
    pub async fn lock_rows(
        _conn: &mut super::SqliteConn,
        _keys: &[String],
    ) -> diesel::QueryResult<()> {
        Ok(())
    }

    /// Writes voters' selections (replacing theirs), one statement per row, in order.
    pub async fn upsert_votes(
        conn: &mut super::SqliteConn,
        rows: &[VoteRow],
    ) -> diesel::QueryResult<()> {
        use diesel::upsert::excluded;
        for row in rows {
            diesel::insert_into(poll_votes::table)
                .values(row)
                .on_conflict((
                    poll_votes::session_id,
                    poll_votes::chat,
                    poll_votes::sender,
                    poll_votes::message_id,
                    poll_votes::voter,
                ))
                .do_update()
                .set((
                    poll_votes::options.eq(excluded(poll_votes::options)),
                    poll_votes::updated_at.eq(excluded(poll_votes::updated_at)),
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// The active webhooks of `orgs` with their sealed secrets, to write deliveries for.
    /// Nothing to lock: SQLite's one writer is this transaction, so no webhook can be deleted
    /// while it writes deliveries.
    pub async fn active_webhooks(
        conn: &mut super::SqliteConn,
        orgs: &[&herald_domain::OrgId],
    ) -> diesel::QueryResult<Vec<crate::rows::ActiveWebhookRow>> {
        crate::rows::active_webhooks::<Sqlite>(orgs)
            .load(conn)
            .await
    }

    /// Nothing to wait for: SQLite's one writer is this transaction, so no completion is
    /// writing attempts meanwhile.
    pub async fn lock_deliveries_of(
        _conn: &mut super::SqliteConn,
        _webhook: &str,
    ) -> diesel::QueryResult<()> {
        Ok(())
    }

    /// SQLite has no other replica to wake; the in-process listener suffices.
    pub async fn after_events_appended(_conn: &mut super::SqliteConn) -> diesel::QueryResult<()> {
        Ok(())
    }

    /// Leases up to `limit` due deliveries of `lane` and returns them joined with their
    /// webhook and event. SQLite has one writer (this connection), so picking and leasing in
    /// one immediate transaction is already exclusive; no `SKIP LOCKED` is needed.
    pub async fn claim(
        conn: &mut super::SqliteConn,
        lane: herald_domain::delivery::Lane,
        lease: &herald_domain::delivery::Lease,
        now: i64,
        limit: i64,
        webhooks: &[String],
        only: bool,
    ) -> diesel::QueryResult<Vec<crate::deliveries::ClaimRow>> {
        use diesel::sql_types::{BigInt, Text};
        use diesel::sqlite::Sqlite;
        use diesel_async::AsyncConnection;
        let placeholders = vec!["?"; webhooks.len()].join(", ");
        let matching = if only { "IN" } else { "NOT IN" };
        let pick = format!(
            "UPDATE deliveries SET lease_owner = ?, lease_until = ? \
             WHERE id IN ( \
               SELECT id FROM deliveries \
               WHERE {lane} AND next_attempt_at <= ? \
                 AND (lease_until IS NULL OR lease_until < ?) \
                 AND webhook_id {matching} ({placeholders}) \
               ORDER BY next_attempt_at LIMIT ?) \
             RETURNING id",
            lane = crate::deliveries::lane_condition(lane),
        );
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = Text)]
            id: String,
        }
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let mut query = diesel::sql_query(pick)
                .into_boxed::<Sqlite>()
                .bind::<Text, _>(lease.owner.clone())
                .bind::<BigInt, _>(lease.until)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(now);
            for webhook in webhooks {
                query = query.bind::<Text, _>(webhook.clone());
            }
            let ids: Vec<Id> = query.bind::<BigInt, _>(limit).load(conn).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let fetch = format!(
                "SELECT {columns} FROM deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id \
                 LEFT JOIN events e ON e.id = d.event_id \
                 WHERE d.id IN ({placeholders}) ORDER BY d.next_attempt_at",
                columns = crate::deliveries::CLAIM_COLUMNS,
                placeholders = vec!["?"; ids.len()].join(", "),
            );
            let mut query = diesel::sql_query(fetch).into_boxed::<Sqlite>();
            for id in ids {
                query = query.bind::<Text, _>(id.id);
            }
            query.load(conn).await
        })
        .await
    }

    /// Writes a batch of attempt outcomes in one transaction (one fsync): each delivery still
    /// leased to `owner` gets its new state (a delivery cancelled meanwhile keeps its status)
    /// and loses the lease, and then its attempt row.
    pub async fn complete(
        conn: &mut super::SqliteConn,
        owner: &str,
        outcomes: &[herald_domain::delivery::AttemptOutcome],
        now: i64,
    ) -> diesel::QueryResult<usize> {
        use crate::deliveries::OutcomeColumns;
        use diesel::sql_types::{BigInt, Integer, Nullable, Text};
        use diesel_async::AsyncConnection;
        let rows: Vec<OutcomeColumns> = outcomes.iter().map(OutcomeColumns::new).collect();
        let owner = owner.to_owned();
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let mut written = 0;
            for r in &rows {
                let updated = diesel::sql_query(
                    "UPDATE deliveries SET \
                       attempts = MAX(attempts, ?), last_attempt_at = ?, last_status_code = ?, \
                       last_error = ?, \
                       next_attempt_at = CASE WHEN status = 'pending' THEN ? ELSE next_attempt_at END, \
                       status = CASE WHEN status = 'pending' THEN ? ELSE status END, \
                       lease_owner = NULL, lease_until = NULL, updated_at = ? \
                     WHERE id = ? AND lease_owner = ?",
                )
                .bind::<Integer, _>(r.attempt)
                .bind::<BigInt, _>(r.started_at)
                .bind::<Nullable<Integer>, _>(r.code)
                .bind::<Nullable<Text>, _>(r.error.clone())
                .bind::<Nullable<BigInt>, _>(r.next_at)
                .bind::<Text, _>(r.status.clone())
                .bind::<BigInt, _>(now)
                .bind::<Text, _>(r.id.clone())
                .bind::<Text, _>(owner.clone())
                .execute(conn)
                .await?;
                if updated == 0 {
                    continue;
                }
                written += diesel::sql_query(
                    "INSERT OR IGNORE INTO delivery_attempts \
                       (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind::<Text, _>(r.id.clone())
                .bind::<Integer, _>(r.attempt)
                .bind::<BigInt, _>(r.started_at)
                .bind::<BigInt, _>(r.duration_ms)
                .bind::<Nullable<Integer>, _>(r.code)
                .bind::<Nullable<Text>, _>(r.error.clone())
                .bind::<Text, _>(r.body.clone())
                .execute(conn)
                .await?;
            }
            Ok(written)
        })
        .await
    }

    /// SQLite has no other replica to wake; the in-process listener suffices.
    pub async fn after_retries_requeued(_conn: &mut super::SqliteConn) -> diesel::QueryResult<()> {
        Ok(())
    }

    /// Stores a test event and its one delivery in one transaction.
    pub async fn insert_test_delivery(
        conn: &mut super::SqliteConn,
        event: &NewEventRow,
        delivery: &NewDeliveryRow,
    ) -> diesel::QueryResult<()> {
        use diesel_async::AsyncConnection;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            insert_events(conn, std::slice::from_ref(event)).await?;
            insert_deliveries(conn, std::slice::from_ref(delivery)).await
        })
        .await
    }

    /// The event log's order predicate on SQLite. `tx_id` is always 0 here (one writer commits
    /// in `seq` order), so the position is `seq` alone; naming `tx_id = 0` lets the
    /// `(…, tx_id, seq)` indexes give a range scan.
    pub fn after<'a>(
        query: events::BoxedQuery<'a, Sqlite>,
        pos: LogPosition,
    ) -> events::BoxedQuery<'a, Sqlite> {
        query.filter(events::tx_id.eq(pos.tx).and(events::seq.gt(pos.seq)))
    }

    /// Every committed event is settled: with a single writer, nothing can commit below it.
    pub fn settled<'a>(query: events::BoxedQuery<'a, Sqlite>) -> events::BoxedQuery<'a, Sqlite> {
        query
    }

    /// Nothing to set up for a log read: every committed event is settled here.
    pub async fn begin_log_read(_conn: &mut super::SqliteConn) -> diesel::QueryResult<()> {
        Ok(())
    }

    /// Never any: see [`settled`].
    pub async fn unsettled(
        _conn: &mut super::SqliteConn,
        _org: Option<&str>,
    ) -> diesel::QueryResult<Option<Unsettled>> {
        Ok(None)
    }
}

mod queries {
    crate::repo::store_impl!(super::SqliteStore, super::SqliteConn, backend);
    use super::backend;
}

mod delivery_queries {
    crate::deliveries::delivery_store_impl!(super::SqliteStore, super::SqliteConn, backend);
    use super::backend;
}

mod message_queries {
    crate::message_repo::messages_impl!(super::SqliteStore, super::SqliteConn, backend);
    use super::backend;
}
