//! Messaging sessions: a connected chat account owned by one organization, and the states it
//! moves through as its engine connects it.

use crate::error::DomainError;
use crate::event::Me;
use crate::ids::{OrgId, SessionId};
use crate::Millis;
use serde::{Deserialize, Serialize};

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Just created; the engine is connecting.
    Starting,
    /// The engine waits for the account owner to scan a QR code.
    ScanQr,
    /// Connected: messages flow.
    Working,
    /// The engine gave up.
    Failed,
    /// Deliberately stopped.
    Stopped,
}

impl SessionStatus {
    /// Every status.
    pub const ALL: [SessionStatus; 5] = [
        Self::Starting,
        Self::ScanQr,
        Self::Working,
        Self::Failed,
        Self::Stopped,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "STARTING",
            Self::ScanQr => "SCAN_QR",
            Self::Working => "WORKING",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A messaging session.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Bare ULID.
    pub id: SessionId,
    /// The owner.
    pub organization_id: OrgId,
    /// A human label.
    pub name: String,
    /// The name the engine knows the session by (for WAHA, its session name); the session's
    /// own id unless chosen at creation. No two sessions bind the same one.
    pub engine_session: String,
    /// Current state.
    pub status: SessionStatus,
    /// The connected account, once known.
    pub me: Option<Me>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

impl Session {
    /// Longest session name.
    pub const MAX_NAME: usize = 200;

    /// A new session in `STARTING`; 422 on `name` when it is empty or too long.
    pub fn new(organization_id: OrgId, name: &str, now: Millis) -> Result<Self, DomainError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > Self::MAX_NAME
            || name.chars().any(char::is_control)
        {
            return Err(DomainError::invalid(
                "name",
                "name must be 1 to 200 printable characters",
            ));
        }
        let id = SessionId::generate();
        Ok(Self {
            id,
            organization_id,
            name: name.to_owned(),
            engine_session: id.to_string(),
            status: SessionStatus::Starting,
            me: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// Longest engine session name.
    pub const MAX_ENGINE_SESSION: usize = 64;

    /// Binds the session to the engine's session `name` (422 on `engineSession` unless it is 1
    /// to 64 letters, digits, `-`, `_` or `.`: it travels in the engine's URLs).
    pub fn with_engine_session(mut self, name: &str) -> Result<Self, DomainError> {
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_ENGINE_SESSION
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(DomainError::invalid(
                "engineSession",
                "engineSession must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        self.engine_session = name.to_owned();
        Ok(self)
    }

    /// The `session.status` payload for the current state: `{"status","me"}`.
    pub fn status_payload(&self) -> serde_json::Value {
        serde_json::json!({ "status": self.status, "me": self.me })
    }

    /// The `session.status` payload with what the engine added: its own status name when Herald
    /// has none of that name (`engineStatus`), or why it failed (`reason`).
    pub fn status_payload_with(
        &self,
        engine_status: Option<&str>,
        reason: Option<&str>,
    ) -> serde_json::Value {
        let mut payload = self.status_payload();
        if let Some(name) = engine_status {
            payload["engineStatus"] = serde_json::json!(name);
        }
        if let Some(reason) = reason {
            payload["reason"] = serde_json::json!(reason);
        }
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sessions_start_and_names_are_checked() {
        let org = OrgId::parse("org").unwrap();
        let s = Session::new(org.clone(), " sales ", 1).unwrap();
        assert_eq!(
            (s.status, s.name.as_str()),
            (SessionStatus::Starting, "sales")
        );
        assert!(Session::new(org.clone(), "  ", 1).is_err());
        assert!(Session::new(org.clone(), &"x".repeat(201), 1).is_err());
        assert_eq!(s.engine_session, s.id.to_string());
        let bound = s.clone().with_engine_session("default").unwrap();
        assert_eq!(bound.engine_session, "default");
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(s.clone().with_engine_session(bad).is_err(), "{bad}");
        }
        assert_eq!(
            s.status_payload_with(Some("PASSKEY_REQUIRED"), None)["engineStatus"],
            "PASSKEY_REQUIRED"
        );
        assert_eq!(
            serde_json::to_value(SessionStatus::ScanQr).unwrap(),
            "SCAN_QR"
        );
    }
}

/// The session state machine's one rule: an engine's status report is the truth. The status
/// becomes the reported one (any status may follow any other — a stopped session can be
/// started again, a working one can fail), `me` changes only when the report names an
/// account, and `updatedAt` never goes back.
impl Session {
    /// The session after `report`, at `now`.
    pub fn after_report(&self, report: crate::ports::StatusReport, now: Millis) -> Session {
        let mut next = self.clone();
        next.status = report.status;
        if report.me.is_some() {
            next.me = report.me;
        }
        next.updated_at = now.max(self.updated_at);
        next
    }
}

#[cfg(test)]
mod state_machine_tests {
    use super::*;
    use crate::ports::StatusReport;

    fn working(me: &str) -> StatusReport {
        StatusReport {
            status: SessionStatus::Working,
            me: Some(Me { id: me.into() }),
        }
    }

    #[test]
    fn a_new_session_goes_from_starting_to_working_with_its_account() {
        let s = Session::new(OrgId::parse("org").unwrap(), "s", 10).unwrap();
        let next = s.after_report(working("1@c.us"), 20);
        assert_eq!(next.status, SessionStatus::Working);
        assert_eq!(
            next.me,
            Some(Me {
                id: "1@c.us".into()
            })
        );
        assert_eq!(next.updated_at, 20);
        assert_eq!(next.created_at, 10);
    }

    #[test]
    fn a_report_without_an_account_keeps_the_known_one() {
        let s = Session::new(OrgId::parse("org").unwrap(), "s", 10)
            .unwrap()
            .after_report(working("1@c.us"), 20);
        let stopped = s.after_report(
            StatusReport {
                status: SessionStatus::Stopped,
                me: None,
            },
            30,
        );
        assert_eq!(stopped.status, SessionStatus::Stopped);
        assert_eq!(
            stopped.me,
            Some(Me {
                id: "1@c.us".into()
            })
        );
        let again = stopped.after_report(working("2@c.us"), 40);
        assert_eq!(
            (again.status, again.me.unwrap().id),
            (SessionStatus::Working, "2@c.us".into())
        );
    }

    #[test]
    fn updated_at_never_goes_back() {
        let s = Session::new(OrgId::parse("org").unwrap(), "s", 50).unwrap();
        assert_eq!(s.after_report(working("1@c.us"), 5).updated_at, 50);
    }
}
