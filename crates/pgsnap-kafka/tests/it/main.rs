//! Integration tests of pgsnap-kafka.

mod resolver;
mod tansu;
