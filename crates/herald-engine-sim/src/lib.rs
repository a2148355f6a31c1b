//! The built-in **simulated** messaging engine. It connects to no network: a new session goes
//! straight to `WORKING` with a made-up phone-number id (`1555…@c.us`), and sending text, a
//! poll or a vote just invents a message id. It never needs a QR code (asking for one is a
//! conflict) and knows no account beyond what Herald stored. It exists so Herald runs end to end out of the box and in
//! tests; a real engine implements the same `Engine` port and reports what happens on the
//! network through the inbound API.

use async_trait::async_trait;
use herald_domain::event::Me;
use herald_domain::poll::Poll;
use herald_domain::ports::{Engine, EngineError, StatusReport};
use herald_domain::session::{Session, SessionStatus};
use rand::Rng;

/// The simulator. Stateless: everything it "knows" is what Herald stores.
#[derive(Default)]
pub struct SimulatorEngine;

impl SimulatorEngine {
    fn message_id() -> String {
        // Shaped like the network's own ids (upper-case hex), so clients see realistic values.
        format!(
            "3EB0{:016X}{:04X}",
            rand::rng().random::<u64>(),
            rand::rng().random::<u16>()
        )
    }
}

#[async_trait]
impl Engine for SimulatorEngine {
    fn name(&self) -> &'static str {
        "simulator"
    }

    async fn start(&self, session: &Session) -> Result<Vec<StatusReport>, EngineError> {
        tracing::info!(session = %session.id, "simulator engine: connecting session (no real network)");
        let number: u32 = rand::rng().random_range(0..10_000_000);
        let me = Me {
            id: format!("1555{number:07}@c.us"),
        };
        Ok(vec![StatusReport {
            status: SessionStatus::Working,
            me: Some(me),
        }])
    }

    async fn stop(&self, session: &Session) -> Result<(), EngineError> {
        tracing::info!(session = %session.id, "simulator engine: session stopped");
        Ok(())
    }

    async fn qr(&self, _session: &Session) -> Result<String, EngineError> {
        Err(EngineError::Unsupported(
            "the simulator engine never needs a QR code".into(),
        ))
    }

    async fn me(&self, session: &Session) -> Result<Option<Me>, EngineError> {
        Ok(session.me.clone())
    }

    async fn send_text(
        &self,
        _session: &Session,
        _chat: &str,
        _text: &str,
        _reply_to: Option<&str>,
    ) -> Result<String, EngineError> {
        Ok(Self::message_id())
    }

    async fn send_poll(
        &self,
        _session: &Session,
        _chat: &str,
        _poll: &Poll,
    ) -> Result<String, EngineError> {
        Ok(Self::message_id())
    }

    async fn send_vote(
        &self,
        _session: &Session,
        _chat: &str,
        _poll_message_id: &str,
        _options: &[String],
    ) -> Result<String, EngineError> {
        Ok(Self::message_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::OrgId;

    #[tokio::test]
    async fn sessions_come_up_working_with_a_phone_id() {
        let session = Session::new(OrgId::parse("org").unwrap(), "s", 1).unwrap();
        let reports = SimulatorEngine.start(&session).await.unwrap();
        assert_eq!(reports[0].status, SessionStatus::Working);
        let me = reports[0].me.as_ref().unwrap();
        assert!(me.id.starts_with("1555") && me.id.ends_with("@c.us"));
        assert_ne!(SimulatorEngine::message_id(), SimulatorEngine::message_id());
        assert!(matches!(
            SimulatorEngine.qr(&session).await,
            Err(EngineError::Unsupported(_))
        ));
        let sent = SimulatorEngine
            .send_text(&session, "1@c.us", "hi", None)
            .await
            .unwrap();
        assert!(sent.starts_with("3EB0"));
    }
}
