//! Integration tests of the StarRocks sink against the StarRocks test double (HTTP and
//! MySQL fronts in `pgsnap-test-support`) and real PostgreSQL 15 clusters.
#![allow(clippy::clone_on_ref_ptr)]

mod conformance;
mod errors;
mod faults;
mod preflight;
mod support;
mod transactions;
mod types;
