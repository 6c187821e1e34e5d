//! SIGINT and SIGTERM: a clean stop of the running job, and the exit code that says which
//! signal stopped it.
//!
//! The first signal cancels the job's [`RunControl`]: chunks in flight are abandoned (nothing
//! half-written is recorded), the manifest keeps what is done and the snapshot is closed. If
//! the job has not returned [`GRACE`] later, or at a second signal, the process exits at
//! once with the signal's code (orchestrators send SIGKILL after their own grace period; a
//! resume redoes whatever was in flight either way).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use pgsnap::{CancellationToken, RunControl};

use crate::exit::{EXIT_SIGINT, EXIT_SIGTERM};

/// How long a cancelled job may take to stop before the process exits anyway.
pub const GRACE: Duration = Duration::from_secs(8);

/// The process's SIGINT and SIGTERM handling (install it once, in `main`).
#[derive(Debug, Clone)]
pub struct Interrupts {
    token: CancellationToken,
    code: Arc<AtomicI32>,
}

impl Interrupts {
    /// Installs the handlers on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn install() -> Self {
        let me = Self { token: CancellationToken::new(), code: Arc::new(AtomicI32::new(0)) };
        let watcher = me.clone();
        tokio::spawn(async move {
            let first = next_signal().await;
            watcher.code.store(first, Ordering::SeqCst);
            tracing::warn!(
                "interrupted ({}): stopping; rerun with --resume to continue",
                signal_name(first)
            );
            watcher.token.cancel();
            tokio::select! {
                _ = tokio::time::sleep(GRACE) => {
                    eprintln!("error: the run did not stop within {GRACE:?}; exiting");
                }
                code = next_signal() => {
                    eprintln!("error: interrupted again ({}); exiting", signal_name(code));
                }
            }
            std::process::exit(first);
        });
        me
    }

    /// The run control of a job stopped by these signals.
    pub fn control(&self) -> RunControl {
        RunControl::new().with_cancellation_token(self.token.clone())
    }

    /// 130 after SIGINT, 143 after SIGTERM, `None` before any signal.
    pub fn exit_code(&self) -> Option<i32> {
        match self.code.load(Ordering::SeqCst) {
            0 => None,
            c => Some(c),
        }
    }
}

fn signal_name(code: i32) -> &'static str {
    if code == EXIT_SIGTERM { "SIGTERM" } else { "SIGINT" }
}

/// Waits for SIGINT or SIGTERM; returns its exit code.
#[cfg(unix)]
async fn next_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => EXIT_SIGINT,
            _ = term.recv() => EXIT_SIGTERM,
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            EXIT_SIGINT
        }
    }
}

/// Waits for Ctrl-C.
#[cfg(not(unix))]
async fn next_signal() -> i32 {
    let _ = tokio::signal::ctrl_c().await;
    EXIT_SIGINT
}
