//! Integration tests against a throwaway PostgreSQL.
mod catalog;
mod chunking;
mod common;
mod consistency;
mod handoff;
mod preflight;
mod replication;
mod snapshot;
mod sslmode;
mod tls;
mod types;
