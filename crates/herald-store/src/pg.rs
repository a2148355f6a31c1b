//! PostgreSQL: pooling, migrations, and what only Postgres has: `NOTIFY` after commits (the
//! `LISTEN` side is [`crate::listen`]), the event log's settled bound, advisory row locks, and
//! multi-row upserts.

use crate::{checkout, StoreOptions};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use herald_domain::StoreError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    notifier: Notifier,
    changes: Option<ChangeBatcher>,
    webhooks: crate::webhook_cache::WebhookCache,
    /// The dispatcher in this process that new deliveries go to directly, once attached.
    direct: crate::direct::DirectSlot,
}

/// Group commit of messaging changes (see [`crate::batch`]).
type ChangeBatcher = crate::batch::Batcher<
    herald_domain::message::Change,
    Result<crate::message_repo::Applied, StoreError>,
>;

impl PgStore {
    async fn reader(&self) -> Result<Object<PgConn>, StoreError> {
        checkout(self.pool.get()).await
    }

    async fn writer(&self) -> Result<Object<PgConn>, StoreError> {
        checkout(self.pool.get()).await
    }

    fn change_batcher(&self) -> Option<&ChangeBatcher> {
        self.changes.as_ref()
    }

    /// Disabled: other replicas write webhooks too.
    fn webhook_cache(&self) -> &crate::webhook_cache::WebhookCache {
        &self.webhooks
    }

    /// Called after a transaction that appended events has committed: every replica's
    /// listeners (`listen::listen_for_events`) are told, shortly, on [`EVENTS_CHANNEL`].
    /// Announces a commit that appended events to every replica (`claimable`: it left
    /// deliveries to claim).
    fn announce(&self, claimable: bool) {
        self.notifier.poke(claimable);
    }

    fn direct_slot(&self) -> &crate::direct::DirectSlot {
        &self.direct
    }
}

/// How long an announcement that wakes no dispatcher waits to cover more commits. At 500
/// events/s, one `NOTIFY` per commit woke this process's own listener and Postgres's listening
/// backends about 350 times a second; other replicas' live streams see events at most this
/// much later. Announcements of claimable work are never held.
const LOGGED_COALESCE: std::time::Duration = std::time::Duration::from_millis(5);

/// Sends `NOTIFY herald_events` *after* commits, coalesced: at most one announcement is in
/// flight and at most one more is queued, so each commit is followed by an announcement that
/// started after it, and a burst of commits costs a handful.
///
/// Why not `NOTIFY` inside the committing transaction (which would be simpler)? PostgreSQL
/// serializes every transaction that has issued `NOTIFY` on one lock held until its commit
/// record is flushed, which defeats group commit: measured on this machine (PostgreSQL 15,
/// 32 clients, insert + commit), 6,000 transactions/s without `NOTIFY`, 900/s with it in the
/// transaction, 5,900/s with it sent afterwards with `synchronous_commit` off for that one
/// statement (a lost announcement only costs latency: listeners also poll).
struct Notifier {
    poke: Option<tokio::sync::mpsc::Sender<()>>,
    /// Whether a commit since the last announcement left deliveries to claim.
    claimable: Arc<AtomicBool>,
}

impl Notifier {
    fn spawn(pool: Pool<PgConn>) -> Self {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no async runtime: commits will not be announced to other replicas");
            return Self::silent();
        };
        let (poke, poked) = tokio::sync::mpsc::channel::<()>(1);
        let claimable = Arc::new(AtomicBool::new(false));
        let announced = claimable.clone();
        // Ends when the store (the only sender) is dropped.
        runtime.spawn(announce_commits(poked, announced, move |payload| {
            let pool = pool.clone();
            async move {
                if let Err(error) = announce(&pool, payload).await {
                    tracing::warn!(%error, "could not announce committed events");
                }
            }
        }));
        Self {
            poke: Some(poke),
            claimable,
        }
    }

    /// A notifier that announces nothing.
    fn silent() -> Self {
        Self {
            poke: None,
            claimable: Arc::default(),
        }
    }

    /// Announces a commit; `claimable` when it left deliveries for dispatchers to claim.
    fn poke(&self, claimable: bool) {
        if claimable {
            self.claimable.store(true, Ordering::SeqCst);
        }
        if let Some(poke) = &self.poke {
            // Full means an announcement is already queued: it covers this commit too.
            let _ = poke.try_send(());
        }
    }
}

/// The notifier's task: for each poke, one announcement (`announce` with its payload) that
/// starts after it. An announcement of claimable work goes at once; one that only wakes other
/// replicas' event watchers first waits up to [`LOGGED_COALESCE`] for more commits to cover —
/// unless a commit with claimable work arrives meanwhile, which ends the wait.
async fn announce_commits<F, Fut>(
    mut poked: tokio::sync::mpsc::Receiver<()>,
    claimable: Arc<AtomicBool>,
    mut announce: F,
) where
    F: FnMut(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while poked.recv().await.is_some() {
        let until = tokio::time::Instant::now() + LOGGED_COALESCE;
        // Pokes taken here came after commits this announcement follows.
        while !claimable.load(Ordering::SeqCst) {
            match tokio::time::timeout_at(until, poked.recv()).await {
                Ok(Some(())) => {}
                Ok(None) | Err(_) => break,
            }
        }
        // Taken before the announcement: a commit flagging work after this point pokes
        // again, and that announcement carries it.
        let payload = if claimable.swap(false, Ordering::SeqCst) {
            ""
        } else {
            crate::listen::LOGGED_PAYLOAD
        };
        announce(payload).await;
    }
}

async fn announce(pool: &Pool<PgConn>, payload: &str) -> Result<(), StoreError> {
    use diesel_async::RunQueryDsl;
    let mut conn = checkout(pool.get()).await?;
    use crate::pg_sql::{Param, Prepared};
    Prepared::new(
        "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)",
        vec![
            Param::Text(EVENTS_CHANNEL.to_owned()),
            Param::Text(payload.to_owned()),
        ],
    )
    .execute(&mut conn)
    .await
    .map_err(crate::db_error)?;
    Ok(())
}

/// A pool manager whose connections run `settings` (if any) when they open.
fn manager_with(
    url: &str,
    settings: Option<&'static str>,
) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    use futures_util::FutureExt;
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // `Fast` recycling trusts the connection's own broken flag instead of a `SELECT 1` per
    // checkout; a connection that failed a query is marked broken and replaced.
    config.recycling_method = RecyclingMethod::Fast;
    if let Some(settings) = settings {
        config.custom_setup = Box::new(move |url| {
            async move {
                let mut conn = AsyncPgConnection::establish(url).await?;
                conn.batch_execute(settings)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
    }
    AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config)
}

/// A store whose commits do not wait for the WAL flush (`synchronous_commit = off` on every
/// connection). Only for the dispatcher's own writes — claims, outcomes, releases, and the
/// operational events a batch of outcomes causes — where a write lost to a database crash is
/// lost together with the outcome that caused it: the delivery is attempted again, which
/// at-least-once delivery allows, and its outcome written anew. API requests never write
/// through it.
pub(crate) fn open_relaxed(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
    let manager = manager_with(url, Some("SET synchronous_commit = off"));
    let pool = crate::hot_first_pool(manager, options.max_connections)?;
    // Its completions append operational events, announced to every replica like any other
    // commit; it has no messaging changes to batch.
    Ok(PgStore {
        notifier: Notifier::spawn(pool.clone()),
        pool,
        direct: Default::default(),
        changes: None,
        webhooks: crate::webhook_cache::WebhookCache::disabled(),
    })
}

pub(crate) fn open(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
    let manager = manager_with(url, None);
    let pool = crate::hot_first_pool(manager, options.max_connections)?;
    let batch_pool = pool.clone();
    let direct = crate::direct::DirectSlot::default();
    let batch_direct = direct.clone();
    // One group-commit writer per process (`batch.rs` says why), on a connection of the pool.
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
    Ok(PgStore {
        notifier: Notifier::spawn(pool.clone()),
        direct,
        changes,
        pool,
        webhooks: crate::webhook_cache::WebhookCache::disabled(),
    })
}

pub(crate) mod backend {
    use crate::message_rows::VoteRow;
    use crate::rows::{NewDeliveryRow, NewEventRow};
    use crate::schema::{deliveries, events, poll_votes};
    use diesel::dsl::sql;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Bool, Nullable, Text};
    use diesel_async::{AsyncPgConnection, RunQueryDsl};
    use herald_domain::events_log::{LogPosition, Unsettled};

    /// One multi-row `INSERT` for a batch of events.
    pub async fn insert_events(
        conn: &mut AsyncPgConnection,
        rows: &[NewEventRow],
    ) -> diesel::QueryResult<()> {
        // A one-row insert is a statement of fixed shape, so its prepared form is cached; the
        // common case (one event per change) skips parsing and planning.
        if let [row] = rows {
            return diesel::insert_into(events::table)
                .values(row)
                .execute(conn)
                .await
                .map(drop);
        }
        // Several rows as one statement over arrays: fixed text, so prepared once per
        // connection, unlike a multi-row `VALUES` whose text changes with the count.
        use crate::pg_sql::{Param, Prepared};
        let texts = |f: fn(&NewEventRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        Prepared::new(
            "INSERT INTO events (id, organization_id, session_id, event_type, created_at, \
               envelope, logged) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
               $6::text[], $7::bool[])",
            vec![
                Param::TextArray(texts(|r| r.id.clone())),
                Param::TextArray(texts(|r| r.organization_id.clone())),
                Param::NullableTextArray(rows.iter().map(|r| r.session_id.clone()).collect()),
                Param::TextArray(texts(|r| r.event_type.clone())),
                Param::BigIntArray(rows.iter().map(|r| r.created_at).collect()),
                Param::TextArray(texts(|r| r.envelope.clone())),
                Param::BoolArray(rows.iter().map(|r| r.logged).collect()),
            ],
        )
        .execute(conn)
        .await
        .map(drop)
    }

    /// Records inbound keys, skipping those recorded already (waiting for a concurrent
    /// transaction holding one to end); returns the keys written, as `(session_id, inbound_id)`.
    pub async fn insert_inbound_keys(
        conn: &mut AsyncPgConnection,
        rows: &[crate::message_rows::InboundKeyRow],
    ) -> diesel::QueryResult<Vec<(String, String)>> {
        use crate::pg_sql::{Param, Prepared};
        #[derive(QueryableByName)]
        struct Written {
            #[diesel(sql_type = Text)]
            session_id: String,
            #[diesel(sql_type = Text)]
            inbound_id: String,
        }
        let texts = |f: fn(&crate::message_rows::InboundKeyRow) -> String| {
            rows.iter().map(f).collect::<Vec<_>>()
        };
        let written: Vec<Written> = Prepared::new(
            "INSERT INTO inbound_keys (session_id, inbound_id, event_id, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
             ON CONFLICT DO NOTHING RETURNING session_id, inbound_id",
            vec![
                Param::TextArray(texts(|r| r.session_id.clone())),
                Param::TextArray(texts(|r| r.inbound_id.clone())),
                Param::TextArray(texts(|r| r.event_id.clone())),
                Param::BigIntArray(rows.iter().map(|r| r.created_at).collect()),
            ],
        )
        .load(conn)
        .await?;
        Ok(written
            .into_iter()
            .map(|w| (w.session_id, w.inbound_id))
            .collect())
    }

    /// Inserts messages, skipping those stored already; how many rows were written.
    pub async fn insert_messages(
        conn: &mut AsyncPgConnection,
        rows: &[crate::message_rows::MessageRow],
    ) -> diesel::QueryResult<usize> {
        use crate::message_rows::MessageRow;
        use crate::pg_sql::{Param, Prepared};
        let texts = |f: fn(&MessageRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        let optional =
            |f: fn(&MessageRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
        Prepared::new(
            "INSERT INTO messages (session_id, chat, sender, id, organization_id, from_me, kind, \
               body, poll, timestamp) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
               $6::bool[], $7::text[], $8::text[], $9::text[], $10::int8[]) \
             ON CONFLICT DO NOTHING",
            vec![
                Param::TextArray(texts(|r| r.session_id.clone())),
                Param::TextArray(texts(|r| r.chat.clone())),
                Param::TextArray(texts(|r| r.sender.clone())),
                Param::TextArray(texts(|r| r.id.clone())),
                Param::TextArray(texts(|r| r.organization_id.clone())),
                Param::BoolArray(rows.iter().map(|r| r.from_me).collect()),
                Param::TextArray(texts(|r| r.kind.clone())),
                Param::NullableTextArray(optional(|r| r.body.clone())),
                Param::NullableTextArray(optional(|r| r.poll.clone())),
                Param::BigIntArray(rows.iter().map(|r| r.timestamp).collect()),
            ],
        )
        .execute(conn)
        .await
    }

    /// One `INSERT` for a batch of deliveries: a single row as a fixed-shape statement (its
    /// prepared form is cached), several as one statement over arrays (also of fixed text, so
    /// also prepared once) rather than a multi-row `VALUES` whose text changes with the count.
    pub async fn insert_deliveries(
        conn: &mut AsyncPgConnection,
        rows: &[NewDeliveryRow],
    ) -> diesel::QueryResult<()> {
        use crate::pg_sql::{Param, Prepared};
        if let [row] = rows {
            return diesel::insert_into(deliveries::table)
                .values(row)
                .execute(conn)
                .await
                .map(drop);
        }
        let column = |f: fn(&NewDeliveryRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        Prepared::new(
            "INSERT INTO deliveries (id, organization_id, webhook_id, event_id, event_type, \
               status, attempts, next_attempt_at, lease_owner, lease_until, created_at, updated_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
               $6::text[], $7::int4[], $8::int8[], $9::text[], $10::int8[], $11::int8[], $12::int8[])",
            vec![
                Param::TextArray(column(|r| r.id.clone())),
                Param::TextArray(column(|r| r.organization_id.clone())),
                Param::TextArray(column(|r| r.webhook_id.clone())),
                Param::TextArray(column(|r| r.event_id.clone())),
                Param::TextArray(column(|r| r.event_type.clone())),
                Param::TextArray(column(|r| r.status.clone())),
                Param::IntArray(rows.iter().map(|r| r.attempts).collect()),
                Param::NullableBigIntArray(rows.iter().map(|r| r.next_attempt_at).collect()),
                Param::NullableTextArray(rows.iter().map(|r| r.lease_owner.clone()).collect()),
                Param::NullableBigIntArray(rows.iter().map(|r| r.lease_until).collect()),
                Param::BigIntArray(rows.iter().map(|r| r.created_at).collect()),
                Param::BigIntArray(rows.iter().map(|r| r.updated_at).collect()),
            ],
        )
        .execute(conn)
        .await
        .map(drop)
    }

    /// Takes a transaction-scoped advisory lock per key, in the order given (callers sort), in
    /// one statement. The keys are hashed by Postgres itself (`hashtextextended`), so every
    /// replica, whatever it was built with, locks the same thing. Advisory locks need no
    /// transaction id, so taking them first leaves the id to be assigned after they are held.
    pub async fn lock_rows(
        conn: &mut AsyncPgConnection,
        keys: &[String],
    ) -> diesel::QueryResult<()> {
        crate::pg_sql::Prepared::new(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
             FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
            vec![crate::pg_sql::Param::TextArray(keys.to_vec())],
        )
        .execute(conn)
        .await
        .map(drop)
    }

    /// Writes voters' selections (replacing theirs), in one statement. Rows are given in lock
    /// order; when one voter's row appears twice the later wins (Postgres refuses to touch a row
    /// twice in one statement, so the earlier is dropped first).
    pub async fn upsert_votes(
        conn: &mut AsyncPgConnection,
        rows: &[VoteRow],
    ) -> diesel::QueryResult<()> {
        use diesel::upsert::excluded;
        let key = |r: &VoteRow| {
            (
                r.session_id.clone(),
                r.chat.clone(),
                r.sender.clone(),
                r.message_id.clone(),
                r.voter.clone(),
            )
        };
        let mut last = std::collections::HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            last.insert(key(row), i);
        }
        let unique: Vec<&VoteRow> = rows
            .iter()
            .enumerate()
            .filter(|(i, row)| last.get(&key(row)) == Some(i))
            .map(|(_, row)| row)
            .collect();
        macro_rules! upsert {
            ($values:expr) => {
                diesel::insert_into(poll_votes::table)
                    .values($values)
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
                    .await
                    .map(drop)
            };
        }
        match unique.as_slice() {
            [] => Ok(()),
            // One row: a fixed-shape statement, so its prepared form is cached.
            [row] => upsert!(*row),
            _ => upsert!(unique),
        }
    }

    /// The active webhooks of `orgs` with their sealed secrets, to write deliveries for, held
    /// `FOR KEY SHARE` until the transaction ends: a webhook deleted meanwhile is either not
    /// read here or waits for this commit and then deletes these deliveries too. (A foreign
    /// key did this once per delivery written; this is once per webhook, in the read that was
    /// made anyway.)
    ///
    /// A batch of one organization, the usual case, reads with the organization as a plain
    /// parameter. With an array (`organization_id = ANY($1)`) Postgres planned the read anew on
    /// every call: its generic plan assumes an array of ten, so it always looks dearer than a
    /// custom plan for the one or two organizations actually given, and the custom plan wins
    /// each time. Measured at 500 events/s: 66 µs of planning per call, three times the read.
    pub async fn active_webhooks(
        conn: &mut AsyncPgConnection,
        orgs: &[&herald_domain::OrgId],
    ) -> diesel::QueryResult<Vec<crate::rows::ActiveWebhookRow>> {
        match orgs {
            [org] => {
                crate::rows::active_webhooks_of_one::<Pg>(org)
                    .for_key_share()
                    .load(conn)
                    .await
            }
            _ => {
                crate::rows::active_webhooks::<Pg>(orgs)
                    .for_key_share()
                    .load(conn)
                    .await
            }
        }
    }

    /// Locks every delivery of `webhook` until the transaction ends (being deleted), waiting
    /// for completions still recording attempts of them: the attempts they wrote are then
    /// visible to the transaction's next statement, and a completion that comes later finds
    /// its delivery gone and writes no attempt. Only a count travels back, however many
    /// deliveries the webhook has.
    pub async fn lock_deliveries_of(
        conn: &mut AsyncPgConnection,
        webhook: &str,
    ) -> diesel::QueryResult<()> {
        crate::pg_sql::Prepared::new(
            "SELECT count(*) FROM \
               (SELECT 1 FROM deliveries WHERE webhook_id = $1 FOR UPDATE) AS locked",
            vec![crate::pg_sql::Param::Text(webhook.to_owned())],
        )
        .execute(conn)
        .await
        .map(drop)
    }

    /// Nothing inside the transaction: committed events are announced after the commit by the
    /// store's `Notifier` (a `NOTIFY` here would serialize every committing transaction).
    pub async fn after_events_appended(_conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
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
        webhooks: &[String],
        only: bool,
    ) -> diesel::QueryResult<Vec<crate::deliveries::ClaimRow>> {
        let sql = format!(
            "WITH claimed AS ( \
               UPDATE deliveries SET lease_owner = $1, lease_until = $2 \
               WHERE id IN ( \
                 SELECT id FROM deliveries \
                 WHERE {lane} AND next_attempt_at <= $3 \
                   AND (lease_until IS NULL OR lease_until < $3) \
                   AND {webhooks} \
                 ORDER BY next_attempt_at LIMIT $5 \
                 FOR UPDATE SKIP LOCKED) \
               RETURNING id, webhook_id, event_id, attempts, budget_base, lease_until) \
             SELECT {columns} FROM claimed d \
             JOIN webhooks w ON w.id = d.webhook_id \
             LEFT JOIN events e ON e.id = d.event_id",
            lane = crate::deliveries::lane_condition(lane),
            columns = crate::deliveries::CLAIM_COLUMNS,
            webhooks = if only {
                "webhook_id = ANY($4)"
            } else {
                "webhook_id <> ALL($4)"
            },
        );
        use crate::pg_sql::{Param, Prepared};
        Prepared::new(
            sql,
            vec![
                Param::Text(lease.owner.clone()),
                Param::BigInt(lease.until),
                Param::BigInt(now),
                Param::TextArray(webhooks.to_vec()),
                Param::BigInt(limit),
            ],
        )
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
        use crate::pg_sql::{Param, Prepared};
        Prepared::new(
            sql,
            vec![
                Param::TextArray(rows.iter().map(|r| r.id.clone()).collect()),
                Param::IntArray(rows.iter().map(|r| r.attempt).collect()),
                Param::TextArray(rows.iter().map(|r| r.status.clone()).collect()),
                Param::NullableBigIntArray(rows.iter().map(|r| r.next_at).collect()),
                Param::BigIntArray(rows.iter().map(|r| r.started_at).collect()),
                Param::BigIntArray(rows.iter().map(|r| r.duration_ms).collect()),
                Param::NullableIntArray(rows.iter().map(|r| r.code).collect()),
                Param::NullableTextArray(rows.iter().map(|r| r.error.clone()).collect()),
                Param::TextArray(rows.iter().map(|r| r.body.clone()).collect()),
                Param::Text(owner.to_owned()),
                Param::BigInt(now),
            ],
        )
        .execute(conn)
        .await
    }

    /// Sets up the transaction of a completion of attempts, in one round trip:
    /// - it commits without waiting for the WAL flush: lost to a database crash, it is lost
    ///   together with everything it caused, and the deliveries, still leased, are attempted
    ///   again;
    /// - its statements find deliveries by key, never by scanning the table. Postgres plans a
    ///   prepared statement once per connection and keeps that plan until the table is next
    ///   analyzed; planned while `deliveries` was nearly empty (a fresh database, the first
    ///   minute of a busy one) the completion scanned the whole table on every call: measured
    ///   at 4.4 ms a call and 70% of Postgres's time at 2,000 events/s after 10 s;
    /// - its statements are planned once per connection (generic plans), never per call. The
    ///   read of the batch's webhooks (`id = ANY($1)`) was otherwise planned on every call: a
    ///   generic plan assumes an array of ten, so it never looked cheaper than a custom plan for
    ///   the batch's few webhooks, and planning cost more than the read. Every statement of a
    ///   completion finds its rows by key, so the generic plan is the custom plan.
    pub async fn begin_completion(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        crate::pg_sql::Prepared::new(
            "SELECT set_config('synchronous_commit', 'off', true), \
                    set_config('enable_seqscan', 'off', true), \
                    set_config('plan_cache_mode', 'force_generic_plan', true)",
            Vec::new(),
        )
        .execute(conn)
        .await
        .map(drop)
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
    /// The webhook is held `FOR KEY SHARE` like every writer of deliveries holds it (see
    /// [`active_webhooks`]); deleted meanwhile, it gets no delivery.
    pub async fn insert_test_delivery(
        conn: &mut AsyncPgConnection,
        event: &NewEventRow,
        delivery: &NewDeliveryRow,
    ) -> diesel::QueryResult<()> {
        let sql = format!(
            "WITH w AS (SELECT id FROM webhooks WHERE id = $10 FOR KEY SHARE), \
             e AS ( \
               INSERT INTO events (id, organization_id, session_id, event_type, created_at, envelope, logged) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)), \
             d AS ( \
               INSERT INTO deliveries (id, organization_id, webhook_id, event_id, event_type, status, \
                                       attempts, next_attempt_at, created_at, updated_at) \
               SELECT $8, $9, w.id, $1, $4, 'pending', 0, $11, $11, $11 FROM w) \
             SELECT pg_notify('{}', '')",
            super::EVENTS_CHANNEL
        );
        use crate::pg_sql::{Param, Prepared};
        Prepared::new(
            sql,
            vec![
                Param::Text(event.id.clone()),
                Param::Text(event.organization_id.clone()),
                Param::NullableText(event.session_id.clone()),
                Param::Text(event.event_type.clone()),
                Param::BigInt(event.created_at),
                Param::Text(event.envelope.clone()),
                Param::Bool(event.logged),
                Param::Text(delivery.id.clone()),
                Param::Text(delivery.organization_id.clone()),
                Param::Text(delivery.webhook_id.clone()),
                Param::BigInt(delivery.created_at),
            ],
        )
        .execute(conn)
        .await
        .map(drop)
    }

    /// The event log's order predicate on Postgres: `(tx_id, seq) > (pos.tx, pos.seq)`.
    pub fn after<'a>(
        query: events::BoxedQuery<'a, Pg>,
        pos: LogPosition,
    ) -> events::BoxedQuery<'a, Pg> {
        // A row comparison is an index condition on `(tx_id, seq)` as a whole.
        query.filter(
            sql::<Bool>("(tx_id, seq) > (")
                .bind::<BigInt, _>(pos.tx)
                .sql(", ")
                .bind::<BigInt, _>(pos.seq)
                .sql(")"),
        )
    }

    /// The settled bound, one scalar subquery evaluated once per statement, in the statement's
    /// snapshot S: the lowest transaction id in S's running list (`xip`) that is not known to
    /// belong to *another* database, or S's `xmax` when there is none.
    ///
    /// Why it is safe: an event row with `tx_id < bound` that S cannot see was written by a
    /// transaction T whose id was assigned before S (ids below `xmax` are), so T was either
    /// finished before S (then S sees the row, or T aborted) or running (in `xip`). A running
    /// T below the bound was skipped only because a backend of another database was seen
    /// running it — and such a T cannot write this database's rows. So nothing can ever appear
    /// below the bound later. Transactions whose database cannot be told (finished since S, a
    /// prepared transaction, or a backend this role may not inspect — grant
    /// `pg_read_all_stats`) count as this database's: that only delays, never skips.
    /// (`snapshot xmin` alone would also be safe, but is cluster-wide: any long transaction in
    /// any other database would stall this log.)
    const SETTLED_BOUND: &str = "(SELECT least(\
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint, \
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x \
          WHERE (x::text::bigint & 4294967295) NOT IN ( \
            SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) AS a \
            WHERE a.backend_xid IS NOT NULL \
              AND a.datid IS DISTINCT FROM \
                (SELECT oid FROM pg_database WHERE datname = current_database())))))";

    /// Keeps only settled events: those below [`SETTLED_BOUND`], which no transaction still
    /// running can precede.
    pub fn settled<'a>(query: events::BoxedQuery<'a, Pg>) -> events::BoxedQuery<'a, Pg> {
        query.filter(sql::<Bool>(&format!("tx_id < {SETTLED_BOUND}")))
    }

    /// Makes the current transaction a log read: a page of settled events and the range of
    /// those not settled yet must come from one snapshot, so it runs read-only `REPEATABLE
    /// READ` (one database snapshot, and one reading of the server's backends, which Postgres
    /// keeps for the transaction). Read in two snapshots, a transaction of another database
    /// that ended between them was once counted as this database's by the first (so fresh
    /// events were held back as unsettled) and was gone for the second (so they were not
    /// reported as unsettled either): a client that had just written events was shown none,
    /// and nothing told the caller to look again. Must be the transaction's first statement.
    pub async fn begin_log_read(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        use diesel_async::SimpleAsyncConnection;
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
    }

    /// Committed events not settled yet (for `org`, or anyone's): the range of their `seq`.
    /// `OFFSET 0` keeps the planner from turning `min`/`max` into walks along the `seq` key
    /// (which would scan the whole table when nothing is unsettled); the inner scan is a short
    /// range of the `(…, tx_id, seq)` indexes instead.
    pub async fn unsettled(
        conn: &mut AsyncPgConnection,
        org: Option<&str>,
    ) -> diesel::QueryResult<Option<Unsettled>> {
        #[derive(QueryableByName)]
        struct Range {
            #[diesel(sql_type = Nullable<BigInt>)]
            first_seq: Option<i64>,
            #[diesel(sql_type = Nullable<BigInt>)]
            last_seq: Option<i64>,
        }
        let scope = if org.is_some() {
            "AND organization_id = $1"
        } else {
            ""
        };
        let text = format!(
            "SELECT min(seq) AS first_seq, max(seq) AS last_seq FROM \
             (SELECT seq FROM events WHERE logged AND tx_id >= {SETTLED_BOUND} {scope} OFFSET 0) \
             AS unsettled"
        );
        let range: Range = match org {
            Some(org) => {
                diesel::sql_query(text)
                    .bind::<Text, _>(org)
                    .get_result(conn)
                    .await?
            }
            None => diesel::sql_query(text).get_result(conn).await?,
        };
        Ok(match (range.first_seq, range.last_seq) {
            (Some(first_seq), Some(last_seq)) => Some(Unsettled {
                first_seq,
                last_seq,
            }),
            _ => None,
        })
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

mod message_queries {
    crate::message_repo::messages_impl!(super::PgStore, super::PgConn, backend);
    use super::backend;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::{Duration, Instant};

    /// What the notifier announced: payload, and time since the start.
    type Said = Arc<Mutex<Vec<(&'static str, Duration)>>>;

    /// Runs the notifier's task with a recording `announce`; returns its poke, its claimable
    /// flag and what it announced (payload, time since the start).
    fn notifier() -> (tokio::sync::mpsc::Sender<()>, Arc<AtomicBool>, Said) {
        let (poke, poked) = tokio::sync::mpsc::channel(1);
        let claimable = Arc::new(AtomicBool::new(false));
        let said = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let log = said.clone();
        tokio::spawn(announce_commits(poked, claimable.clone(), move |payload| {
            log.lock().unwrap().push((payload, start.elapsed()));
            std::future::ready(())
        }));
        (poke, claimable, said)
    }

    #[tokio::test(start_paused = true)]
    async fn commits_that_wake_no_dispatcher_share_one_announcement() {
        let (poke, _, log) = notifier();
        // Four commits a millisecond apart: within one window.
        for i in 0..4 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let _ = poke.try_send(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let logged = crate::listen::LOGGED_PAYLOAD;
        assert_eq!(log.lock().unwrap().clone(), [(logged, LOGGED_COALESCE)]);
        // A later commit gets an announcement of its own.
        let _ = poke.try_send(());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let said = log.lock().unwrap().clone();
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!(said[1], (logged, Duration::from_millis(58)));
    }

    #[tokio::test(start_paused = true)]
    async fn claimable_work_is_announced_at_once_even_during_a_wait() {
        let (poke, claimable, log) = notifier();
        // Alone: no wait.
        claimable.store(true, Ordering::SeqCst);
        poke.try_send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(log.lock().unwrap().clone(), [("", Duration::ZERO)]);
        // A commit with work to claim ends the wait of one without.
        poke.try_send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        claimable.store(true, Ordering::SeqCst);
        let _ = poke.try_send(());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let said = log.lock().unwrap().clone();
        assert_eq!(said.len(), 2, "one announcement covers both: {said:?}");
        assert_eq!(said[1], ("", Duration::from_millis(51)));
    }
}
