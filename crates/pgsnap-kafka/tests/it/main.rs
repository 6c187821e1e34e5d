//! Integration tests of pgsnap-kafka.

mod connect;
mod handoff;
mod render;
mod resolver;
mod tansu;
