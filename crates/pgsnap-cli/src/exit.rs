//! The exit codes of the pgsnap commands.

use pgsnap::{ErrorKind, Outcome};

/// Everything complete.
pub const EXIT_OK: i32 = 0;
/// Finished, but some tables failed (listed in the report).
pub const EXIT_PARTIAL: i32 = 1;
/// Usage error (bad flags or arguments, a directory that does not fit).
pub const EXIT_USAGE: i32 = 2;
/// Preflight or connection error.
pub const EXIT_PREFLIGHT: i32 = 3;
/// Snapshot lost or not importable.
pub const EXIT_SNAPSHOT: i32 = 4;
/// Non-retryable sink error.
pub const EXIT_SINK: i32 = 5;
/// Timed out, or not final: `status --until-caught-up` not caught up when `--timeout` passed;
/// `verify` found no difference but CDC is not caught up for cutover (or there is no evidence
/// it is), or its `--timeout` passed.
pub const EXIT_NOT_FINAL: i32 = 6;
/// Stopped by SIGINT (Ctrl-C): 128 + 2.
pub const EXIT_SIGINT: i32 = 130;
/// Stopped by SIGTERM: 128 + 15.
pub const EXIT_SIGTERM: i32 = 143;

/// The exit code of an error kind; `signal` is the code of the signal that cancelled the
/// run, if one did.
///
/// ```
/// use pgsnap::ErrorKind;
/// use pgsnap_cli::exit::{code_of_kind, EXIT_SIGTERM};
/// assert_eq!(code_of_kind(ErrorKind::Preflight, None), 3);
/// assert_eq!(code_of_kind(ErrorKind::Timeout, None), 6);
/// assert_eq!(code_of_kind(ErrorKind::Cancelled, Some(EXIT_SIGTERM)), 143);
/// ```
pub fn code_of_kind(kind: ErrorKind, signal: Option<i32>) -> i32 {
    match kind {
        ErrorKind::Usage => EXIT_USAGE,
        ErrorKind::Preflight => EXIT_PREFLIGHT,
        ErrorKind::SnapshotLost => EXIT_SNAPSHOT,
        ErrorKind::Sink => EXIT_SINK,
        ErrorKind::Timeout => EXIT_NOT_FINAL,
        ErrorKind::Cancelled => signal.unwrap_or(EXIT_PARTIAL),
        _ => EXIT_PARTIAL,
    }
}

/// The exit code of a job's outcome.
///
/// ```
/// use pgsnap::Outcome;
/// use pgsnap_cli::exit::{code_of_outcome, EXIT_SIGINT};
/// assert_eq!(code_of_outcome(Outcome::Complete, None), 0);
/// assert_eq!(code_of_outcome(Outcome::Partial, None), 1);
/// assert_eq!(code_of_outcome(Outcome::Cancelled, Some(EXIT_SIGINT)), 130);
/// ```
pub fn code_of_outcome(outcome: Outcome, signal: Option<i32>) -> i32 {
    match outcome {
        Outcome::Complete => EXIT_OK,
        Outcome::Partial => EXIT_PARTIAL,
        Outcome::Failed(kind) => code_of_kind(kind, signal),
        Outcome::Cancelled => signal.unwrap_or(EXIT_PARTIAL),
        _ => EXIT_PARTIAL,
    }
}

/// The exit code of `pgsnap status`: 0 caught up (with a cutover LSN: caught up for
/// cutover), 1 paused or failed (waiting cannot fix those), [`EXIT_NOT_FINAL`] lagging (not
/// caught up yet, after one check or when `--until-caught-up`'s `--timeout` passed).
///
/// ```
/// use pgsnap::StatusVerdict;
/// use pgsnap_cli::exit::{code_of_status, EXIT_NOT_FINAL};
/// assert_eq!(code_of_status(StatusVerdict::CaughtUp), 0);
/// assert_eq!(code_of_status(StatusVerdict::Paused), 1);
/// assert_eq!(code_of_status(StatusVerdict::Failed), 1);
/// assert_eq!(code_of_status(StatusVerdict::Lagging), EXIT_NOT_FINAL);
/// ```
#[cfg(feature = "kafka")]
pub fn code_of_status(verdict: pgsnap::StatusVerdict) -> i32 {
    match verdict {
        pgsnap::StatusVerdict::CaughtUp => EXIT_OK,
        pgsnap::StatusVerdict::Lagging => EXIT_NOT_FINAL,
        _ => EXIT_PARTIAL,
    }
}

/// The exit code of a verification's verdict: 0 equal, 1 different, 6 not final.
///
/// ```
/// use pgsnap::VerifyVerdict;
/// use pgsnap_cli::exit::code_of_verdict;
/// assert_eq!(code_of_verdict(VerifyVerdict::Equal), 0);
/// assert_eq!(code_of_verdict(VerifyVerdict::Different), 1);
/// assert_eq!(code_of_verdict(VerifyVerdict::NotFinal), 6);
/// ```
#[cfg(feature = "starrocks")]
pub fn code_of_verdict(verdict: pgsnap::VerifyVerdict) -> i32 {
    match verdict {
        pgsnap::VerifyVerdict::Equal => EXIT_OK,
        pgsnap::VerifyVerdict::Different => EXIT_PARTIAL,
        _ => EXIT_NOT_FINAL,
    }
}
