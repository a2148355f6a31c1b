//! The engine Herald runs with, as configured (`HERALD_ENGINE`), wrapped so every call through
//! the engine port is counted by operation and outcome for `/metrics`
//! (`herald_engine_requests_total{engine,operation,outcome}`), whichever engine it is —
//! including one a host application plugs in.

use async_trait::async_trait;
use herald_domain::event::Me;
use herald_domain::poll::Poll;
use herald_domain::ports::{Engine, EngineError, StatusReport};
use herald_domain::session::Session;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counts of engine calls by operation and outcome (`ok`, `unavailable`, `rejected`,
/// `unsupported`).
pub struct EngineMetrics {
    engine: &'static str,
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl EngineMetrics {
    fn record<T>(&self, operation: &'static str, result: &Result<T, EngineError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.outcome(),
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((operation, outcome)).or_default() += 1;
    }
}

impl herald_http::MetricsSource for EngineMetrics {
    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP herald_engine_requests_total Calls to the messaging engine, by operation and outcome.\n\
             # TYPE herald_engine_requests_total counter\n",
        );
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for ((operation, outcome), count) in counts.iter() {
            out.push_str(&format!(
                "herald_engine_requests_total{{engine=\"{}\",operation=\"{operation}\",outcome=\"{outcome}\"}} {count}\n",
                self.engine
            ));
        }
    }
}

/// An engine whose every call is counted.
pub struct MeteredEngine {
    inner: Arc<dyn Engine>,
    metrics: Arc<EngineMetrics>,
}

impl MeteredEngine {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Engine>) -> Self {
        let metrics = Arc::new(EngineMetrics {
            engine: inner.name(),
            counts: Mutex::default(),
        });
        Self { inner, metrics }
    }

    /// The counters, for `/metrics`.
    pub fn metrics(&self) -> Arc<EngineMetrics> {
        self.metrics.clone()
    }
}

#[async_trait]
impl Engine for MeteredEngine {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn start(&self, session: &Session) -> Result<Vec<StatusReport>, EngineError> {
        let result = self.inner.start(session).await;
        self.metrics.record("start", &result);
        result
    }

    async fn stop(&self, session: &Session) -> Result<(), EngineError> {
        let result = self.inner.stop(session).await;
        self.metrics.record("stop", &result);
        result
    }

    async fn me(&self, session: &Session) -> Result<Option<Me>, EngineError> {
        let result = self.inner.me(session).await;
        self.metrics.record("me", &result);
        result
    }

    async fn qr(&self, session: &Session) -> Result<String, EngineError> {
        let result = self.inner.qr(session).await;
        self.metrics.record("qr", &result);
        result
    }

    async fn send_text(
        &self,
        session: &Session,
        chat: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, EngineError> {
        let result = self.inner.send_text(session, chat, text, reply_to).await;
        self.metrics.record("send_text", &result);
        result
    }

    async fn send_poll(
        &self,
        session: &Session,
        chat: &str,
        poll: &Poll,
    ) -> Result<String, EngineError> {
        let result = self.inner.send_poll(session, chat, poll).await;
        self.metrics.record("send_poll", &result);
        result
    }

    async fn send_vote(
        &self,
        session: &Session,
        chat: &str,
        poll_message_id: &str,
        options: &[String],
    ) -> Result<String, EngineError> {
        let result = self
            .inner
            .send_vote(session, chat, poll_message_id, options)
            .await;
        self.metrics.record("send_vote", &result);
        result
    }
}
