//! What a finished job reports: its outcome and the JSON report every front prints.

use std::time::Duration;

use pgsnap_core::{Manifest, ManifestTable, RunStatus, SnapshotInfo, SnapshotMode};
use serde_json::{Value, json};

use crate::error::ErrorKind;

/// The version of the JSON reports: it changes only on a breaking change; fields are only
/// ever added.
pub const REPORT_VERSION: u32 = 1;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every table is complete (and, for a loading job, verified).
    Complete,
    /// The run finished, but some tables failed or are unverified (listed in the report).
    Partial,
    /// An error stopped the run (its kind decides a command's exit code).
    Failed(ErrorKind),
    /// The run was cancelled; a resume completes it where the snapshot outlives the run.
    Cancelled,
}

/// What every snapshot job reports about its run: the final manifest, how long it took,
/// what stopped it, and warnings.
#[derive(Debug)]
#[non_exhaustive]
pub struct RunSummary {
    /// The final manifest (tables, chunks, the snapshot).
    pub manifest: Manifest,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// The error that stopped the run, if any.
    pub fatal: Option<pgsnap_core::Error>,
    /// Everything worth a look (the source's warnings, unverified tables, ...).
    pub warnings: Vec<String>,
    /// Whether the job's own checks passed (a loading job: every completed table's rows read
    /// equal rows loaded plus filtered).
    pub verified: bool,
    /// Where the run's Prometheus metrics were served (the actual port when port 0 was
    /// asked for); the JSON report's `metrics_addr`, present only then.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl RunSummary {
    /// A summary of `manifest`'s state; adds a `run stopped: …` warning for `fatal`.
    pub(crate) fn new(
        manifest: Manifest,
        elapsed: Duration,
        fatal: Option<pgsnap_core::Error>,
        mut warnings: Vec<String>,
        verified: bool,
    ) -> Self {
        if let Some(e) = &fatal {
            warnings.push(format!("run stopped: {}", pgsnap_core::error_chain(e)));
        }
        Self { manifest, elapsed, fatal, warnings, verified, metrics_addr: None }
    }

    /// Records where the run's metrics were served (see [`metrics_addr`](Self::metrics_addr)).
    pub(crate) fn with_metrics_addr(mut self, addr: Option<std::net::SocketAddr>) -> Self {
        self.metrics_addr = addr;
        self
    }

    /// How the run ended.
    pub fn outcome(&self) -> Outcome {
        match &self.fatal {
            Some(e) => match ErrorKind::of_core(e) {
                ErrorKind::Cancelled => Outcome::Cancelled,
                kind => Outcome::Failed(kind),
            },
            None if self.manifest.status == RunStatus::Ok && self.verified => Outcome::Complete,
            None => Outcome::Partial,
        }
    }

    /// The report's `status`: `ok`, `partial` or `failed`.
    pub fn status(&self) -> &'static str {
        let ok = self.manifest.status == RunStatus::Ok && self.verified;
        match (self.manifest.status, &self.fatal) {
            (_, Some(_)) | (RunStatus::Failed, _) => "failed",
            _ if ok => "ok",
            _ => "partial",
        }
    }

    /// What an incomplete run can do next.
    pub fn resume_hint(&self) -> ResumeHint {
        ResumeHint::for_snapshot(&self.manifest.snapshot)
    }

    /// The JSON report of a snapshot job: `report_version`, `status`, `snapshot`,
    /// `elapsed_s`, `rows`, `bytes`, `tables` (each with `schema`, `name`, `status`, `rows`,
    /// `bytes`, `chunks`, `chunks_done`, `retries`, `retried_chunks` (`chunk`, `attempts`),
    /// `error`), `error`, `warnings`. The jobs' own reports
    /// add their fields to it.
    pub fn to_json(&self) -> Value {
        self.json(json!({}), |_| json!({}))
    }

    /// The JSON report: `report_version`, `status`, the job's `extra` fields, `snapshot`,
    /// `elapsed_s`, `rows`, `bytes`, `tables` (each with `schema`, `name`, `status`, `rows`,
    /// `bytes`, `chunks`, `chunks_done`, `retries`, `retried_chunks`, `error` and the job's
    /// `table_extra` fields),
    /// `error`, `warnings`, and `metrics_addr` when the metrics were served.
    pub(crate) fn json(
        &self,
        extra: Value,
        table_extra: impl Fn(&ManifestTable) -> Value,
    ) -> Value {
        let tables: Vec<_> = self
            .manifest
            .tables
            .iter()
            .map(|t| {
                let mut v = json!({
                    "schema": t.schema.name.schema,
                    "name": t.schema.name.name,
                    "status": t.status.as_str(),
                    "rows": t.rows(),
                    "bytes": t.bytes(),
                    "chunks": t.chunks.len(),
                    "chunks_done": t.chunks_done(),
                    "retries": t.chunks.iter().map(|c| c.attempts.saturating_sub(1)).sum::<u32>(),
                    "retried_chunks": t.chunks.iter().filter(|c| c.attempts > 1)
                        .map(|c| json!({"chunk": c.id.0, "attempts": c.attempts}))
                        .collect::<Vec<_>>(),
                    "error": t.error,
                });
                merge(&mut v, table_extra(t));
                v
            })
            .collect();
        let mut out = json!({ "report_version": REPORT_VERSION, "status": self.status() });
        merge(&mut out, extra);
        merge(
            &mut out,
            json!({
                "snapshot": self.manifest.snapshot,
                "elapsed_s": self.elapsed.as_secs_f64(),
                "rows": self.manifest.rows(),
                "bytes": self.manifest.bytes(),
                "tables": tables,
                "error": self.fatal.as_ref().map(|e| pgsnap_core::error_chain(e)),
                "warnings": self.warnings,
            }),
        );
        if let Some(addr) = self.metrics_addr {
            merge(&mut out, json!({ "metrics_addr": addr.to_string() }));
        }
        out
    }
}

impl serde::Serialize for RunSummary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// What an incomplete run can do next: only a snapshot that outlives the process (an
/// external one whose holder is still open, or a permanent slot with a snapshot change)
/// lets a resume finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeHint {
    /// Resume while the session holding the external snapshot stays open.
    WhileSnapshotHeld,
    /// Resume with a snapshot change (the permanent slot lets CDC converge).
    WithSnapshotChange,
    /// The snapshot ended with the run: start a new run.
    NewRun,
}

impl ResumeHint {
    /// The hint for a run's snapshot.
    pub fn for_snapshot(s: &SnapshotInfo) -> Self {
        match (s.mode, s.slot_temporary) {
            (SnapshotMode::External, _) => ResumeHint::WhileSnapshotHeld,
            (SnapshotMode::Slot, Some(false)) => ResumeHint::WithSnapshotChange,
            _ => ResumeHint::NewRun,
        }
    }
}

/// Adds `from`'s fields to `into` (both JSON objects).
pub(crate) fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
