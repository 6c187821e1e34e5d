//! Integration tests of pgsnap-kafka.

mod connect;
mod handoff;
mod resolver;
mod tansu;
