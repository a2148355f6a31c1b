//! Telling an outage from any other database failure. An outage — the connection refused or
//! lost, the server shutting down, starting up or read-only, the disk full, the file locked for
//! longer than the busy timeout — is answered `503` with `Retry-After`: the same request may
//! succeed later. Everything else (a constraint the code did not expect, a malformed query)
//! stays a `500`.
//!
//! diesel passes on a database error's kind for a few cases only, and not its SQLSTATE or
//! SQLite result code, so the rest is recognized by the server's message. SQLite's messages are
//! fixed strings; PostgreSQL's are its English ones (a server with `lc_messages` in another
//! language still gets a `503` for lost connections and read-only servers, a `500` otherwise).

use diesel::result::{DatabaseErrorKind, Error};

/// Messages (lower case) that mark an outage.
const OUTAGE_MESSAGES: &[&str] = &[
    // SQLite: SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY / SQLITE_LOCKED after the busy timeout,
    // SQLITE_READONLY, SQLITE_CANTOPEN.
    "database or disk is full",
    "disk i/o error",
    "database is locked",
    "database table is locked",
    "attempt to write a readonly database",
    "unable to open database file",
    // PostgreSQL: disk full (53100), admin or crash shutdown (57P01, 57P02), cannot connect now
    // (57P03), too many connections (53300).
    "no space left on device",
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "sorry, too many clients already",
    "remaining connection slots are reserved",
    "server closed the connection unexpectedly",
    "connection reset by peer",
    "connection refused",
];

/// Whether `error` means the store is out of reach or out of space rather than that the
/// operation itself failed.
pub(crate) fn is_outage(error: &Error) -> bool {
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        ) => true,
        Error::DatabaseError(_, info) => is_outage_message(info.message()),
        // A transaction whose connection broke midway.
        Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit { commit_error, .. } => is_outage(commit_error),
        _ => false,
    }
}

fn is_outage_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    OUTAGE_MESSAGES.iter().any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn lost_connections_full_disks_and_shutdowns_are_outages() {
        for error in [
            db(DatabaseErrorKind::ClosedConnection, "closed"),
            db(
                DatabaseErrorKind::UnableToSendCommand,
                "error communicating with the server",
            ),
            db(
                DatabaseErrorKind::ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
            ),
            db(DatabaseErrorKind::Unknown, "database or disk is full"),
            db(DatabaseErrorKind::Unknown, "disk I/O error"),
            db(DatabaseErrorKind::Unknown, "database is locked"),
            db(
                DatabaseErrorKind::Unknown,
                "could not extend file \"base/16384/16385\": No space left on device",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            Error::BrokenTransactionManager,
        ] {
            assert!(is_outage(&error), "{error:?}");
        }
    }

    #[test]
    fn failed_operations_are_not_outages() {
        for error in [
            db(DatabaseErrorKind::UniqueViolation, "duplicate key value"),
            db(
                DatabaseErrorKind::Unknown,
                "syntax error at or near \"SELEC\"",
            ),
            db(DatabaseErrorKind::Unknown, "no such table: webhooks"),
            Error::NotFound,
        ] {
            assert!(!is_outage(&error), "{error:?}");
        }
    }
}
