//! End-to-end tests of rhtex: the real binaries on 127.0.0.1.
