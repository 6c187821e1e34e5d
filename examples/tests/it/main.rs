//! Black-box tests of the example binaries against a throwaway PostgreSQL: their flags,
//! `--json` report, exit codes, state, kill -9 and `--resume`. `snapshot_to_files` writes
//! manifest and chunk files; `migrate_to_starrocks` loads an in-process StarRocks test
//! double (see `starrocks`).
//!
//! Each binary is built once per run of this test binary (see [`support::binary_of`]); every
//! process it starts is killed after [`support::RUN_TIMEOUT`] so a hang fails instead of
//! hanging CI.

mod cdc;
mod contract;
mod cutover;
mod errors;
mod failures;
mod handoff;
mod metrics;
mod resume;
mod selection;
mod starrocks;
mod status;
mod support;
mod verify;
