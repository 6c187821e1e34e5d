//! One retry policy for the whole run: backoff with full jitter, a maximum of attempts and
//! of elapsed time, and one [`RetryBudget`] per chunk shared by the coordinator and the sink.
//!
//! The coordinator re-reads a chunk from the source for each of its attempts. A sink may
//! retry a request on its own only when it can replay it without re-reading the source (a
//! load refused before its body was sent, a commit, a status poll); such a retry takes an
//! attempt from the same budget, so a chunk never gets more than
//! [`RetryPolicy::max_attempts`] in all, however the attempts are split.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Error;

/// How failed operations are retried.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use pgsnap_core::RetryPolicy;
/// let p = RetryPolicy::default()
///     .with_max_attempts(5)
///     .with_initial_backoff(Duration::from_millis(100))
///     .with_max_elapsed(Some(Duration::from_secs(600)));
/// assert_eq!(p.max_attempts(), 5);
/// // Full jitter: the wait before the second retry is anywhere in [0, 200 ms].
/// assert!(p.backoff(2) <= Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 3 attempts, backoff from 500 ms doubling up to 30 s, no time limit.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The cap of the first wait; it doubles for each further retry.
    pub fn with_initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// The largest cap of a wait.
    pub fn with_max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// No retry starts once this much time has passed since the first attempt.
    pub fn with_max_elapsed(mut self, d: Option<Duration>) -> Self {
        self.max_elapsed = d;
        self
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The first backoff cap.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The most the wait before retry `retry` (1 for the first retry) can be:
    /// `min(max_backoff, initial_backoff × 2^(retry−1))`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(31));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The wait before retry `retry`: uniform in `[0, backoff_cap(retry)]` (full jitter, so
    /// parallel chunks that failed together do not retry together).
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// A fresh budget for one chunk (or one operation).
    pub fn budget(&self) -> RetryBudget {
        RetryBudget {
            policy: self.clone(),
            state: Arc::new(Mutex::new(State { started: Instant::now(), attempts: 0 })),
        }
    }
}

#[derive(Debug)]
struct State {
    started: Instant,
    attempts: u32,
}

/// The attempts left for one chunk, shared (cheaply cloned) by everyone who retries it.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use pgsnap_core::{Error, ErrorKind, RetryPolicy};
/// let budget = RetryPolicy::default().with_max_attempts(2)
///     .with_initial_backoff(Duration::ZERO).budget();
/// let failure = Error::new(ErrorKind::Sink, "reset").set_temporary();
/// assert_eq!(budget.begin(), 1);
/// assert!(budget.retry_after(&failure).is_some()); // a second attempt is allowed
/// assert_eq!(budget.begin(), 2);
/// assert!(budget.retry_after(&failure).is_none()); // the budget is spent
/// assert_eq!(budget.give_up(failure).attempts(), Some(2));
/// ```
#[derive(Debug, Clone)]
pub struct RetryBudget {
    policy: RetryPolicy,
    state: Arc<Mutex<State>>,
}

impl RetryBudget {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that an attempt starts; returns its number (1 for the first).
    pub fn begin(&self) -> u32 {
        let mut s = self.state();
        s.attempts += 1;
        s.attempts
    }

    /// Attempts begun so far.
    pub fn attempts(&self) -> u32 {
        self.state().attempts
    }

    /// After a failed attempt: the wait before the next one, or `None` when the failure is
    /// not `retryable` or the budget (attempts, elapsed time) is spent.
    pub fn next_delay(&self, retryable: bool) -> Option<Duration> {
        let s = self.state();
        let spent = s.attempts >= self.policy.max_attempts
            || self.policy.max_elapsed.is_some_and(|max| s.started.elapsed() >= max);
        (retryable && !spent).then(|| self.policy.backoff(s.attempts))
    }

    /// [`next_delay`](Self::next_delay) for a pgsnap error: retried when temporary.
    pub fn retry_after(&self, e: &Error) -> Option<Duration> {
        self.next_delay(e.is_temporary())
    }

    /// The error to report when no retry follows: a temporary one becomes persistent,
    /// naming the attempts made.
    pub fn give_up(&self, e: Error) -> Error {
        if e.is_temporary() { e.set_persistent(self.attempts()) } else { e }
    }

    /// The policy this budget follows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let p = RetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(350));
        assert_eq!(p.backoff_cap(1), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(2), Duration::from_millis(200));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(350));
        assert_eq!(p.backoff_cap(100), Duration::from_millis(350));
        let waits: Vec<_> = (0..200).map(|_| p.backoff(2)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(200)));
        assert!(waits.iter().any(|w| *w < Duration::from_millis(100)), "jittered");
    }

    #[test]
    fn one_budget_is_shared_by_its_clones() {
        let budget = RetryPolicy::default().with_max_attempts(3).budget();
        let sink_side = budget.clone();
        let temporary = Error::new(ErrorKind::Sink, "x").set_temporary();
        budget.begin();
        assert!(sink_side.retry_after(&temporary).is_some());
        sink_side.begin();
        sink_side.begin();
        assert_eq!(budget.attempts(), 3);
        assert!(budget.retry_after(&temporary).is_none());
        let permanent = Error::new(ErrorKind::Sink, "x");
        assert!(RetryPolicy::default().budget().retry_after(&permanent).is_none());
    }

    #[test]
    fn elapsed_time_ends_the_retries() {
        let budget = RetryPolicy::default()
            .with_max_attempts(100)
            .with_max_elapsed(Some(Duration::ZERO))
            .budget();
        budget.begin();
        assert!(budget.next_delay(true).is_none());
    }
}
