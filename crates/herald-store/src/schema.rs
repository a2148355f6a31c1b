//! The one diesel schema both backends share. Only portable SQL types appear here; the
//! migrations under `migrations/{postgres,sqlite}` create matching tables.

diesel::table! {
    api_keys (id) {
        id -> Text,
        organization_id -> Text,
        name -> Text,
        capabilities -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        organization_id -> Text,
        name -> Text,
        status -> Text,
        me_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        engine_session -> Text,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        organization_id -> Text,
        url -> Text,
        events -> Text,
        session_id -> Nullable<Text>,
        active -> Bool,
        custom_headers -> Text,
        retry_policy -> Text,
        retry_delay_seconds -> Integer,
        retry_attempts -> Integer,
        secret_sealed -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        signing -> Text,
        previous_secrets -> Nullable<Text>,
        previous_valid_until -> Nullable<BigInt>,
        disabled_reason -> Nullable<Text>,
        rate_limit -> Nullable<Integer>,
        consecutive_failures -> Integer,
        failing_since -> Nullable<BigInt>,
        last_success_at -> Nullable<BigInt>,
        paused_until -> Nullable<BigInt>,
        cooldown_ms -> Nullable<BigInt>,
        rate_window -> Nullable<BigInt>,
        rate_used -> Integer,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        id -> Text,
        organization_id -> Text,
        session_id -> Nullable<Text>,
        event_type -> Text,
        created_at -> BigInt,
        envelope -> Text,
        logged -> Bool,
        tx_id -> BigInt,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Text,
        organization_id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        event_type -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        last_attempt_at -> Nullable<BigInt>,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        lease_owner -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        budget_base -> Integer,
    }
}

diesel::table! {
    delivery_attempts (delivery_id, attempt) {
        delivery_id -> Text,
        attempt -> Integer,
        started_at -> BigInt,
        duration_ms -> BigInt,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        response_body -> Text,
    }
}

diesel::table! {
    messages (session_id, chat, sender, id) {
        session_id -> Text,
        chat -> Text,
        sender -> Text,
        id -> Text,
        organization_id -> Text,
        from_me -> Bool,
        kind -> Text,
        body -> Nullable<Text>,
        poll -> Nullable<Text>,
        timestamp -> BigInt,
    }
}

diesel::table! {
    poll_votes (session_id, chat, sender, message_id, voter) {
        session_id -> Text,
        chat -> Text,
        sender -> Text,
        message_id -> Text,
        voter -> Text,
        options -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    inbound_keys (session_id, inbound_id) {
        session_id -> Text,
        inbound_id -> Text,
        event_id -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(deliveries -> webhooks (webhook_id));
diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    sessions,
    webhooks,
    events,
    deliveries,
    delivery_attempts,
    messages,
    poll_votes,
    inbound_keys,
);

diesel::table! {
    /// Scratch rows of the readiness write probe (empty outside its transaction).
    store_probe (id) {
        id -> Text,
        payload -> Text,
        probed_at -> BigInt,
    }
}
