//! rhtex benchmarks (being written).
