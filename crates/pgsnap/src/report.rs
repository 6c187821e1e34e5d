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

/// How many table lines a text report shows before it summarises the rest (about a
/// screenful): see [`summarise_tables`].
pub const TEXT_TABLE_LINES: usize = 20;

/// One table's entry in a text report, for [`summarise_tables`]: its text (one or more
/// lines, as the report prints them) and what the summary needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableLine {
    /// The entry as printed (may span lines: a table and its chunks or partitions).
    pub text: String,
    /// Whether the table is ok (complete, equal, caught up): tables that are not are
    /// listed first, always.
    pub ok: bool,
    /// Its rows.
    pub rows: u64,
    /// Its bytes, when the report knows them (ranks the largest tables; otherwise rows do).
    pub bytes: Option<u64>,
}

impl TableLine {
    /// An entry without bytes.
    ///
    /// ```
    /// let l = pgsnap::TableLine::new("  public.t  ok", true, 10).with_bytes(2_000);
    /// assert_eq!((l.rows, l.bytes), (10, Some(2_000)));
    /// ```
    pub fn new(text: impl Into<String>, ok: bool, rows: u64) -> Self {
        Self { text: text.into(), ok, rows, bytes: None }
    }

    /// The entry with its bytes.
    pub fn with_bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }
}

/// The table list of a text report, readable with thousands of tables.
///
/// Up to `max` entries: every entry, in order, exactly as given. More: the entries that are
/// not ok first (in order; at most `max` of them), then the largest ok ones (by bytes, else
/// rows; largest first) up to `max` entries in all, then one line counting the rest, e.g.
/// `  … and 5,981 more tables, all ok (2.3 MB, 119,620 rows); --json lists every table`.
/// The JSON reports always keep every table.
///
/// ```
/// use pgsnap::{TableLine, summarise_tables};
/// let lines: Vec<TableLine> = (0..1000)
///     .map(|i| TableLine::new(format!("  t{i}"), i != 7, i).with_bytes(i * 10))
///     .collect();
/// let text = summarise_tables(lines, 3);
/// assert_eq!(
///     text,
///     [
///         "  t7",
///         "  t999",
///         "  t998",
///         "  … and 997 more tables, all ok (5.0 MB, 497,496 rows); --json lists every table",
///     ]
/// );
/// ```
pub fn summarise_tables(lines: Vec<TableLine>, max: usize) -> Vec<String> {
    if lines.len() <= max {
        return lines.into_iter().map(|l| l.text).collect();
    }
    let mut shown = vec![false; lines.len()];
    let failed: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].ok).collect();
    let mut order: Vec<usize> = failed.iter().copied().take(max).collect();
    let mut largest: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].ok).collect();
    // Largest first; equal sizes keep their order.
    largest.sort_by_key(|&i| std::cmp::Reverse(lines[i].bytes.unwrap_or(lines[i].rows)));
    order.extend(largest.into_iter().take(max.saturating_sub(order.len())));
    for &i in &order {
        shown[i] = true;
    }
    let rest: Vec<&TableLine> =
        lines.iter().zip(&shown).filter(|(_, s)| !**s).map(|(l, _)| l).collect();
    let mut out: Vec<String> = order.iter().map(|&i| lines[i].text.clone()).collect();
    let not_ok = rest.iter().filter(|l| !l.ok).count();
    let ok: Vec<&&TableLine> = rest.iter().filter(|l| l.ok).collect();
    let rows: u64 = ok.iter().map(|l| l.rows).sum();
    let size = if ok.iter().all(|l| l.bytes.is_some()) {
        format!(
            "{}, {} rows",
            human_bytes(ok.iter().filter_map(|l| l.bytes).sum()),
            thousands(rows)
        )
    } else {
        format!("{} rows", thousands(rows))
    };
    let n = thousands(rest.len() as u64);
    let noun = if rest.len() == 1 { "table" } else { "tables" };
    out.push(if not_ok == 0 {
        format!("  … and {n} more {noun}, all ok ({size}); --json lists every table")
    } else {
        format!(
            "  … and {n} more {noun}: {} not ok, {} ok ({size}); --json lists every table",
            thousands(not_ok as u64),
            thousands(ok.len() as u64)
        )
    });
    out
}

/// Human-readable bytes (`1.5 GB`, powers of 10).
///
/// ```
/// assert_eq!(pgsnap::human_bytes(1_500_000_000), "1.5 GB");
/// assert_eq!(pgsnap::human_bytes(999), "999 B");
/// ```
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[i]) }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u64, ok: bool) -> TableLine {
        TableLine::new(format!("  t{i}"), ok, i).with_bytes(i * 100)
    }

    #[test]
    fn few_tables_are_listed_exactly_as_given() {
        let lines: Vec<TableLine> = (0..20).map(|i| line(i, i % 5 != 0)).collect();
        let want: Vec<String> = (0..20).map(|i| format!("  t{i}")).collect();
        assert_eq!(summarise_tables(lines, 20), want);
        assert!(summarise_tables(Vec::new(), 20).is_empty());
        // Multi-line entries are kept whole.
        let l = TableLine::new("  t\n      chunk 1", true, 1);
        assert_eq!(summarise_tables(vec![l], 20), ["  t\n      chunk 1"]);
    }

    #[test]
    fn thousands_of_tables_show_failures_then_the_largest_then_a_count() {
        let lines: Vec<TableLine> = (0..6000).map(|i| line(i, ![17, 4000].contains(&i))).collect();
        let out = summarise_tables(lines, TEXT_TABLE_LINES);
        assert_eq!(out.len(), TEXT_TABLE_LINES + 1);
        assert_eq!(&out[..3], ["  t17", "  t4000", "  t5999"]);
        assert_eq!(out[TEXT_TABLE_LINES - 1], "  t5982");
        // The rest: tables 0..=5981 except 17 and 4000.
        let rows: u64 = (0..=5981u64).filter(|i| ![17, 4000].contains(i)).sum();
        assert_eq!(rows, 17_885_154);
        assert_eq!(
            out[TEXT_TABLE_LINES],
            "  … and 5,980 more tables, all ok (1.8 GB, 17,885,154 rows); --json lists every table"
        );
    }

    #[test]
    fn thousands_of_failures_are_capped_with_a_count() {
        let lines: Vec<TableLine> = (0..3000).map(|i| line(i, i >= 2500)).collect();
        let out = summarise_tables(lines, 20);
        assert_eq!(out.len(), 21);
        assert!(out[..20].iter().enumerate().all(|(i, l)| *l == format!("  t{i}")), "{out:?}");
        assert_eq!(
            out[20],
            "  … and 2,980 more tables: 2,480 not ok, 500 ok (137.5 MB, 1,374,750 rows); --json \
             lists every table"
        );
    }

    #[test]
    fn without_bytes_the_largest_are_ranked_by_rows() {
        let lines: Vec<TableLine> =
            [5, 50, 1, 7].iter().map(|&r| TableLine::new(format!("  r{r}"), true, r)).collect();
        assert_eq!(
            summarise_tables(lines, 2),
            ["  r50", "  r7", "  … and 2 more tables, all ok (6 rows); --json lists every table"]
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(119_620), "119,620");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
