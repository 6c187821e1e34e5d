//! What `pgsnap status` prints: text on stderr (with `--watch`, a table redrawn in place on a
//! terminal), or JSON on stdout (with `--watch`, one object per line: NDJSON).

use std::io::{IsTerminal, Write};

use pgsnap::{StatusReport, StatusTable, StatusVerdict};

use crate::exit::code_of_status;

/// Prints the reports of one `status` command.
///
/// ```
/// use pgsnap_cli::output::StatusPrinter;
/// let printer = StatusPrinter::new(true, false);
/// assert!(format!("{printer:?}").contains("json: true"));
/// ```
#[derive(Debug)]
pub struct StatusPrinter {
    json: bool,
    watch: bool,
    terminal: bool,
    /// Lines of the last table drawn on the terminal (erased before the next).
    drawn: usize,
}

impl StatusPrinter {
    /// A printer for `--json` and `--watch`.
    pub fn new(json: bool, watch: bool) -> Self {
        Self { json, watch, terminal: std::io::stderr().is_terminal(), drawn: 0 }
    }

    /// One report of a series (`--watch` or `--until-caught-up`): `--watch --json` prints it
    /// as one line on stdout; `--watch` redraws the table on a terminal or prints it as plain
    /// lines; otherwise one progress line on stderr.
    pub fn each(&mut self, report: &StatusReport) {
        match (self.watch, self.json) {
            (true, true) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", serde_json::to_string(report).unwrap_or_default());
                let _ = out.flush();
            }
            (true, false) => {
                let lines = status_lines(report);
                let mut err = std::io::stderr().lock();
                if self.terminal && self.drawn > 0 {
                    // Back to the first line of the last table, and erase to the end.
                    let _ = write!(err, "\x1b[{}F\x1b[J", self.drawn);
                }
                for l in &lines {
                    let _ = writeln!(err, "{l}");
                }
                if !self.terminal {
                    let _ = writeln!(err);
                }
                self.drawn = lines.len();
            }
            (false, _) => eprintln!("{}", progress_line(report)),
        }
    }

    /// The last report; returns the exit code. Without `--watch` it prints the report (one
    /// JSON object on stdout with `--json`); with `--watch` it was printed already and only
    /// the outcome of a timeout is added.
    pub fn finish(&mut self, report: &StatusReport, timed_out: bool) -> i32 {
        if !self.watch {
            if self.json {
                println!("{}", serde_json::to_string(report).unwrap_or_default());
            } else {
                for l in status_lines(report) {
                    eprintln!("{l}");
                }
            }
        }
        if timed_out {
            eprintln!("error: not caught up when --timeout passed (verdict {})", report.verdict);
        } else if report.verdict.is_final() {
            eprintln!("error: {} (waiting cannot fix it; see the reasons above)", report.verdict);
        }
        code_of_status(report.verdict)
    }
}

/// `lagging: public.orders 12, public.items 0 (caught up)`: one line per check.
fn progress_line(r: &StatusReport) -> String {
    let tables: Vec<String> = r
        .tables
        .iter()
        .map(|t| match (t.verdict, lag(t)) {
            (StatusVerdict::Lagging, Some(n)) => format!("{} {n} behind", t.source),
            (v, _) => format!("{} {v}", t.source),
        })
        .collect();
    let cutover = match &r.cutover {
        Some(c) if !c.reached => format!(
            "; connector at {} of cutover {}",
            c.position.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            c.lsn
        ),
        _ => String::new(),
    };
    format!("[{}] {}: {}{cutover}", r.checked_at, r.verdict, tables.join(", "))
}

/// Offsets to consume over the table's partitions that are not caught up.
fn lag(t: &StatusTable) -> Option<i64> {
    t.routine_load.partitions.iter().filter(|p| !p.caught_up).map(|p| p.lag).sum()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The text report, one string per line.
///
/// ```no_run
/// # fn f(report: &pgsnap::StatusReport) {
/// for line in pgsnap_cli::output::status_lines(report) {
///     eprintln!("{line}");
/// }
/// # }
/// ```
pub fn status_lines(r: &StatusReport) -> Vec<String> {
    let mut out = vec![format!(
        "status: {} (checked {}; StarRocks database {}; Kafka {})",
        r.verdict, r.checked_at, r.database, r.brokers
    )];
    out.push(format!(
        "  {:<28} {:<24} {:<14} {:<9} {:>12} {:>9}",
        "TABLE", "ROUTINE LOAD", "STATE", "VERDICT", "LOADED", "FILTERED"
    ));
    let mut entries = Vec::with_capacity(r.tables.len());
    for t in &r.tables {
        let rl = &t.routine_load;
        let mut out = vec![format!(
            "  {:<28} {:<24} {:<14} {:<9} {:>12} {:>9}",
            format!("{} -> {}", t.source, t.target),
            rl.name,
            rl.state.as_deref().unwrap_or("(missing)"),
            t.verdict.as_str(),
            rl.rows_loaded,
            rl.rows_filtered
        )];
        for p in &rl.partitions {
            out.push(format!(
                "      partition {:<3} consumed {:>10}  high watermark {:>10}  lag {:>8}  {}",
                p.partition,
                opt(p.consumed),
                opt(p.high_watermark),
                opt(p.lag),
                match (p.caught_up, p.gap) {
                    (true, true) => "caught up (the rest are transaction markers or gaps)",
                    (true, false) => "caught up",
                    (false, _) => "behind",
                }
            ));
        }
        if let Some(reason) = &rl.reason {
            out.push(format!("      reason: {reason}"));
        }
        if let Some(remedy) = &t.remedy {
            out.push(format!("      remedy: {remedy}"));
        }
        for u in &t.error_urls {
            out.push(format!("      error log: {u}"));
        }
        let ok = t.verdict == pgsnap::StatusVerdict::CaughtUp;
        entries.push(pgsnap::TableLine::new(out.join("\n"), ok, rl.rows_loaded));
    }
    // Summarised beyond a screenful; `--json` keeps every table.
    for entry in pgsnap::summarise_tables(entries, pgsnap::TEXT_TABLE_LINES) {
        out.extend(entry.split('\n').map(str::to_owned));
    }
    match &r.slot {
        Some(s) if s.exists => out.push(format!(
            "slot {}: confirmed_flush_lsn {}, wal_status {}, {}",
            s.name,
            opt(s.confirmed_flush_lsn),
            s.wal_status.as_deref().unwrap_or("-"),
            if s.active { "active" } else { "inactive" }
        )),
        Some(s) => out.push(format!("slot {}: does not exist", s.name)),
        None => {}
    }
    if let Some(c) = &r.connector {
        out.push(format!(
            "connector {} ({}): {}, lsn_proc {}, lsn_commit {}{}",
            c.name,
            c.url,
            c.state.as_deref().unwrap_or(if c.exists { "?" } else { "does not exist" }),
            opt(c.lsn_proc),
            opt(c.lsn_commit),
            c.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
    }
    if let Some(c) = &r.cutover {
        out.push(format!(
            "cutover LSN {} ({}): connector position {} ({}) {}",
            c.lsn,
            if c.taken { "taken now, writes stopped" } else { "given" },
            opt(c.position),
            c.position_from.unwrap_or("unknown"),
            if c.reached { "has reached it" } else { "has not reached it" }
        ));
        out.push(format!(
            "caught up for cutover: {}",
            if r.caught_up_for_cutover { "yes" } else { "no" }
        ));
    }
    for reason in &r.reasons {
        out.push(format!("why: {reason}"));
    }
    for w in &r.warnings {
        out.push(format!("warning: {w}"));
    }
    out
}

/// Runs `pgsnap status` as `args` say, with `job` (from [`StatusCmd::job`]): one check, or
/// `--until-caught-up` / `--watch` polling, printing as it goes. `cancel` stops the polling
/// (Ctrl-C, SIGTERM); `signal` then gives the exit code of the signal. Returns the exit
/// code.
///
/// [`StatusCmd::job`]: crate::args::StatusCmd::job
pub async fn run_status(
    job: &pgsnap::StatusJob,
    args: &crate::args::StatusCmd,
    cancel: pgsnap::CancellationToken,
    signal: impl Fn() -> Option<i32>,
) -> i32 {
    let mut printer = StatusPrinter::new(args.json, args.watch.is_some());
    let fail = |e: &pgsnap::JobError| super::fail(e, super::Front::Status, None);
    let stopped = || signal().unwrap_or(crate::exit::EXIT_SIGINT);
    // The metrics server first: a bad --metrics-addr fails before any check.
    #[cfg(feature = "metrics")]
    if let Err(e) = job.serve_metrics().await {
        return fail(&e);
    }
    if args.until_caught_up {
        let timeout = std::time::Duration::from_secs(args.timeout);
        let polled = tokio::select! {
            r = job.until_caught_up(timeout, args.interval(), |r| printer.each(r)) => Some(r),
            _ = cancel.cancelled() => None,
        };
        return match polled {
            Some(Ok((report, timed_out))) => printer.finish(&report, timed_out),
            Some(Err(e)) => fail(&e),
            None => stopped(),
        };
    }
    if args.watch.is_none() {
        return match job.run().await {
            Ok(report) => printer.finish(&report, false),
            Err(e) => fail(&e),
        };
    }
    // --watch alone: until stopped, against one cutover point (--writes-stopped reads it
    // once).
    let job = match job.clone().take_cutover().await {
        Ok(job) => job,
        Err(e) => return fail(&e),
    };
    loop {
        let checked = tokio::select! {
            r = job.run() => Some(r),
            _ = cancel.cancelled() => None,
        };
        match checked {
            Some(Ok(report)) => printer.each(&report),
            Some(Err(e)) => return fail(&e),
            None => return stopped(),
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval()) => {}
            _ = cancel.cancelled() => return stopped(),
        }
    }
}
