//! Herald's store ports in memory — a **test double**, never used by the binaries.
//!
//! [`MemoryStore`] implements every port [`Store`](herald_domain::ports::Store) requires, with
//! the semantics of `herald-store`'s SQL adapters: organization scoping on every read, each
//! write all-or-nothing (one lock stands in for a transaction), events fanned out in the same
//! write to every active webhook whose filter they pass ([`Webhook::receives`]) as pending
//! deliveries, the event log in one total order with its paging, inbound idempotency keys, poll
//! votes that replace the voter's previous selection, and a delivery queue with leases, claims,
//! completion, webhook health, retries and recovery. Deleting a session or a webhook removes
//! what hangs off it, as the SQL schema's cascades do. Unlike SQL it keeps nothing across a
//! restart and has no concurrency to speak of, which is all a use-case test needs.
//!
//! [`fakes`] has the other ports a [`Gateway`](herald_domain::gateway::Gateway) needs — a clock
//! that moves only when told (and whose [`Pause`](herald_domain::ports::Pause) moves it), a
//! reversible cipher, a counting key minter, a scriptable engine and a listener that records
//! what it was told — and [`Harness`] wires them into a gateway. [`block_on`] runs a use case to
//! completion without an async runtime: nothing here ever waits on I/O.
//!
//! [`Webhook::receives`]: herald_domain::webhook::Webhook::receives

mod deliveries;
pub mod fakes;
mod messages;
mod state;
mod store;

pub use fakes::{block_on, FakeCipher, FakeEngine, FakeMinter, Harness, ManualTime, Recorder};
pub use store::MemoryStore;
