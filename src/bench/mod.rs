//! Benchmarks run against real local devnets.

pub mod idle;
pub mod nemesis;
pub mod plot;
pub mod progress;
pub mod propagation;
pub mod scale;
pub mod throughput;
