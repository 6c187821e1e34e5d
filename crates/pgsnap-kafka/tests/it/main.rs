//! Integration tests of pgsnap-kafka.
//!
//! `connect` and `render` test the pure parts and run without default features; the
//! broker tests (`handoff`, `resolver`, `tansu`, `tls`) need the `rdkafka` feature.

mod connect;
#[cfg(feature = "rdkafka")]
mod handoff;
mod render;
#[cfg(feature = "rdkafka")]
mod resolver;
#[cfg(feature = "rdkafka")]
mod tansu;
#[cfg(feature = "rdkafka")]
mod tls;
