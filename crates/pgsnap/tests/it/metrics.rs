//! The jobs' Prometheus metrics scraped by a real Prometheus (Debian's package, started on a
//! free port): a throttled migration into the StarRocks test double, then status checks of a
//! handoff's Routine Load (tansu + the double), all exposed by one `Metrics` handle; then
//! every panel of `dashboards/pgsnap.json` is run against that Prometheus.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use pgsnap::metrics::Metrics;
use pgsnap::starrocks::StarRocksSinkBuilder;
use pgsnap::{MigrateJob, Outcome, RunControl, StatusVerdict};
use pgsnap_test_support::prometheus::{JOB, Prometheus};
use pgsnap_test_support::starrocks::{StarRocksDouble, StarRocksOptions};
use serde_json::{Value, json};

use crate::status::{Fixture, insert};
use crate::support::*;

const ROWS: u64 = 60_000;
const TABLE: &str = "public.big";

/// One value of `promql` (its only series), if it has one.
fn value(prom: &Prometheus, promql: &str) -> Option<f64> {
    let v = prom.values(promql);
    assert!(v.len() <= 1, "{promql}: {v:?}");
    v.first().copied()
}

/// Waits until `promql`'s value is `want`.
fn wait_value(prom: &Prometheus, promql: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = value(prom, promql);
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{promql}: {got:?}, expected {want}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every `targets[].expr` of the dashboard's panels (rows included), with its panel title.
fn dashboard_queries(path: &Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    // A data source variable, no data source uid hard-coded anywhere else.
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no datasource variable"
    );
    let text = serde_json::to_string(&d).unwrap();
    for uid in text.split("\"uid\":").skip(1) {
        let uid = uid.trim_start();
        assert!(uid.starts_with("\"${datasource}\"") || uid.starts_with("\"pgsnap\""), "{uid:.40}");
    }
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap().to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// The dashboard's template variables as Grafana would fill them for this Prometheus.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$job", JOB).replace("$table", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_running_migration_and_a_status_watch_and_every_panel_has_data() {
    let metrics = Metrics::new();
    let server = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let prom = Prometheus::start(&[server.addr()]);
    prom.wait_for("up == 1", Duration::from_secs(15));

    // A migration slow enough to be scraped several times: ~8.5 MB of COPY text at 1.5 MB/s.
    let sr = StarRocksDouble::start(StarRocksOptions::default()).await;
    sr.create_database("analytics");
    let db = db_with_rows("metrics", ROWS);
    let state = tempfile::tempdir().unwrap();
    let starrocks = StarRocksSinkBuilder::new(sr.fe_url(), "analytics")
        .with_user(sr.options().user.clone())
        .with_password(sr.options().password.clone())
        .with_fe_sql(sr.mysql_addr().to_string())
        .with_create_tables(true);
    let job = MigrateJob::new(options(&db).with_throttle(Some(1_500_000)), starrocks)
        .with_state_dir(state.path().join("state"));
    let control = RunControl::new().with_metrics(metrics.clone());
    let started = Instant::now();
    let run = tokio::spawn(async move { job.run(&control).await });

    let rows_q = format!("pgsnap_copied_rows_total{{job=\"{JOB}\",table=\"{TABLE}\"}}");
    let mut seen = Vec::new();
    while !run.is_finished() {
        let p = prom.query(&rows_q);
        if let Some(v) = p.first().and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok()) {
            seen.push(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = run.await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.run.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    assert!(elapsed > Duration::from_secs(4), "the throttled run took only {elapsed:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "rows went down: {seen:?}");
    let mid_run: Vec<f64> = seen.iter().copied().filter(|v| *v > 0.0 && *v < ROWS as f64).collect();
    // Several scrapes mid-run, with rows going up between them.
    assert!(
        mid_run.len() >= 3 && mid_run.windows(2).any(|w| w[0] < w[1]),
        "rows were not seen increasing mid-run: {seen:?}"
    );

    // The final numbers are the report's.
    let json = serde_json::to_value(&report).unwrap();
    let t = &json["tables"][0];
    wait_value(&prom, &rows_q, ROWS as f64);
    assert_eq!(t["rows"], ROWS);
    let q = |m: &str| format!("{m}{{job=\"{JOB}\",table=\"{TABLE}\"}}");
    wait_value(&prom, &q("pgsnap_copied_bytes_total"), t["bytes"].as_f64().unwrap());
    wait_value(&prom, &q("pgsnap_chunks_done"), t["chunks_done"].as_f64().unwrap());
    wait_value(&prom, &q("pgsnap_chunks"), t["chunks"].as_f64().unwrap());
    assert!(t["chunks"].as_u64().unwrap() > 10, "{t}");
    wait_value(&prom, &q("pgsnap_chunk_retries_total"), t["retries"].as_f64().unwrap());
    wait_value(&prom, &q("pgsnap_chunks_failed_total"), 0.0);
    wait_value(&prom, &q("pgsnap_streamed_bytes"), t["bytes"].as_f64().unwrap());
    let loaded = format!(
        "pgsnap_starrocks_loaded_rows_total{{job=\"{JOB}\",table=\"{TABLE}\",target=\"big\"}}"
    );
    wait_value(&prom, &loaded, t["rows_loaded"].as_f64().unwrap());
    wait_value(&prom, &format!("pgsnap_run_state{{job=\"{JOB}\",state=\"complete\"}}"), 1.0);
    wait_value(&prom, &format!("pgsnap_eta_seconds{{job=\"{JOB}\"}}"), 0.0);
    let est = value(&prom, &q("pgsnap_estimated_bytes")).unwrap();
    assert!(est > 0.0);
    wait_value(&prom, &q("pgsnap_estimated_done_bytes"), est);
    // Read during the run: the snapshot's xmin age and its temporary slot's lag.
    assert!(
        value(&prom, &format!("pgsnap_snapshot_xmin_age_transactions{{job=\"{JOB}\"}}")).unwrap()
            >= 0.0
    );
    let slot = report.run.manifest.snapshot.slot.clone().expect("slot mode");
    assert!(value(&prom, &format!("pgsnap_slot_lag_bytes{{slot=\"{slot}\"}}")).unwrap() >= 0.0);
    // A throughput and an ETA were reported while it ran.
    let tp = prom
        .values(&format!("max_over_time(pgsnap_throughput_bytes_per_second{{job=\"{JOB}\"}}[5m])"));
    assert!(tp.first().is_some_and(|v| *v > 100_000.0), "{tp:?}");
    let eta = prom.values(&format!("max_over_time(pgsnap_eta_seconds{{job=\"{JOB}\"}}[5m])"));
    assert!(eta.first().is_some_and(|v| *v > 0.0), "{eta:?}");

    // A status watch of a handoff's Routine Load, with the same metrics.
    let fx = Fixture::new("mxst", 2, Duration::from_secs(1)).await;
    fx.produce(0, &[insert(json!(1), "a"), insert(json!(2), "b")]).await;
    fx.produce(1, &[insert(json!(3), "c")]).await;
    fx.create_routine_load(BTreeMap::from([(0, 0), (1, 0)])).await;
    let status = fx.job().with_metrics(metrics.clone());
    let (last, timed_out) = status
        .until_caught_up(Duration::from_secs(60), Duration::from_millis(500), |_| {})
        .await
        .unwrap();
    assert!(!timed_out);
    assert_eq!(last.verdict, StatusVerdict::CaughtUp, "{last:#?}");
    // Scraped at least twice after it caught up (rate() needs two samples).
    for _ in 0..3 {
        status.run().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let last = status.run().await.unwrap();
    let lj = serde_json::to_value(&last).unwrap();
    let part = |p: i64| {
        format!("job=\"{JOB}\",table=\"{TABLE}\",topic=\"{}\",partition=\"{p}\"", fx.topic)
    };
    for p in 0..2 {
        let pj = &lj["tables"][0]["routine_load"]["partitions"][p as usize];
        wait_value(
            &prom,
            &format!("pgsnap_kafka_high_watermark_offset{{{}}}", part(p)),
            pj["high_watermark"].as_f64().unwrap(),
        );
        wait_value(
            &prom,
            &format!("pgsnap_routine_load_consumed_offset{{{}}}", part(p)),
            pj["consumed"].as_f64().unwrap(),
        );
        wait_value(&prom, &format!("pgsnap_routine_load_lag_offsets{{{}}}", part(p)), 0.0);
    }
    wait_value(
        &prom,
        &format!(
            "pgsnap_routine_load_state{{job=\"{JOB}\",routine_load=\"pgsnap_big\",state=\"RUNNING\"}}"
        ),
        1.0,
    );
    wait_value(
        &prom,
        &format!("pgsnap_status_verdict{{job=\"{JOB}\",verdict=\"caught_up\"}}"),
        1.0,
    );
    wait_value(
        &prom,
        &format!(
            "pgsnap_slot_lag_bytes{{job=\"{JOB}\",slot=\"{}\"}}",
            lj["slot"]["name"].as_str().unwrap()
        ),
        lj["slot"]["lag_bytes"].as_f64().unwrap(),
    );

    // Every panel of the dashboard has data in this Prometheus.
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/pgsnap.json");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let promql = substitute(expr);
        assert!(!promql.contains('$'), "{title}: an unknown variable in {expr}");
        if prom.query(&promql).is_empty() {
            empty.push(format!("{title}: {promql}"));
        }
    }
    assert!(empty.is_empty(), "dashboard queries without series:\n{}", empty.join("\n"));
    drop(server);
}
