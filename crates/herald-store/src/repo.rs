//! The repository body, written once and instantiated for both connection types
//! (`AsyncPgConnection` and SQLite's `SyncConnectionWrapper`) by [`store_impl!`]. Only the few
//! queries that differ per backend live in `pg.rs` / `sqlite.rs`, reached through the `$backend`
//! module the macro is given.

/// Implements every store port for `$store` over connections of type `$conn`; `$backend` names
/// the module holding that backend's own queries.
macro_rules! store_impl {
    ($store:ty, $conn:ty, $backend:ident) => {
        use crate::db_error;
        use crate::rows::*;
        use crate::schema::*;
        use async_trait::async_trait;
        use diesel::prelude::*;
        use diesel_async::{AsyncConnection, RunQueryDsl};
        use herald_domain::api_key::ApiKey;
        use herald_domain::event::Envelope;
        use herald_domain::ports::*;
        use herald_domain::session::Session;
        use herald_domain::webhook::Webhook;
        use herald_domain::{ApiKeyId, DeliveryId, Millis, OrgId, SessionId, WebhookId};

        /// Inserts events and one pending delivery per matching active webhook; call inside a
        /// transaction so the event, its cause and its deliveries commit together. Deliveries
        /// due at once go to the local dispatcher through `handover` while it has room (written
        /// leased to it, handed over after the commit); the rest are left for a claim.
        pub(crate) async fn append_in_tx(
            conn: &mut $conn,
            events: &[Envelope],
            handover: &mut crate::direct::Handover,
        ) -> diesel::QueryResult<()> {
            if events.is_empty() {
                return Ok(());
            }
            let rows: Vec<NewEventRow> = events.iter().map(NewEventRow::new).collect();
            $backend::insert_events(conn, &rows).await?;
            let mut orgs: Vec<&OrgId> = events.iter().map(|e| &e.organization_id).collect();
            orgs.sort();
            orgs.dedup();
            let active: Vec<(Webhook, Option<String>, Option<String>)> =
                $backend::active_webhooks(conn, &orgs)
                    .await?
                    .into_iter()
                    .filter_map(|(h, secret, previous)| {
                        h.into_domain().ok().map(|h| (h, secret, previous))
                    })
                    .collect();
            let mut deliveries = Vec::new();
            for (event, row) in events
                .iter()
                .zip(&rows)
                .filter(|(e, _)| e.event.is_logged())
            {
                let receiving = active.iter().filter(|(h, ..)| {
                    h.organization_id == event.organization_id && h.receives(event)
                });
                for (hook, secret, previous) in receiving {
                    let mut delivery = NewDeliveryRow::pending(
                        DeliveryId::generate().to_string(),
                        hook,
                        event,
                        event.timestamp,
                    );
                    let due_now = delivery
                        .next_attempt_at
                        .is_none_or(|at| at <= event.timestamp);
                    let direct = if due_now {
                        handover.reserve(event.timestamp)
                    } else {
                        None
                    };
                    match direct.and_then(|lease| {
                        crate::deliveries::direct_claim(
                            &delivery,
                            hook,
                            secret.as_deref(),
                            previous.as_deref(),
                            &row.envelope,
                            lease.until,
                        )
                        .map(|claimed| (lease, claimed))
                    }) {
                        Some((lease, claimed)) => {
                            delivery.lease_owner = Some(lease.owner);
                            delivery.lease_until = Some(lease.until);
                            handover.push(claimed);
                        }
                        None => handover.left_for_claim(),
                    }
                    deliveries.push(delivery);
                }
            }
            if !deliveries.is_empty() {
                $backend::insert_deliveries(conn, &deliveries).await?;
            }
            $backend::after_events_appended(conn).await
        }

        impl $store {
            /// After a commit that appended events: announces it (to other replicas) and hands
            /// its deliveries to the local dispatcher.
            pub(crate) fn committed(&self, handover: crate::direct::Handover) {
                self.announce(handover.claimable());
                handover.committed();
            }
        }

        #[async_trait]
        impl WebhookStore for $store {
            async fn insert_webhook(
                &self,
                webhook: &Webhook,
                secret: Option<&SealedSecret>,
            ) -> StoreResult<()> {
                let mut conn = self.writer().await?;
                let written = diesel::insert_into(webhooks::table)
                    .values((
                        WebhookRow::new(webhook),
                        webhooks::secret_sealed.eq(secret.map(|s| s.0.clone())),
                    ))
                    .execute(&mut conn)
                    .await;
                self.webhook_cache().invalidate();
                written.map_err(db_error)?;
                Ok(())
            }

            async fn list_webhooks(&self, org: &OrgId) -> StoreResult<Vec<Webhook>> {
                if let Some(kept) = self.webhook_cache().get(org) {
                    return Ok(kept);
                }
                let generation = self.webhook_cache().generation();
                let mut conn = self.reader().await?;
                let rows: Vec<WebhookRow> = webhooks::table
                    .filter(webhooks::organization_id.eq(org.as_str()))
                    .order(webhooks::id.asc())
                    .select(WebhookRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                let list = rows
                    .into_iter()
                    .map(WebhookRow::into_domain)
                    .collect::<StoreResult<Vec<_>>>()?;
                self.webhook_cache().put(org, generation, &list);
                Ok(list)
            }

            async fn find_webhook(
                &self,
                org: &OrgId,
                id: &WebhookId,
            ) -> StoreResult<Option<Webhook>> {
                let mut conn = self.reader().await?;
                let row: Option<WebhookRow> = webhooks::table
                    .filter(webhooks::organization_id.eq(org.as_str()))
                    .filter(webhooks::id.eq(id.to_string()))
                    .select(WebhookRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                row.map(WebhookRow::into_domain).transpose()
            }

            async fn update_webhook(
                &self,
                webhook: &Webhook,
                secret: &SealedSecretChange,
            ) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let row = WebhookRow::new(webhook);
                let secret = secret.clone();
                let written = conn
                    .transaction::<_, diesel::result::Error, _>(async |conn| {
                        let target = webhooks::table
                            .filter(webhooks::organization_id.eq(&row.organization_id))
                            .filter(webhooks::id.eq(&row.id));
                        let was_active: Option<bool> = target
                            .select(webhooks::active)
                            .first(conn)
                            .await
                            .optional()?;
                        let changed = diesel::update(target).set(&row).execute(conn).await?;
                        if changed == 0 {
                            return Ok(false);
                        }
                        if row.active && was_active == Some(false) {
                            // Reactivated: the failure streak and the breaker start afresh.
                            diesel::update(target)
                                .set((
                                    webhooks::consecutive_failures.eq(0),
                                    webhooks::failing_since.eq(None::<i64>),
                                    webhooks::paused_until.eq(None::<i64>),
                                    webhooks::cooldown_ms.eq(None::<i64>),
                                ))
                                .execute(conn)
                                .await?;
                        }
                        match &secret {
                            SealedSecretChange::Keep => {}
                            SealedSecretChange::Remove => {
                                diesel::update(target)
                                    .set(webhooks::secret_sealed.eq(None::<String>))
                                    .execute(conn)
                                    .await?;
                            }
                            SealedSecretChange::Set(s) => {
                                diesel::update(target)
                                    .set(webhooks::secret_sealed.eq(Some(s.0.clone())))
                                    .execute(conn)
                                    .await?;
                            }
                        }
                        if row.previous_valid_until.is_none() {
                            // The grace ended, the secret was removed or the scheme changed.
                            diesel::update(target)
                                .set((
                                    webhooks::previous_secrets.eq(None::<String>),
                                    webhooks::previous_valid_until.eq(None::<i64>),
                                ))
                                .execute(conn)
                                .await?;
                        }
                        if !row.active {
                            cancel_pending(conn, &row.id, row.updated_at).await?;
                        }
                        Ok(true)
                    })
                    .await;
                self.webhook_cache().invalidate();
                written.map_err(db_error)
            }

            async fn delete_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let id = id.to_string();
                let deleted = conn
                    .transaction::<_, diesel::result::Error, _>(async |conn| {
                        let deleted = diesel::delete(
                            webhooks::table
                                .filter(webhooks::organization_id.eq(org.as_str()))
                                .filter(webhooks::id.eq(&id)),
                        )
                        .execute(conn)
                        .await?;
                        if deleted > 0 {
                            // Deleting the row waited for every transaction still writing
                            // deliveries for it (they hold it `FOR KEY SHARE`), and the lock
                            // below for every completion still writing attempts of them, so
                            // the statements after it see all of those.
                            $backend::lock_deliveries_of(conn, &id).await?;
                            let of_webhook = deliveries::table
                                .filter(deliveries::webhook_id.eq(&id))
                                .select(deliveries::id);
                            diesel::delete(
                                delivery_attempts::table
                                    .filter(delivery_attempts::delivery_id.eq_any(of_webhook)),
                            )
                            .execute(conn)
                            .await?;
                            diesel::delete(
                                deliveries::table.filter(deliveries::webhook_id.eq(&id)),
                            )
                            .execute(conn)
                            .await?;
                        }
                        Ok(deleted)
                    })
                    .await;
                self.webhook_cache().invalidate();
                Ok(deleted.map_err(db_error)? > 0)
            }

            async fn webhook_secrets(
                &self,
                org: &OrgId,
                id: &WebhookId,
            ) -> StoreResult<Option<StoredSecrets>> {
                let mut conn = self.writer().await?;
                let row: Option<(Option<String>, Option<String>)> = webhooks::table
                    .filter(webhooks::organization_id.eq(org.as_str()))
                    .filter(webhooks::id.eq(id.to_string()))
                    .select((webhooks::secret_sealed, webhooks::previous_secrets))
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                row.map(|(current, previous)| {
                    Ok(StoredSecrets {
                        current: current.map(SealedSecret),
                        previous: crate::rows::previous_secrets(previous.as_deref()).ok_or_else(
                            || {
                                herald_domain::StoreError::new(format!(
                                    "stored secrets of webhook {id} cannot be read back"
                                ))
                            },
                        )?,
                    })
                })
                .transpose()
            }

            async fn replace_webhook_secrets(
                &self,
                org: &OrgId,
                id: &WebhookId,
                expected: Option<&SealedSecret>,
                secrets: &StoredSecrets,
                now: Millis,
            ) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let target = diesel::update(webhooks::table)
                    .filter(webhooks::organization_id.eq(org.as_str().to_owned()))
                    .filter(webhooks::id.eq(id.to_string()))
                    .into_boxed();
                let target = match expected {
                    None => target.filter(webhooks::secret_sealed.is_null()),
                    Some(sealed) => target.filter(webhooks::secret_sealed.eq(sealed.0.clone())),
                };
                let previous = (!secrets.previous.is_empty())
                    .then(|| serde_json::to_string(&secrets.previous).expect("secrets serialize"));
                let changed = target
                    .set((
                        webhooks::secret_sealed.eq(secrets.current.as_ref().map(|s| s.0.clone())),
                        webhooks::previous_secrets.eq(previous),
                        webhooks::previous_valid_until.eq(secrets.valid_until()),
                        webhooks::updated_at.eq(now),
                    ))
                    .execute(&mut conn)
                    .await;
                self.webhook_cache().invalidate();
                Ok(changed.map_err(db_error)? > 0)
            }
        }

        /// Cancels a webhook's pending deliveries (it was deactivated).
        pub(crate) async fn cancel_pending(
            conn: &mut $conn,
            webhook_id: &str,
            now: Millis,
        ) -> diesel::QueryResult<usize> {
            diesel::update(
                deliveries::table
                    .filter(deliveries::webhook_id.eq(webhook_id))
                    .filter(deliveries::status.eq("pending")),
            )
            .set((
                deliveries::status.eq("cancelled"),
                deliveries::next_attempt_at.eq(None::<i64>),
                deliveries::updated_at.eq(now),
            ))
            .execute(conn)
            .await
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn insert_session(
                &self,
                session: &Session,
                events: &[Envelope],
            ) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let row = SessionRow::new(session);
                let mut handover = crate::direct::Handover::new(self.direct_slot());
                let inserted = conn
                    .transaction::<_, diesel::result::Error, _>(async |conn| {
                        let bound: i64 = sessions::table
                            .filter(sessions::engine_session.eq(&row.engine_session))
                            .count()
                            .get_result(conn)
                            .await?;
                        if bound > 0 {
                            return Ok(false);
                        }
                        diesel::insert_into(sessions::table)
                            .values(&row)
                            .execute(conn)
                            .await?;
                        append_in_tx(conn, events, &mut handover).await?;
                        Ok(true)
                    })
                    .await;
                match inserted {
                    Ok(true) => {
                        self.committed(handover);
                        Ok(true)
                    }
                    Ok(false) => Ok(false),
                    // Two creations racing for one engine session: the unique index decides.
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => Ok(false),
                    Err(e) => Err(db_error(e)),
                }
            }

            async fn list_sessions(&self, org: &OrgId) -> StoreResult<Vec<Session>> {
                let mut conn = self.reader().await?;
                let rows: Vec<SessionRow> = sessions::table
                    .filter(sessions::organization_id.eq(org.as_str()))
                    .order(sessions::id.asc())
                    .select(SessionRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                rows.into_iter().map(SessionRow::into_domain).collect()
            }

            async fn find_session(
                &self,
                org: &OrgId,
                id: &SessionId,
            ) -> StoreResult<Option<Session>> {
                let mut conn = self.reader().await?;
                let row: Option<SessionRow> = sessions::table
                    .filter(sessions::organization_id.eq(org.as_str()))
                    .filter(sessions::id.eq(id.to_string()))
                    .select(SessionRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                row.map(SessionRow::into_domain).transpose()
            }

            async fn delete_session(&self, org: &OrgId, id: &SessionId) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let n = diesel::delete(
                    sessions::table
                        .filter(sessions::organization_id.eq(org.as_str()))
                        .filter(sessions::id.eq(id.to_string())),
                )
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
                Ok(n > 0)
            }
        }

        #[async_trait]
        impl ApiKeyStore for $store {
            async fn insert_api_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
                let mut conn = self.writer().await?;
                diesel::insert_into(api_keys::table)
                    .values(ApiKeyRow::new(key, token_hash))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn list_api_keys(&self, org: &OrgId) -> StoreResult<Vec<ApiKey>> {
                let mut conn = self.reader().await?;
                let rows: Vec<ApiKeyRow> = api_keys::table
                    .filter(api_keys::organization_id.eq(org.as_str()))
                    .filter(api_keys::revoked_at.is_null())
                    .order(api_keys::id.asc())
                    .select(ApiKeyRow::as_select())
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
                rows.into_iter().map(ApiKeyRow::into_domain).collect()
            }

            async fn find_api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
                let mut conn = self.reader().await?;
                let row: Option<ApiKeyRow> = api_keys::table
                    .filter(api_keys::token_hash.eq(token_hash))
                    .filter(api_keys::revoked_at.is_null())
                    .select(ApiKeyRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()
                    .map_err(db_error)?;
                row.map(ApiKeyRow::into_domain).transpose()
            }

            async fn revoke_api_key(
                &self,
                org: Option<&OrgId>,
                id: &ApiKeyId,
                now: Millis,
            ) -> StoreResult<bool> {
                let mut conn = self.writer().await?;
                let mut query = diesel::update(api_keys::table)
                    .filter(api_keys::id.eq(id.to_string()))
                    .filter(api_keys::revoked_at.is_null())
                    .into_boxed();
                if let Some(org) = org {
                    query = query.filter(api_keys::organization_id.eq(org.as_str().to_owned()));
                }
                let n = query
                    .set(api_keys::revoked_at.eq(Some(now)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(n > 0)
            }

            async fn touch_api_key(&self, id: &ApiKeyId, now: Millis) -> StoreResult<()> {
                let mut conn = self.writer().await?;
                diesel::update(api_keys::table.filter(api_keys::id.eq(id.to_string())))
                    .set(api_keys::last_used_at.eq(Some(now)))
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }
        }

        #[async_trait]
        impl EventStore for $store {
            async fn append_events(&self, events: &[Envelope]) -> StoreResult<()> {
                let mut conn = self.writer().await?;
                let mut handover = crate::direct::Handover::new(self.direct_slot());
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    append_in_tx(conn, events, &mut handover).await
                })
                .await
                .map_err(db_error)?;
                self.committed(handover);
                Ok(())
            }
        }

        #[async_trait]
        impl StoreHealth for $store {
            async fn ping(&self) -> StoreResult<()> {
                let mut conn = self.reader().await?;
                diesel::sql_query("SELECT 1")
                    .execute(&mut conn)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            async fn probe_write(&self) -> StoreResult<()> {
                let (id, payload) = crate::probe_row();
                let mut conn = self.writer().await?;
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    diesel::insert_into(store_probe::table)
                        .values((
                            store_probe::id.eq(&id),
                            store_probe::payload.eq(&payload),
                            store_probe::probed_at.eq(crate::now_ms()),
                        ))
                        .execute(conn)
                        .await?;
                    diesel::delete(store_probe::table.filter(store_probe::id.eq(&id)))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
                .await
                .map_err(db_error)
            }
        }
    };
}

pub(crate) use store_impl;
