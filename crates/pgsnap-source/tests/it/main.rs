//! Integration tests against a throwaway PostgreSQL.
mod replication;
