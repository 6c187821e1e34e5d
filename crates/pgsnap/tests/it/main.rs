//! The jobs called as a library, against a real PostgreSQL (a throwaway cluster), the tansu
//! Kafka broker and the StarRocks test double: what an embedding service sees.

mod files;
mod handoff;
mod metrics;
mod migrate;
mod routine_loads;
mod status;
mod support;
mod tls;
mod verify;
