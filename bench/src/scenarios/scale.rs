//! Benchmark 4 (being written).
