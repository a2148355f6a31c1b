//! The repository body for messages, votes, inbound keys and the event log, written once and
//! instantiated for both backends by [`messages_impl!`] (next to `repo::store_impl!`). The
//! per-backend pieces it needs — the log's position predicates and the "settled" rule — live
//! in the `backend` modules of `pg.rs` and `sqlite.rs`.
//!
//! A [`Change`](herald_domain::message::Change) commits in one transaction, alone or with the
//! others of its group commit (`apply_batch`): the inbound key (if any) is inserted first with
//! `ON CONFLICT DO NOTHING`, so two concurrent reports with the same id serialize on its primary
//! key and the loser gets the winner's event id; then the state; then the events and their
//! deliveries (`append_in_tx`). Any early outcome rolls the change back (a batch: the batch,
//! then each change is applied alone), so nothing is half-written.

/// A change's outcome as its transaction left it.
pub(crate) struct Applied {
    /// What became of the change.
    pub outcome: herald_domain::message::ChangeOutcome,
    /// Whether the commit left deliveries for dispatchers to claim.
    pub claimable: bool,
}

/// A change of a batch that names an inbound key or a new message that an earlier change of
/// the same batch names (WAHA sends an event twice, often before the first is answered).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Repeat {
    /// The repeating change.
    pub index: usize,
    /// The earlier change it repeats.
    pub of: usize,
    /// Whether it repeats the inbound key (which wins, as the key is written first) or only
    /// the message.
    pub key: bool,
}

impl Repeat {
    /// Its outcome, given what became of the change it repeats in the committed batch —
    /// exactly what applying it alone would find, without a transaction — or `None` when only
    /// applying it can tell: the change it repeats wrote nothing (its key had been recorded
    /// before), so a repeated message may still be new.
    pub(crate) fn outcome(
        &self,
        changes: &[herald_domain::message::Change],
        first: &herald_domain::message::ChangeOutcome,
    ) -> Option<herald_domain::message::ChangeOutcome> {
        use herald_domain::message::ChangeOutcome;
        match (first, self.key) {
            (ChangeOutcome::AlreadyIngested(answer), true) => {
                Some(ChangeOutcome::AlreadyIngested(*answer))
            }
            (ChangeOutcome::Applied, true) => changes[self.of]
                .inbound
                .as_ref()
                .map(|first| ChangeOutcome::AlreadyIngested(first.event_id)),
            (ChangeOutcome::Applied, false) => Some(ChangeOutcome::MessageExists),
            _ => None,
        }
    }
}

/// Splits a batch into the changes that can share one transaction and the [`Repeat`]s. A
/// repeat in the shared transaction would stop it early and send every change of the batch to
/// a transaction of its own; once the batch has committed, its outcome is known. Indexes into
/// `changes`, each list in arrival order.
pub(crate) fn split_repeats(
    changes: &[herald_domain::message::Change],
) -> (Vec<usize>, Vec<Repeat>) {
    use herald_domain::message::Mutation;
    use std::collections::HashMap;
    let mut keys = HashMap::new();
    let mut messages = HashMap::new();
    let (mut first, mut repeats) = (Vec::new(), Vec::new());
    for (i, change) in changes.iter().enumerate() {
        let key = change.inbound.as_ref().map(|ingested| &ingested.key);
        let message = match &change.mutation {
            Mutation::InsertMessage(message) => Some(&message.key),
            _ => None,
        };
        // A repeated key wins over a repeated message: the key is written first.
        let of_key = key.and_then(|k| keys.get(k)).map(|&of| (of, true));
        let of_message = message.and_then(|m| messages.get(m)).map(|&of| (of, false));
        match of_key.or(of_message) {
            Some((of, key)) => repeats.push(Repeat { index: i, of, key }),
            None => {
                keys.extend(key.map(|k| (k, i)));
                messages.extend(message.map(|m| (m, i)));
                first.push(i);
            }
        }
    }
    (first, repeats)
}

/// Implements `MessageStore` and `EventLog` for `$store` over `$conn`; `$backend` names the
/// module with that backend's own queries. Expects `super::queries::append_in_tx` (from
/// `repo::store_impl!`) beside it.
macro_rules! messages_impl {
    ($store:ty, $conn:ty, $backend:ident) => {
        use crate::db_error;
        use crate::message_rows::*;
        use crate::schema::*;
        use async_trait::async_trait;
        use diesel::prelude::*;
        use diesel::result::{DatabaseErrorKind, Error as DieselError};
        use diesel_async::{AsyncConnection, RunQueryDsl};
        use herald_domain::events_log::{LogPage, LogPosition, LogQuery};
        use herald_domain::message::{Change, ChangeOutcome, InboundKey, MessageRef, Mutation};
        use herald_domain::poll::{VoteChange, VoterSelection};
        use herald_domain::ports::{EventLog, MessageStore, ReportSession, StoreResult};
        use herald_domain::{EventId, OrgId, StoreError};

        /// Changes of a batch answered with an earlier report's event id, by index.
        type Answered = std::collections::HashMap<usize, EventId>;

        /// Why a change's transaction stopped early: a definite outcome, a batch that must be
        /// applied change by change, or a database error.
        enum Abort {
            Outcome(ChangeOutcome),
            /// A batch found a new message already stored; only a change applied alone can
            /// tell whose it was.
            Apart,
            Db(DieselError),
        }

        impl From<DieselError> for Abort {
            fn from(error: DieselError) -> Self {
                Self::Db(error)
            }
        }

        fn message_filter(key: &MessageRef) -> (String, String, String, String) {
            (
                key.session.to_string(),
                key.chat.clone(),
                key.sender.clone(),
                key.id.clone(),
            )
        }

        /// The keys of the rows a change writes, for [`lock_rows`].
        fn row_keys(change: &Change, keys: &mut Vec<String>) {
            // \u{1f} (unit separator) cannot be confused with anything inside a field.
            let message = |k: &MessageRef| {
                format!(
                    "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                    k.session, k.chat, k.sender, k.id
                )
            };
            if let Some(ingested) = &change.inbound {
                keys.push(format!(
                    "herald:inbound\u{1f}{}\u{1f}{}",
                    ingested.key.session, ingested.key.id
                ));
            }
            match &change.mutation {
                Mutation::EventsOnly => {}
                Mutation::InsertMessage(m) => {
                    keys.push(format!("herald:message\u{1f}{}", message(&m.key)))
                }
                Mutation::Vote { poll, voter, .. } => {
                    keys.push(format!("herald:vote\u{1f}{}\u{1f}{voter}", message(poll)))
                }
                Mutation::SessionStatus(session) => {
                    keys.push(format!("herald:session\u{1f}{}", session.id))
                }
            }
        }

        /// Locks every row the changes will write, in one global order, *before* writing any:
        /// two transactions touching the same row then run one after the other, and since a
        /// transaction's id is assigned at its first write, the later one also gets the higher
        /// id — so the log's order of their events is the order their writes took effect (the
        /// last `poll.vote` logged for a voter is their standing vote). The one order also
        /// rules out deadlocks between batches.
        async fn lock_rows(conn: &mut $conn, changes: &[&Change]) -> Result<(), Abort> {
            let mut keys = Vec::new();
            for change in changes {
                row_keys(change, &mut keys);
            }
            keys.sort();
            keys.dedup();
            if !keys.is_empty() {
                $backend::lock_rows(conn, &keys).await?;
            }
            Ok(())
        }

        async fn write_change(
            conn: &mut $conn,
            change: &Change,
            handover: &mut crate::direct::Handover,
        ) -> Result<(), Abort> {
            lock_rows(conn, &[change]).await?;
            write_state(conn, change).await?;
            super::queries::append_in_tx(conn, &change.events, handover).await?;
            Ok(())
        }

        /// Commits one change in its own transaction; its deliveries go to the local dispatcher
        /// in `direct` once committed.
        async fn apply_one(
            conn: &mut $conn,
            change: &Change,
            direct: &crate::direct::DirectSlot,
        ) -> StoreResult<crate::message_repo::Applied> {
            let mut handover = crate::direct::Handover::new(direct);
            let result = conn
                .transaction::<_, Abort, _>(async |conn| {
                    write_change(conn, change, &mut handover).await
                })
                .await;
            let unchanged = |outcome| crate::message_repo::Applied {
                outcome,
                claimable: false,
            };
            match result {
                Ok(()) => {
                    let claimable = handover.claimable();
                    handover.committed();
                    Ok(crate::message_repo::Applied {
                        outcome: ChangeOutcome::Applied,
                        claimable,
                    })
                }
                Err(Abort::Outcome(outcome)) => Ok(unchanged(outcome)),
                // The session or poll was deleted between the caller's checks and now.
                Err(Abort::Db(DieselError::DatabaseError(
                    DatabaseErrorKind::ForeignKeyViolation,
                    _,
                ))) => Ok(unchanged(ChangeOutcome::TargetMissing)),
                Err(Abort::Db(error)) => Err(db_error(error)),
                // Only a batch stops this way.
                Err(Abort::Apart) => Err(StoreError::new("a lone change was refused as a batch")),
            }
        }

        /// A plain vote (no inbound key): what the batch path folds into one upsert.
        fn plain_vote(change: &Change) -> Option<(&MessageRef, &str, &VoteChange, i64)> {
            match (&change.inbound, &change.mutation) {
                (
                    None,
                    Mutation::Vote {
                        poll,
                        voter,
                        change,
                        at,
                    },
                ) => Some((poll, voter.as_str(), change, *at)),
                _ => None,
            }
        }

        /// Writes a batch's state in one go: the other changes one by one in arrival order,
        /// then each voter's *last* plain vote (one upsert for all selections, one clear each).
        /// When a row is touched both ways, everything is written in arrival order instead.
        /// Returns the changes already answered (see [`write_states_together`]), by index.
        async fn write_batch_state(
            conn: &mut $conn,
            changes: &[&Change],
        ) -> Result<Answered, Abort> {
            let mut last: std::collections::HashMap<(&MessageRef, &str), usize> =
                std::collections::HashMap::new();
            for (i, change) in changes.iter().enumerate() {
                if let Some((poll, voter, _, _)) = plain_vote(change) {
                    last.insert((poll, voter), i);
                }
            }
            let mixed = changes.iter().any(|c| match (&c.inbound, &c.mutation) {
                (Some(_), Mutation::Vote { poll, voter, .. }) => {
                    last.contains_key(&(poll, voter.as_str()))
                }
                _ => false,
            });
            if mixed {
                for change in changes {
                    write_state(conn, change).await?;
                }
                return Ok(Answered::new());
            }
            let others: Vec<(usize, &Change)> = changes
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, c)| plain_vote(c).is_none())
                .collect();
            let answered = write_states_together(conn, &others).await?;
            let mut selections = Vec::new();
            for (i, change) in changes.iter().enumerate() {
                let Some((poll, voter, vote, at)) = plain_vote(change) else {
                    continue;
                };
                if last.get(&(poll, voter)) != Some(&i) {
                    continue;
                }
                match vote {
                    VoteChange::Replace(options) => {
                        selections.push(VoteRow::new(poll, voter, options, at))
                    }
                    VoteChange::Clear => clear_vote(conn, poll, voter).await?,
                }
            }
            $backend::upsert_votes(conn, &selections).await?;
            Ok(answered)
        }

        /// Commits a batch of changes in one transaction: their rows locked, their state
        /// written, then all their events in one append (log order = arrival order). A change
        /// whose inbound key is already recorded is answered with the first answer and writes
        /// nothing. If anything else stops it early — an existing message, a vanished poll, an
        /// error — it is rolled back and each change is committed alone instead, so
        /// one change's outcome never becomes another's. Repeats within the batch
        /// ([`split_repeats`](crate::message_repo::split_repeats)) are kept out of it and
        /// answered once it has committed.
        pub(crate) async fn apply_batch(
            conn: &mut $conn,
            changes: &[Change],
            direct: &crate::direct::DirectSlot,
        ) -> Vec<StoreResult<crate::message_repo::Applied>> {
            let (together, repeats) = crate::message_repo::split_repeats(changes);
            if together.len() > 1 {
                let all: Vec<&Change> = together.iter().map(|&i| &changes[i]).collect();
                let mut handover = crate::direct::Handover::new(direct);
                let committed = conn
                    .transaction::<_, Abort, _>(async |conn| {
                        lock_rows(conn, &all).await?;
                        let answered = write_batch_state(conn, &all).await?;
                        let events: Vec<herald_domain::event::Envelope> = all
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !answered.contains_key(i))
                            .flat_map(|(_, c)| c.events.iter().cloned())
                            .collect();
                        super::queries::append_in_tx(conn, &events, &mut handover).await?;
                        Ok(answered)
                    })
                    .await;
                if let Ok(answered) = committed {
                    let claimable = handover.claimable();
                    handover.committed();
                    let mut results: Vec<StoreResult<crate::message_repo::Applied>> = changes
                        .iter()
                        .map(|_| {
                            Ok(crate::message_repo::Applied {
                                outcome: ChangeOutcome::Applied,
                                claimable,
                            })
                        })
                        .collect();
                    for (i, first) in answered {
                        results[together[i]] = Ok(crate::message_repo::Applied {
                            outcome: ChangeOutcome::AlreadyIngested(first),
                            claimable: false,
                        });
                    }
                    for repeat in &repeats {
                        let first = match &results[repeat.of] {
                            Ok(applied) => applied.outcome.clone(),
                            Err(_) => ChangeOutcome::TargetMissing,
                        };
                        results[repeat.index] = match repeat.outcome(changes, &first) {
                            Some(outcome) => Ok(crate::message_repo::Applied {
                                outcome,
                                claimable: false,
                            }),
                            None => apply_one(conn, &changes[repeat.index], direct).await,
                        };
                    }
                    return results;
                }
                // Dropped: the batch rolled back, its reserved room is given back.
                drop(handover);
            }
            let mut results = Vec::with_capacity(changes.len());
            for change in changes {
                results.push(apply_one(conn, change, direct).await);
            }
            results
        }

        /// Clears a voter's selection on a poll that must still exist.
        async fn clear_vote(conn: &mut $conn, poll: &MessageRef, voter: &str) -> Result<(), Abort> {
            let (s, c, snd, id) = message_filter(poll);
            let exists: bool = diesel::select(diesel::dsl::exists(
                messages::table
                    .filter(messages::session_id.eq(&s))
                    .filter(messages::chat.eq(&c))
                    .filter(messages::sender.eq(&snd))
                    .filter(messages::id.eq(&id)),
            ))
            .get_result(conn)
            .await?;
            if !exists {
                return Err(Abort::Outcome(ChangeOutcome::TargetMissing));
            }
            diesel::delete(
                poll_votes::table
                    .filter(poll_votes::session_id.eq(&s))
                    .filter(poll_votes::chat.eq(&c))
                    .filter(poll_votes::sender.eq(&snd))
                    .filter(poll_votes::message_id.eq(&id))
                    .filter(poll_votes::voter.eq(voter)),
            )
            .execute(conn)
            .await?;
            Ok(())
        }

        /// When a change happened: its first event's time (the inbound key's `created_at`).
        fn change_time(change: &Change) -> i64 {
            change.events.iter().next().map_or(0, |e| e.timestamp)
        }

        /// The event id answered for an inbound key already recorded (by a transaction that has
        /// committed: inserting the key waited for it, so its answer is visible now).
        async fn stored_answer(conn: &mut $conn, key: &InboundKey) -> Result<EventId, Abort> {
            let first: String = inbound_keys::table
                .filter(inbound_keys::session_id.eq(key.session.to_string()))
                .filter(inbound_keys::inbound_id.eq(&key.id))
                .select(inbound_keys::event_id)
                .first(conn)
                .await?;
            event_id(&first).map_err(|e| Abort::Db(DieselError::DeserializationError(Box::new(e))))
        }

        /// The inbound key and the mutation of a change, without its events.
        async fn write_state(conn: &mut $conn, change: &Change) -> Result<(), Abort> {
            if let Some(ingested) = &change.inbound {
                let key = InboundKeyRow::new(ingested, change_time(change));
                let written =
                    $backend::insert_inbound_keys(conn, std::slice::from_ref(&key)).await?;
                if written.is_empty() {
                    let first = stored_answer(conn, &ingested.key).await?;
                    return Err(Abort::Outcome(ChangeOutcome::AlreadyIngested(first)));
                }
            }
            write_mutation(conn, change).await
        }

        /// The state of several changes (none of them a plain vote; `(index, change)` pairs)
        /// with one statement per kind of row — their inbound keys, then their new messages —
        /// and the remaining mutations one by one in arrival order: under load a batch costs a
        /// handful of round trips instead of two per change. A change whose inbound key is
        /// already recorded (by an earlier report, often committed while this batch queued)
        /// writes nothing more and is returned with that report's answer, by index; the others
        /// carry on. A message already stored stops it with [`Abort::Apart`].
        async fn write_states_together(
            conn: &mut $conn,
            changes: &[(usize, &Change)],
        ) -> Result<Answered, Abort> {
            let keys: Vec<InboundKeyRow> = changes
                .iter()
                .filter_map(|(_, c)| {
                    c.inbound
                        .as_ref()
                        .map(|i| InboundKeyRow::new(i, change_time(c)))
                })
                .collect();
            let mut answered = Answered::new();
            if !keys.is_empty() {
                let written: std::collections::HashSet<(String, String)> =
                    $backend::insert_inbound_keys(conn, &keys)
                        .await?
                        .into_iter()
                        .collect();
                for (i, change) in changes {
                    let Some(ingested) = &change.inbound else {
                        continue;
                    };
                    let key = (ingested.key.session.to_string(), ingested.key.id.clone());
                    if !written.contains(&key) {
                        answered.insert(*i, stored_answer(conn, &ingested.key).await?);
                    }
                }
            }
            let remaining: Vec<&Change> = changes
                .iter()
                .filter(|(i, _)| !answered.contains_key(i))
                .map(|(_, c)| *c)
                .collect();
            let messages: Vec<MessageRow> = remaining
                .iter()
                .filter_map(|c| match &c.mutation {
                    Mutation::InsertMessage(message) => Some(MessageRow::new(message)),
                    _ => None,
                })
                .collect();
            if !messages.is_empty()
                && $backend::insert_messages(conn, &messages).await? < messages.len()
            {
                return Err(Abort::Apart);
            }
            for change in remaining
                .iter()
                .filter(|c| !matches!(c.mutation, Mutation::InsertMessage(_)))
            {
                write_mutation(conn, change).await?;
            }
            Ok(answered)
        }

        /// A change's mutation: the state it writes beside its inbound key.
        async fn write_mutation(conn: &mut $conn, change: &Change) -> Result<(), Abort> {
            match &change.mutation {
                Mutation::EventsOnly => {}
                Mutation::InsertMessage(message) => {
                    let row = MessageRow::new(message);
                    let inserted =
                        $backend::insert_messages(conn, std::slice::from_ref(&row)).await?;
                    if inserted == 0 {
                        return Err(Abort::Outcome(ChangeOutcome::MessageExists));
                    }
                }
                Mutation::Vote {
                    poll,
                    voter,
                    change: vote,
                    at,
                } => match vote {
                    // The foreign key to `messages` makes a vanished poll fail the insert.
                    VoteChange::Replace(options) => {
                        $backend::upsert_votes(
                            conn,
                            std::slice::from_ref(&VoteRow::new(poll, voter, options, *at)),
                        )
                        .await?;
                    }
                    // A cleared vote keeps no row, so voters and counts never show it.
                    VoteChange::Clear => clear_vote(conn, poll, voter).await?,
                },
                Mutation::SessionStatus(session) => {
                    let updated = diesel::update(
                        sessions::table
                            .filter(sessions::organization_id.eq(session.organization_id.as_str()))
                            .filter(sessions::id.eq(session.id.to_string())),
                    )
                    .set((
                        sessions::status.eq(session.status.as_str()),
                        sessions::me_id.eq(session.me.as_ref().map(|m| m.id.clone())),
                        sessions::updated_at.eq(session.updated_at),
                    ))
                    .execute(conn)
                    .await?;
                    if updated == 0 {
                        return Err(Abort::Outcome(ChangeOutcome::TargetMissing));
                    }
                }
            }
            Ok(())
        }

        #[async_trait]
        impl MessageStore for $store {
            async fn find_message(
                &self,
                org: &OrgId,
                key: &MessageRef,
            ) -> StoreResult<Option<herald_domain::message::Message>> {
                let mut conn = self.reader().await?;
                let (s, c, snd, id) = message_filter(key);
                let row: Option<MessageRow> = messages::table
                    .filter(messages::session_id.eq(s))
                    .filter(messages::chat.eq(c))
                    .filter(messages::sender.eq(snd))
                    .filter(messages::id.eq(id))
                    .filter(messages::organization_id.eq(org.as_str()))
                    .select(MessageRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                row.map(MessageRow::into_domain).transpose()
            }

            async fn find_session_message(
                &self,
                org: &OrgId,
                key: &MessageRef,
            ) -> StoreResult<
                Option<(
                    herald_domain::session::Session,
                    Option<herald_domain::message::Message>,
                )>,
            > {
                let mut conn = self.reader().await?;
                let (s, c, snd, id) = message_filter(key);
                let row: Option<(crate::rows::SessionRow, Option<MessageRow>)> = sessions::table
                    .left_join(
                        messages::table.on(messages::session_id
                            .eq(sessions::id)
                            .and(messages::chat.eq(c))
                            .and(messages::sender.eq(snd))
                            .and(messages::id.eq(id))
                            .and(messages::organization_id.eq(sessions::organization_id))),
                    )
                    .filter(sessions::organization_id.eq(org.as_str()))
                    .filter(sessions::id.eq(s))
                    .select((
                        crate::rows::SessionRow::as_select(),
                        Option::<MessageRow>::as_select(),
                    ))
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                match row {
                    None => Ok(None),
                    Some((session, message)) => Ok(Some((
                        session.into_domain()?,
                        message.map(MessageRow::into_domain).transpose()?,
                    ))),
                }
            }

            async fn poll_votes(
                &self,
                org: &OrgId,
                key: &MessageRef,
            ) -> StoreResult<Vec<VoterSelection>> {
                let mut conn = self.reader().await?;
                let (s, c, snd, id) = message_filter(key);
                // Votes carry no organization; the poll's session (checked by the caller and
                // re-checked here through the messages row) does.
                let rows: Vec<VoteRow> = poll_votes::table
                    .inner_join(
                        messages::table.on(messages::session_id
                            .eq(poll_votes::session_id)
                            .and(messages::chat.eq(poll_votes::chat))
                            .and(messages::sender.eq(poll_votes::sender))
                            .and(messages::id.eq(poll_votes::message_id))),
                    )
                    .filter(poll_votes::session_id.eq(s))
                    .filter(poll_votes::chat.eq(c))
                    .filter(poll_votes::sender.eq(snd))
                    .filter(poll_votes::message_id.eq(id))
                    .filter(messages::organization_id.eq(org.as_str()))
                    .order(poll_votes::voter.asc())
                    .select(VoteRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                rows.into_iter().map(VoteRow::into_domain).collect()
            }

            async fn find_report_session(
                &self,
                session: ReportSession<'_>,
                inbound_id: Option<&str>,
            ) -> StoreResult<Option<(herald_domain::session::Session, Option<EventId>)>> {
                use crate::rows::SessionRow;
                let mut conn = self.reader().await?;
                // Without an id the join matches nothing (`= NULL`), so the statement keeps one
                // shape either way.
                let query = sessions::table
                    .left_join(
                        inbound_keys::table.on(inbound_keys::session_id
                            .eq(sessions::id)
                            .and(inbound_keys::inbound_id.nullable().eq(inbound_id))),
                    )
                    .select((SessionRow::as_select(), inbound_keys::event_id.nullable()))
                    .into_boxed();
                let query = match session {
                    ReportSession::Owned(org, id) => query
                        .filter(sessions::organization_id.eq(org.as_str()))
                        .filter(sessions::id.eq(id.to_string())),
                    ReportSession::Engine(name) => query.filter(sessions::engine_session.eq(name)),
                };
                let row: Option<(SessionRow, Option<String>)> =
                    query.first(&mut conn).await.optional().map_err(db_error)?;
                let Some((session, first)) = row else {
                    return Ok(None);
                };
                let first = first.as_deref().map(event_id).transpose()?;
                Ok(Some((session.into_domain()?, first)))
            }

            async fn apply_change(&self, change: &Change) -> StoreResult<ChangeOutcome> {
                // Concurrent changes are committed together by the store's batch writers.
                let applied = match self.change_batcher() {
                    Some(batcher) => batcher
                        .submit(change.clone())
                        .await
                        .unwrap_or_else(|| Err(StoreError::new("the batch writer stopped")))?,
                    None => {
                        let mut conn = self.writer().await?;
                        apply_one(&mut conn, change, self.direct_slot()).await?
                    }
                };
                if applied.outcome == ChangeOutcome::Applied && !change.events.is_empty() {
                    self.announce(applied.claimable);
                }
                Ok(applied.outcome)
            }
        }

        fn page(rows: Vec<LoggedEventRow>) -> Result<LogPage, StoreError> {
            Ok(LogPage {
                events: rows
                    .into_iter()
                    .map(LoggedEventRow::into_domain)
                    .collect::<Result<_, _>>()?,
                unsettled: None,
            })
        }

        #[async_trait]
        impl EventLog for $store {
            async fn event_position(
                &self,
                org: &OrgId,
                id: &EventId,
            ) -> StoreResult<Option<LogPosition>> {
                let mut conn = self.reader().await?;
                let found: Option<(i64, i64)> = events::table
                    .filter(events::organization_id.eq(org.as_str()))
                    .filter(events::id.eq(id.to_string()))
                    .filter(events::logged.eq(true))
                    .select((events::tx_id, events::seq))
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(found.map(|(tx, seq)| LogPosition { tx, seq }))
            }

            async fn read_log(&self, query: &LogQuery) -> StoreResult<LogPage> {
                let mut conn = self.reader().await?;
                let mut q = events::table
                    .filter(events::organization_id.eq(query.organization_id.as_str().to_owned()))
                    .filter(events::logged.eq(true))
                    .into_boxed();
                q = $backend::after(q, query.after);
                if let Some(until) = query.until {
                    q = q.filter(
                        events::tx_id
                            .lt(until.tx)
                            .or(events::tx_id.eq(until.tx).and(events::seq.le(until.seq))),
                    );
                }
                if let Some(session) = &query.filter.session {
                    q = q.filter(events::session_id.eq(session.to_string()));
                }
                if let Some(types) = &query.filter.types {
                    let names: Vec<&'static str> = types.iter().map(|t| t.as_str()).collect();
                    q = q.filter(events::event_type.eq_any(names));
                }
                let limit = query.limit;
                let org = query.organization_id.as_str();
                // The page and what is still unsettled, from one snapshot (`begin_log_read`).
                let (rows, unsettled) = conn
                    .transaction::<_, DieselError, _>(async move |conn| {
                        $backend::begin_log_read(conn).await?;
                        let rows: Vec<LoggedEventRow> = $backend::settled(q)
                            .order((events::tx_id.asc(), events::seq.asc()))
                            .limit(limit as i64)
                            .select(LoggedEventRow::as_select())
                            .load(conn)
                            .await?;
                        let unsettled = if rows.len() < limit {
                            $backend::unsettled(conn, Some(org)).await?
                        } else {
                            None
                        };
                        Ok((rows, unsettled))
                    })
                    .await
                    .map_err(db_error)?;
                let mut page = page(rows)?;
                page.unsettled = unsettled;
                Ok(page)
            }

            async fn tail_log(&self, after: LogPosition, limit: usize) -> StoreResult<LogPage> {
                let mut conn = self.reader().await?;
                let q = events::table.filter(events::logged.eq(true)).into_boxed();
                let rows: Vec<LoggedEventRow> = $backend::settled($backend::after(q, after))
                    .order((events::tx_id.asc(), events::seq.asc()))
                    .limit(limit as i64)
                    .select(LoggedEventRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                // The tailer reads again soon after any non-empty page, so it only needs to know
                // about unsettled events when there was nothing to hand out.
                let empty = rows.is_empty();
                let mut page = page(rows)?;
                if empty {
                    page.unsettled = $backend::unsettled(&mut conn, None)
                        .await
                        .map_err(db_error)?;
                }
                Ok(page)
            }

            async fn log_head(&self) -> StoreResult<LogPosition> {
                let mut conn = self.reader().await?;
                let q = events::table.filter(events::logged.eq(true)).into_boxed();
                let head: Option<(i64, i64)> = $backend::settled(q)
                    .order((events::tx_id.desc(), events::seq.desc()))
                    .select((events::tx_id, events::seq))
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                Ok(head.map_or(LogPosition::START, |(tx, seq)| LogPosition { tx, seq }))
            }
        }
    };
}

pub(crate) use messages_impl;

#[cfg(test)]
mod tests {
    use super::{split_repeats, Repeat};
    use herald_domain::message::{
        Change, ChangeOutcome, InboundKey, Ingested, Message, MessageContent, MessageRef, Mutation,
    };
    use herald_domain::{EventId, OrgId, SessionId};

    fn change(session: SessionId, inbound: Option<&str>, message: Option<&str>) -> Change {
        let organization_id = OrgId::parse("org_a").expect("an org id");
        let mutation = match message {
            Some(id) => Mutation::InsertMessage(Message {
                organization_id: organization_id.clone(),
                key: MessageRef {
                    session,
                    chat: "1@c.us".to_owned(),
                    sender: "2@c.us".to_owned(),
                    id: id.to_owned(),
                },
                from_me: false,
                timestamp: 0,
                content: MessageContent::Text { body: None },
            }),
            None => Mutation::EventsOnly,
        };
        Change {
            organization_id,
            mutation,
            events: Vec::new(),
            inbound: inbound.map(|id| Ingested {
                key: InboundKey {
                    session,
                    id: id.to_owned(),
                },
                event_id: EventId::generate(),
            }),
        }
    }

    #[test]
    fn a_change_naming_an_earlier_changes_inbound_key_or_message_waits_for_the_batch() {
        let (s, t) = (SessionId::generate(), SessionId::generate());
        let batch = [
            change(s, Some("a"), Some("m1")),
            change(s, Some("a"), Some("m1")), // WAHA's duplicate
            change(t, Some("a"), Some("m1")), // same ids, another session
            change(s, Some("b"), Some("m1")), // a new key for a stored message
            change(s, Some("c"), None),
            change(s, None, Some("m2")),
            change(s, None, Some("m2")),
            change(s, Some("c"), Some("m3")), // a repeated key wins over a new message
            change(s, Some("m3"), Some("m3")), // m3 was never written: not a repeat
        ];
        let (together, repeats) = split_repeats(&batch);
        assert_eq!(together, vec![0, 2, 4, 5, 8]);
        let repeat = |index, of, key| Repeat { index, of, key };
        assert_eq!(
            repeats,
            vec![
                repeat(1, 0, true),
                repeat(3, 0, false),
                repeat(6, 5, false),
                repeat(7, 4, true)
            ]
        );
        let first_answer = |i: usize| batch[i].inbound.as_ref().map(|k| k.event_id).unwrap();
        let applied = ChangeOutcome::Applied;
        assert_eq!(
            repeats[0].outcome(&batch, &applied),
            Some(ChangeOutcome::AlreadyIngested(first_answer(0)))
        );
        assert_eq!(
            repeats[1].outcome(&batch, &applied),
            Some(ChangeOutcome::MessageExists)
        );
        assert_eq!(
            repeats[2].outcome(&batch, &applied),
            Some(ChangeOutcome::MessageExists)
        );
        assert_eq!(
            repeats[3].outcome(&batch, &applied),
            Some(ChangeOutcome::AlreadyIngested(first_answer(4)))
        );
    }

    #[test]
    fn a_repeat_of_a_change_answered_from_before_shares_its_answer_or_is_applied() {
        let s = SessionId::generate();
        let batch = [
            change(s, Some("a"), Some("m1")),
            change(s, Some("a"), Some("m1")),
            change(s, Some("b"), Some("m1")),
        ];
        let (_, repeats) = split_repeats(&batch);
        // "a" was recorded by an earlier batch: the first change wrote nothing.
        let earlier = ChangeOutcome::AlreadyIngested(EventId::generate());
        assert_eq!(repeats[0].outcome(&batch, &earlier), Some(earlier.clone()));
        assert_eq!(
            repeats[1].outcome(&batch, &earlier),
            None,
            "m1 may still be new: only applying it can tell"
        );
        assert_eq!(
            repeats[1].outcome(&batch, &ChangeOutcome::TargetMissing),
            None
        );
    }

    #[test]
    fn a_batch_without_repeats_stays_whole() {
        let s = SessionId::generate();
        let batch = [
            change(s, Some("a"), Some("1")),
            change(s, Some("b"), Some("2")),
        ];
        assert_eq!(split_repeats(&batch), (vec![0, 1], vec![]));
    }
}
