//! Benchmarks run against real local devnets.

pub mod propagation;
pub mod throughput;
