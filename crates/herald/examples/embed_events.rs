//! An in-process consumer of an organization's events that survives restarts: it records the id
//! of each event it has handled and, when started again, resumes right after it — nothing
//! committed meanwhile is lost, nothing is handled twice.

use herald::domain::events_log::LogFilter;
use herald::domain::OrgId;
use herald::{Capabilities, Herald, Principal, StartAt, StreamedEvent};
use std::path::Path;

/// Handles `caller`'s events after the one recorded in `cursor` (all of them when the file does
/// not exist yet), recording each id once `handle` returns; stops after `limit` events when
/// given, else runs until Herald shuts down.
async fn consume(
    herald: &Herald,
    caller: &Principal,
    cursor: &Path,
    limit: Option<usize>,
    mut handle: impl FnMut(&StreamedEvent),
) -> anyhow::Result<()> {
    let recorded = std::fs::read_to_string(cursor).ok();
    let start = recorded.as_deref().map_or(StartAt::Oldest, StartAt::After);
    let mut events = match herald.events(caller, start, LogFilter::default()).await {
        Ok(events) => events,
        // The recorded event is gone (pruned by retention): start from the oldest kept.
        Err(herald::domain::DomainError::NotFound(_)) => {
            let oldest = StartAt::Oldest;
            herald.events(caller, oldest, LogFilter::default()).await?
        }
        Err(error) => return Err(error.into()),
    };
    let mut handled = 0;
    while limit.is_none_or(|limit| handled < limit) {
        let event = match events.next().await {
            Ok(event) => event,
            Err(herald::StreamEnd::Closed) => break,
            Err(error) => return Err(error.into()),
        };
        handle(&event);
        // Written after handling: a crash in between handles the event again (at least once).
        std::fs::write(cursor, event.id.to_string())?;
        handled += 1;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let herald = Herald::builder(herald::Config::from_env()?).build().await?;
    let org = OrgId::parse(&std::env::var("HERALD_EXAMPLE_ORG").unwrap_or("org_demo".into()))
        .ok_or_else(|| anyhow::anyhow!("HERALD_EXAMPLE_ORG is not a valid organization id"))?;
    let caller = Principal::trusted(org, Capabilities::ALL);
    consume(
        &herald,
        &caller,
        Path::new("events.cursor"),
        None,
        |event| println!("{}", event.json),
    )
    .await
}

#[cfg(test)]
#[path = "tests/embed_events.rs"]
mod tests;
