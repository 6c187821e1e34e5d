//! Black-box tests of the `snapshot_to_files` example binary against a throwaway PostgreSQL:
//! its flags, `--json` report, exit codes, manifest and chunk files, kill -9 and `--resume`.
//!
//! The binary is built once per run of this test binary (see [`support::binary`]); every
//! process it starts is killed after [`support::RUN_TIMEOUT`] so a hang fails instead of
//! hanging CI.

mod contract;
mod errors;
mod failures;
mod resume;
mod selection;
mod support;
