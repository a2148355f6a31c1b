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

/// A store whose commits do not wait for the WAL flush (`synchronous_commit = off` on every
/// connection). Only for the dispatcher's own writes — claims, outcomes, releases — where a
/// write lost to a database crash means at worst that an attempt is repeated, which
/// at-least-once delivery allows. Events are never written through it.
pub(crate) fn open_relaxed(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
    use diesel_async::pooled_connection::ManagerConfig;
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    use futures_util::FutureExt;
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(|url| {
        async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            conn.batch_execute("SET synchronous_commit = off")
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = Pool::builder(manager)
        .max_size(options.max_connections)
        .build()
        .map_err(StoreError::new)?;
    Ok(PgStore { pool })
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

    /// Leases up to `limit` due deliveries of `lane` in one statement: the rows are picked
    /// `FOR UPDATE SKIP LOCKED` (so concurrent dispatchers never wait on or share a row),
    /// leased, and returned joined with their webhook and event.
    pub async fn claim(
        conn: &mut AsyncPgConnection,
        lane: herald_domain::delivery::Lane,
        lease: &herald_domain::delivery::Lease,
        now: i64,
        limit: i64,
        excluded: &[String],
    ) -> diesel::QueryResult<Vec<crate::deliveries::ClaimRow>> {
        use diesel::sql_types::{Array, BigInt, Text};
        let sql = format!(
            "WITH claimed AS ( \
               UPDATE deliveries SET lease_owner = $1, lease_until = $2 \
               WHERE id IN ( \
                 SELECT id FROM deliveries \
                 WHERE {lane} AND next_attempt_at <= $3 \
                   AND (lease_until IS NULL OR lease_until < $3) \
                   AND webhook_id <> ALL($4) \
                 ORDER BY next_attempt_at LIMIT $5 \
                 FOR UPDATE SKIP LOCKED) \
               RETURNING id, webhook_id, event_id, attempts, budget_base, lease_until) \
             SELECT {columns} FROM claimed d \
             JOIN webhooks w ON w.id = d.webhook_id \
             LEFT JOIN events e ON e.id = d.event_id",
            lane = crate::deliveries::lane_condition(lane),
            columns = crate::deliveries::CLAIM_COLUMNS,
        );
        diesel::sql_query(sql)
            .bind::<Text, _>(&lease.owner)
            .bind::<BigInt, _>(lease.until)
            .bind::<BigInt, _>(now)
            .bind::<Array<Text>, _>(excluded)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await
    }

    /// Writes a batch of attempt outcomes in one statement: the deliveries still leased to
    /// `owner` get their new state (a delivery cancelled meanwhile keeps its status) and
    /// lose the lease, and exactly those get their attempt row.
    pub async fn complete(
        conn: &mut AsyncPgConnection,
        owner: &str,
        outcomes: &[herald_domain::delivery::AttemptOutcome],
        now: i64,
    ) -> diesel::QueryResult<usize> {
        use crate::deliveries::OutcomeColumns;
        use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
        let rows: Vec<OutcomeColumns> = outcomes.iter().map(OutcomeColumns::new).collect();
        let sql = "WITH v AS ( \
               SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::int8[], \
                                    $6::int8[], $7::int4[], $8::text[], $9::text[]) \
                 AS v(id, attempt, status, next_at, started_at, duration_ms, code, err, body)), \
             upd AS ( \
               UPDATE deliveries d SET \
                 attempts = GREATEST(d.attempts, v.attempt), \
                 last_attempt_at = v.started_at, last_status_code = v.code, last_error = v.err, \
                 status = CASE WHEN d.status = 'pending' THEN v.status ELSE d.status END, \
                 next_attempt_at = CASE WHEN d.status = 'pending' THEN v.next_at \
                                        ELSE d.next_attempt_at END, \
                 lease_owner = NULL, lease_until = NULL, updated_at = $11 \
               FROM v WHERE d.id = v.id AND d.lease_owner = $10 \
               RETURNING d.id) \
             INSERT INTO delivery_attempts \
               (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body) \
             SELECT v.id, v.attempt, v.started_at, v.duration_ms, v.code, v.err, v.body \
             FROM v JOIN upd ON upd.id = v.id \
             ON CONFLICT DO NOTHING";
        diesel::sql_query(sql)
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.next_at).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.started_at).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
            .bind::<Array<Nullable<Integer>>, _>(rows.iter().map(|r| r.code).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(rows.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
            .bind::<Text, _>(owner)
            .bind::<BigInt, _>(now)
            .execute(conn)
            .await
    }

    /// Announces deliveries made due again (manual retry, recovery) to every replica's retry
    /// lane; Postgres delivers it at commit.
    pub async fn after_retries_requeued(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        diesel::sql_query(format!(
            "NOTIFY {}, '{}'",
            super::EVENTS_CHANNEL,
            crate::listen::RETRIES_PAYLOAD
        ))
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Stores a test event and its one delivery, and announces them, in a single statement:
    /// one round trip and one commit instead of five, which is most of the test endpoint's cost.
    pub async fn insert_test_delivery(
        conn: &mut AsyncPgConnection,
        event: &NewEventRow,
        delivery: &NewDeliveryRow,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{BigInt, Bool, Nullable, Text};
        let sql = format!(
            "WITH e AS ( \
               INSERT INTO events (id, organization_id, session_id, event_type, created_at, envelope, logged) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)), \
             d AS ( \
               INSERT INTO deliveries (id, organization_id, webhook_id, event_id, event_type, status, \
                                       attempts, next_attempt_at, created_at, updated_at) \
               VALUES ($8, $9, $10, $1, $4, 'pending', 0, $11, $11, $11)) \
             SELECT pg_notify('{}', '')",
            super::EVENTS_CHANNEL
        );
        diesel::sql_query(sql)
            .bind::<Text, _>(&event.id)
            .bind::<Text, _>(&event.organization_id)
            .bind::<Nullable<Text>, _>(&event.session_id)
            .bind::<Text, _>(&event.event_type)
            .bind::<BigInt, _>(event.created_at)
            .bind::<Text, _>(&event.envelope)
            .bind::<Bool, _>(event.logged)
            .bind::<Text, _>(&delivery.id)
            .bind::<Text, _>(&delivery.organization_id)
            .bind::<Text, _>(&delivery.webhook_id)
            .bind::<BigInt, _>(delivery.created_at)
            .execute(conn)
            .await
            .map(drop)
    }
}

mod queries {
    crate::repo::store_impl!(super::PgStore, super::PgConn, backend);
    use super::backend;
}

mod delivery_queries {
    crate::deliveries::delivery_store_impl!(super::PgStore, super::PgConn, backend);
    use super::backend;
}
