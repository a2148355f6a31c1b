//! Herald's benchmarks. [`load`] is a small HTTP/1.1 load generator over keep-alive
//! connections and [`noop`] a do-nothing hyper server measured in the same run as the ceiling
//! of this machine; [`delivery`] holds the receivers and process plumbing of the delivery
//! benchmarks; all are shared by the bench binaries in `src/bin/` (`bench-api`,
//! `bench-auth`, …). Benchmarks measure; they never assert on timings.

pub mod delivery;
pub mod load;
pub mod noop;
