//! Deterministic scheduling simulator (being written): drives the real
//! interchange core with simulated pool-managers in virtual time.
