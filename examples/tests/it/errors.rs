//! Exit codes 2 (usage), 3 (preflight or connection), 4 (snapshot) and 5 (sink).

use std::path::Path;

use pgsnap_test_support::unique_db;

use crate::support::*;

fn small_db(prefix: &str) -> String {
    let db = unique_db(prefix);
    create_big_table(&db, "t", 5_000);
    sql(&db, "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u SELECT generate_series(1, 10);");
    db
}

/// An error exit: the code, stdout empty even with --json (the error is on stderr), and
/// stderr mentions `needle`.
#[track_caller]
fn expect_error(r: &Output, code: i32, needle: &str) {
    r.expect_code(code);
    assert_eq!(r.stdout, "", "stdout holds nothing on an error exit\nstderr: {}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr does not mention {needle:?}:\n{}",
        r.stderr
    );
}

fn no_slots(db: &str) {
    assert_eq!(
        sql(db, &format!("SELECT count(*) FROM pg_replication_slots WHERE database = '{db}'")),
        "0",
        "a failed run left a replication slot"
    );
}

#[test]
fn usage_errors_exit_2() {
    let db = small_db("x_usage");
    let src = source(&db);
    let (tmp, out) = out_dir();
    let o = arg(&out);

    for (args, needle) in [
        (vec!["--source", &src, "--out", o, "--json", "--no-such-flag"], "--no-such-flag"),
        (vec!["--source", &src, "--json"], "--out"),
        (vec!["--source", &src, "--out", o, "--json", "--chunk-size", "12XB"], "--chunk-size"),
        (vec!["--source", &src, "--out", o, "--json", "--chunk-size=-5MB"], "--chunk-size"),
        (vec!["--source", &src, "--out", o, "--json", "--chunk-size", "0"], "--chunk-size"),
        (vec!["--source", &src, "--out", o, "--json", "--chunk-size", ""], "--chunk-size"),
        (vec!["--source", &src, "--out", o, "--json", "--jobs", "0"], "--jobs"),
        (vec!["--source", &src, "--out", o, "--json", "--split-by", "rowid"], "--split-by"),
        (vec!["--source", &src, "--out", o, "--json", "--compress", "lz4"], "--compress"),
        (vec!["--source", &src, "--out", o, "--json", "--compress", "zstd:99"], "--compress"),
        (
            vec!["--source", &src, "--out", o, "--json", "--snapshot-mode", "magic"],
            "--snapshot-mode",
        ),
        (vec!["--source", &src, "--out", o, "--json", "--snapshot-mode", "external"], "--snapshot"),
        (vec!["--source", &src, "--out", o, "--json", "--snapshot", "00000003-1"], "--snapshot"),
        (vec!["--source", &src, "--out", o, "--json", "--resume"], "no"),
    ] {
        let r = run(&args);
        expect_error(&r, 2, needle);
        assert!(!out.exists() || files_under(&out).is_empty(), "{args:?} wrote to --out");
    }
    no_slots(&db);

    // A non-empty --out without --resume: refused, and left alone.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let r = run(&["--source", &src, "--out", o, "--json"]);
    expect_error(&r, 2, "not empty");
    assert_eq!(files_under(&out), ["notes.txt"]);
    // --resume on a directory with no manifest.
    let r = run(&["--source", &src, "--out", o, "--json", "--resume"]);
    expect_error(&r, 2, "manifest.json");
    assert_eq!(files_under(&out), ["notes.txt"]);
    // A manifest that is not one.
    let other = tmp.path().join("bad");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("manifest.json"), "{\"version\": 1}").unwrap();
    let r = run(&["--source", &src, "--out", arg(&other), "--json", "--resume"]);
    expect_error(&r, 2, "manifest");
}

#[test]
fn resume_with_other_options_exits_2() {
    let db = small_db("x_resume_opts");
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let o = arg(&out);
    let base =
        ["--source", &src, "--out", o, "--json", "--chunk-size", "100kB", "--include", "public.*"];
    run(&base).expect_code(0);
    let before = std::fs::read(out.join("manifest.json")).unwrap();

    let with = |extra: &[&'static str], drop_flag: Option<&str>| {
        let mut v: Vec<&str> = base.to_vec();
        if let Some(f) = drop_flag {
            let i = v.iter().position(|a| *a == f).unwrap();
            v.drain(i..i + 2);
        }
        v.push("--resume");
        v.extend_from_slice(extra);
        run(&v)
    };
    expect_error(&with(&["--split-by", "pk"], None), 2, "--split-by");
    expect_error(&with(&["--chunk-size", "1MB"], Some("--chunk-size")), 2, "--chunk-size");
    expect_error(&with(&[], Some("--chunk-size")), 2, "--chunk-size");
    expect_error(&with(&["--include", "t"], Some("--include")), 2, "--include");
    expect_error(&with(&[], Some("--include")), 2, "--include");
    expect_error(&with(&["--exclude", "u"], None), 2, "--exclude");
    expect_error(&with(&["--compress", "zstd"], None), 2, "--compress");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before, "manifest untouched");

    // The same options on a complete run: nothing to do, no snapshot needed (the run's
    // temporary slot is long gone), the same report.
    let r = with(&[], None);
    r.expect_code(0);
    let rep = r.json();
    assert_eq!(rep["status"], "ok");
    assert_eq!(rep["rows"].as_u64(), Some(5_010));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before, "manifest untouched");
    assert_eq!(rep["snapshot"], manifest(&out)["snapshot"]);

    // A chunk file gone from a complete run: it would have to be copied again, under a
    // snapshot that ended with the run, so --resume refuses (exit 4) and changes nothing.
    let m = manifest(&out);
    let gone = m["tables"][0]["chunks"][0]["path"].as_str().unwrap().to_owned();
    std::fs::remove_file(out.join(&gone)).unwrap();
    let r = with(&[], None);
    expect_error(&r, 4, "snapshot");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before, "manifest untouched");
}

#[test]
fn preflight_and_connection_errors_exit_3() {
    let db = small_db("x_preflight");
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let o = arg(&out);

    // Nothing listens on a port we just had.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("host=127.0.0.1 port={port} user=postgres dbname={db} connect_timeout=5");
    let r = run(&["--source", &dead, "--out", o, "--json"]);
    expect_error(&r, 3, "connect");
    // A database that does not exist.
    let missing = format!("{} dbname=no_such_db_{port}", source(&db));
    expect_error(&run(&["--source", &missing, "--out", o, "--json"]), 3, "no_such_db");

    let r = run(&["--source", &src, "--out", o, "--json", "--include", "no_such_table"]);
    expect_error(&r, 3, "no_such_table");
    let r = run(&["--source", &src, "--out", o, "--json", "--include", "t", "--include", "nope*"]);
    expect_error(&r, 3, "nope");

    // A permanent slot name that is taken.
    let slot = format!("taken_{}", &db[db.len() - 12..]);
    sql(&db, &format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"));
    let r = run(&["--source", &src, "--out", o, "--json", "--slot", &slot]);
    sql(&db, &format!("SELECT pg_drop_replication_slot('{slot}')"));
    expect_error(&r, 3, "already exists");
    no_slots(&db);
}

#[test]
fn snapshot_errors_exit_4() {
    let db = small_db("x_snapshot");
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let o = arg(&out);
    for name in ["bogus", "00000003-0000001B-1"] {
        let r = run(&[
            "--source",
            &src,
            "--out",
            o,
            "--json",
            "--snapshot-mode",
            "external",
            "--snapshot",
            name,
        ]);
        expect_error(&r, 4, name);
    }
    // A snapshot whose exporting transaction has ended.
    let mut held = HeldSnapshot::export(&db);
    let name = held.name.clone();
    held.release();
    let r = run(&[
        "--source",
        &src,
        "--out",
        o,
        "--json",
        "--snapshot-mode",
        "external",
        "--snapshot",
        &name,
    ]);
    expect_error(&r, 4, "snapshot");
}

/// Runs against an --out the sink cannot use: exit 5, and no snapshot (slot) was taken for
/// nothing.
#[track_caller]
fn expect_sink_error(db: &str, out: &Path) {
    let src = source(db);
    let r = run(&["--source", &src, "--out", arg(out), "--json"]);
    expect_error(&r, 5, arg(out));
    no_slots(db);
}

#[test]
fn unusable_output_exits_5() {
    let db = small_db("x_sink");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // Under a regular file (fails for root too).
    expect_sink_error(&db, &file.join("out"));
    // The regular file itself.
    expect_sink_error(&db, &file);
    // A directory that cannot be created (procfs refuses even root).
    expect_sink_error(&db, Path::new("/proc/pgsnap-no-such-dir/out"));
    // A directory that cannot be written (sysfs: read-only for root as well).
    if Path::new("/sys/kernel").is_dir() {
        expect_sink_error(&db, Path::new("/sys/kernel/pgsnap-out"));
    }
}

/// A second run resuming into an `--out` that a running run is writing to is refused
/// (exit 2) before it takes a snapshot, and the first run is not disturbed.
#[test]
fn concurrent_run_on_the_same_out_exits_2() {
    let db = small_db("x_two_runs");
    create_big_table(&db, "big", 30_000);
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let mut held = HeldSnapshot::export(&db);
    let args = job_args(
        &src,
        &out,
        "1",
        "128kB",
        &["--throttle", "1MB", "--snapshot-mode", "external", "--snapshot", &held.name],
    );
    let mut first = spawn(&args);
    wait_until("the first run to save its manifest", std::time::Duration::from_secs(30), || {
        try_manifest(&out).is_some()
    });
    assert!(first.running(), "the first run ended too early: make it slower");
    let mut second: Vec<&str> = args.to_vec();
    second.push("--resume");
    let r = run(&second);
    expect_error(&r, 2, "in use by another pgsnap run");
    let r = first.wait(std::time::Duration::from_secs(60));
    r.expect_code(0);
    assert_eq!(r.json()["status"], "ok");
    held.release();
    no_slots(&db);
}
