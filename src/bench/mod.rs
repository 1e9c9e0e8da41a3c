//! Benchmarks run against real local devnets.

pub mod plot;
pub mod propagation;
pub mod throughput;
