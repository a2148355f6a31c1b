//! Herald's benchmarks. [`load`] is a small HTTP/1.1 load generator over keep-alive
//! connections, shared by the bench binaries in `src/bin/` (`bench-auth`: the cost of
//! authentication). Benchmarks measure; they never assert on timings.

pub mod load;
