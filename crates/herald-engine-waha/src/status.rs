//! WAHA's session statuses in Herald's terms. WAHA adds statuses over time (newer versions have
//! passkey states), so an unknown name is never an error: it counts as `STARTING` (the session
//! is on its way but cannot work yet) and WAHA's own name travels along for the event payload.

use herald_domain::session::SessionStatus;

/// A WAHA status translated to Herald's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedStatus {
    /// Herald's status.
    pub status: SessionStatus,
    /// WAHA's name when Herald has no status of that name (e.g. `PASSKEY_REQUIRED`), for the
    /// `engineStatus` field of the `session.status` event; `None` for the five Herald knows.
    pub engine_status: Option<String>,
}

/// Translates WAHA's status name: `SCAN_QR_CODE` → `SCAN_QR`; `STARTING`, `WORKING`, `FAILED`
/// and `STOPPED` as named; anything else → `STARTING` with WAHA's name kept.
pub fn map_status(waha: &str) -> MappedStatus {
    let known = match waha {
        "SCAN_QR_CODE" => Some(SessionStatus::ScanQr),
        "STARTING" => Some(SessionStatus::Starting),
        "WORKING" => Some(SessionStatus::Working),
        "FAILED" => Some(SessionStatus::Failed),
        "STOPPED" => Some(SessionStatus::Stopped),
        _ => None,
    };
    match known {
        Some(status) => MappedStatus {
            status,
            engine_status: None,
        },
        None => MappedStatus {
            status: SessionStatus::Starting,
            engine_status: Some(waha.to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_waha_status_has_a_herald_status() {
        let plain = |s: &str| map_status(s).status;
        assert_eq!(plain("SCAN_QR_CODE"), SessionStatus::ScanQr);
        assert_eq!(plain("STARTING"), SessionStatus::Starting);
        assert_eq!(plain("WORKING"), SessionStatus::Working);
        assert_eq!(plain("FAILED"), SessionStatus::Failed);
        assert_eq!(plain("STOPPED"), SessionStatus::Stopped);
        assert_eq!(map_status("WORKING").engine_status, None);
        for newer in [
            "PASSKEY_REQUIRED",
            "PASSKEY_CONFIRMATION_REQUIRED",
            "SCAN_QR",
            "",
        ] {
            assert_eq!(
                map_status(newer),
                MappedStatus {
                    status: SessionStatus::Starting,
                    engine_status: Some(newer.to_owned()),
                },
                "{newer}"
            );
        }
    }
}
