//! The embedded SQLite store: one file, WAL mode, a single in-process writer, several readers.

use crate::{pool_error, StoreOptions};
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;
use herald_domain::StoreError;
use std::path::Path;

/// The SQLite connection type.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

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
    config.custom_setup = Box::new(|url| {
        async move {
            let mut conn = SqliteConn::establish(url).await?;
            conn.batch_execute(PRAGMAS)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(file, config);
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(StoreError::new)
}

/// The embedded store: writes go through one connection (SQLite's one-writer rule, kept
/// in-process so a writer never fails on a lock upgrade), reads through several.
pub struct SqliteStore {
    reader: Pool<SqliteConn>,
    writer: Pool<SqliteConn>,
    changes: Option<ChangeBatcher>,
}

/// Group commit of messaging changes (see [`crate::batch`]): with one writer, this is what
/// turns many fsyncs into one.
type ChangeBatcher = crate::batch::Batcher<
    herald_domain::message::Change,
    Result<herald_domain::message::ChangeOutcome, StoreError>,
>;

impl SqliteStore {
    async fn reader(&self) -> Result<Object<SqliteConn>, StoreError> {
        self.reader.get().await.map_err(pool_error)
    }

    async fn writer(&self) -> Result<Object<SqliteConn>, StoreError> {
        self.writer.get().await.map_err(pool_error)
    }

    fn change_batcher(&self) -> Option<&ChangeBatcher> {
        self.changes.as_ref()
    }

    /// Nothing to announce: no other process shares the file, and this one's listeners are
    /// woken by the domain's `ChangeListener`.
    fn events_committed(&self) {}
}

pub(crate) fn open(path: &Path, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
    let file = prepare_path(path)?;
    let writer = pool(&file, 1)?;
    let batch_pool = writer.clone();
    let changes = ChangeBatcher::spawn(1, 128, move |changes| {
        let pool = batch_pool.clone();
        async move {
            match pool.get().await {
                Ok(mut conn) => message_queries::apply_batch(&mut conn, &changes).await,
                Err(error) => changes.iter().map(|_| Err(pool_error(&error))).collect(),
            }
        }
    });
    Ok(SqliteStore {
        reader: pool(&file, options.max_connections.clamp(1, 8))?,
        writer,
        changes,
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

    /// SQLite has no other replica to wake; the in-process listener suffices.
    pub async fn after_events_appended(_conn: &mut super::SqliteConn) -> diesel::QueryResult<()> {
        Ok(())
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

mod message_queries {
    crate::message_repo::messages_impl!(super::SqliteStore, super::SqliteConn, backend);
    use super::backend;
}
