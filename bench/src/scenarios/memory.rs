//! Benchmark 3 (being written).
