//! The command-line front of pgsnap: the flags of every command ([`args`]), what they print
//! ([`output`]), their exit codes ([`exit`]) and their signal handling ([`interrupt`]). The
//! `pgsnap` binary and the repository's examples are built from these; each command is one
//! job of the [`pgsnap`] library.
//!
//! # The contract every command follows
//! - progress (a bar on a terminal, log lines otherwise) and logs go to **stderr**;
//! - with `--json`, **stdout** is one JSON object and nothing else (its `report_version` is
//!   [`pgsnap::REPORT_VERSION`]); the one exception is `status --watch --json`, one object
//!   per check, one per line (NDJSON);
//! - exit codes: 0 everything complete, 1 finished with failed tables (listed), 2 usage
//!   error, 3 preflight or connection error, 4 snapshot lost or not importable, 5
//!   non-retryable sink error, 6 timeout or a result that is not final (`status`, `verify`),
//!   130 stopped by SIGINT, 143 stopped by SIGTERM (see [`exit`]); `verify` exits 1 when it
//!   finds a difference.
//!
//! # Layering
//! `args` and `exit` ← `interrupt` (signals → exit codes) and `output` (reports, errors with
//! flag names, exit codes) ← the `pgsnap` binary's `main`: parse, run one job, print.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod args;
pub mod exit;
pub mod interrupt;
pub mod output;
