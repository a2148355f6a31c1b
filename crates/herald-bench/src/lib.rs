//! Benchmark support: a keep-alive HTTP/1.1 load generator ([`load`]) and a do-nothing hyper
//! server ([`noop`]) to measure the machine's ceiling in the same run, so every figure can be
//! reported next to what this box can do at all.

pub mod load;
pub mod noop;
