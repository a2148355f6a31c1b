//! PostgreSQL: pooling, migrations, and the queries only Postgres has (`NOTIFY` wake-ups).

use crate::{pool_error, StoreOptions};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use herald_domain::StoreError;

/// The Postgres connection type.
pub type PgConn = AsyncPgConnection;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The channel a committed event batch is announced on.
pub const EVENTS_CHANNEL: &str = "herald_events";

pub(crate) async fn migrate(url: &str) -> Result<(), StoreError> {
    let url = url.to_owned();
    // diesel's migration harness is synchronous; give it a thread (and runtime) of its own so
    // this works from any kind of tokio runtime.
    let run = move || -> Result<(), StoreError> {
        use diesel::Connection;
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .map_err(|e| StoreError::new(format!("cannot connect to Postgres: {e}")))?;
        conn.run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::new(format!("migration failed: {e}")))?;
        Ok(())
    };
    tokio::task::spawn_blocking(move || std::thread::spawn(run).join())
        .await
        .map_err(StoreError::new)?
        .map_err(|_| StoreError::new("migration thread panicked"))?
}

/// The store on PostgreSQL: one pool for reads and writes; any number of replicas may share
/// the database.
pub struct PgStore {
    pool: Pool<PgConn>,
}

impl PgStore {
    async fn reader(&self) -> Result<Object<PgConn>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn writer(&self) -> Result<Object<PgConn>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

pub(crate) fn open(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
    // `Fast` recycling trusts the connection's own broken flag instead of a `SELECT 1` per
    // checkout; a connection that failed a query is marked broken and replaced.
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = Pool::builder(manager)
        .max_size(options.max_connections)
        .build()
        .map_err(StoreError::new)?;
    Ok(PgStore { pool })
}

pub(crate) mod backend {
    use crate::rows::{NewDeliveryRow, NewEventRow};
    use crate::schema::{deliveries, events};
    use diesel_async::{AsyncPgConnection, RunQueryDsl};

    /// One multi-row `INSERT` for a batch of events.
    pub async fn insert_events(
        conn: &mut AsyncPgConnection,
        rows: &[NewEventRow],
    ) -> diesel::QueryResult<()> {
        diesel::insert_into(events::table)
            .values(rows)
            .execute(conn)
            .await
            .map(drop)
    }

    /// One multi-row `INSERT` for a batch of deliveries.
    pub async fn insert_deliveries(
        conn: &mut AsyncPgConnection,
        rows: &[NewDeliveryRow],
    ) -> diesel::QueryResult<()> {
        diesel::insert_into(deliveries::table)
            .values(rows)
            .execute(conn)
            .await
            .map(drop)
    }

    /// Announces committed events to every replica; Postgres delivers it at commit.
    pub async fn after_events_appended(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        diesel::sql_query(format!("NOTIFY {}", super::EVENTS_CHANNEL))
            .execute(conn)
            .await?;
        Ok(())
    }
}

mod queries {
    crate::repo::store_impl!(super::PgStore, super::PgConn, backend);
    use super::backend;
}
