//! The happy path: the `--json` report, the manifest and the chunk files, in each compression.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use pgsnap_test_support::unique_db;
use serde_json::Value;

use crate::support::*;

/// A small database with the shapes the contract talks about: several chunks, awkward text,
/// NULLs, a generated column, an empty table, a table without primary key.
fn sample_db(prefix: &str) -> String {
    let db = unique_db(prefix);
    create_big_table(&db, "big", 20_000);
    sql(
        &db,
        "CREATE TABLE odd (id int PRIMARY KEY, t text, b bytea, ts timestamptz, f float8, \
                           g int GENERATED ALWAYS AS (id * 2) STORED);
         INSERT INTO odd VALUES (1, E'tab\\there\\nnewline \\\\ back', '\\x00ff', 'infinity', 'NaN'),
                                (2, NULL, NULL, '2024-01-02 03:04:05.678+02', '-Infinity'),
                                (3, '', '', NULL, 1.0e-300),
                                (4, 'ünïcødé ✓', '\\x', '1999-12-31 23:59:59.999999+00', 0.1);
         CREATE TABLE empty (x int);
         CREATE TABLE nopk (a int, b text);
         INSERT INTO nopk SELECT g % 3, 'dup' FROM generate_series(1, 10) g;
         ANALYZE;",
    );
    db
}

const TABLES: [&str; 4] = ["public.big", "public.empty", "public.nopk", "public.odd"];

fn hex16(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `"X/Y"`, upper-case hex as PostgreSQL prints it.
fn is_lsn(v: &Value) -> bool {
    v.as_str().and_then(|s| s.split_once('/')).is_some_and(|(a, b)| {
        [a, b].iter().all(|p| {
            !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
        })
    })
}

/// `xmin:xmax:xip,...`
fn is_pg_snapshot(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let parts: Vec<&str> = s.split(':').collect();
        parts.len() == 3
            && parts[..2].iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            && parts[2].bytes().all(|c| c.is_ascii_digit() || c == b',')
    })
}

/// Checks the manifest fields of the contract; `mode` is the snapshot mode expected.
#[track_caller]
fn check_manifest(m: &Value, db: &str, mode: &str, compression: &str) {
    assert_eq!(m["version"], 1, "{m:#}");
    let s = &m["snapshot"];
    assert_eq!(s["mode"], mode);
    assert!(s["name"].as_str().is_some_and(|n| !n.is_empty()), "snapshot.name: {s}");
    assert!(is_pg_snapshot(&s["pg_snapshot"]), "snapshot.pg_snapshot: {s}");
    assert!(s["taken_at"].as_str().is_some_and(|t| t.len() >= 20 && t.ends_with('Z')), "{s}");
    if mode == "slot" {
        assert!(is_lsn(&s["lsn"]), "snapshot.lsn must be X/Y text: {s}");
        assert!(s["slot"].as_str().is_some_and(|n| !n.is_empty()), "snapshot.slot: {s}");
    } else {
        assert!(s.get("lsn").is_none(), "no lsn in {mode} mode: {s}");
        assert!(s.get("slot").is_none(), "no slot in {mode} mode: {s}");
    }
    let src = &m["source"];
    assert!(
        src["system_identifier"].as_str().is_some_and(|x| x.bytes().all(|c| c.is_ascii_digit())),
        "{src}"
    );
    assert!(src["server_version"].as_str().is_some_and(|v| v.starts_with("15")), "{src}");
    assert_eq!(src["database"], db);
    assert_eq!(m["format"], "text");
    assert_eq!(m["compression"], compression);
    for (k, v) in [
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("TimeZone", "UTC"),
        ("extra_float_digits", "3"),
        ("bytea_output", "hex"),
        ("client_encoding", "UTF8"),
        ("row_security", "off"),
        ("synchronize_seqscans", "off"),
    ] {
        assert_eq!(m["session"][k], v, "session.{k}: {}", m["session"]);
    }
    assert_eq!(m["checksum_algorithm"], "xxh3-64");
    assert_eq!(table_names(m), TABLES);
    for t in m["tables"].as_array().unwrap() {
        assert_eq!(t["kind"], "table", "{t}");
        assert_eq!(t["status"], "ok", "{t}");
        for c in t["columns"].as_array().expect("columns") {
            assert!(c["name"].is_string() && c["type"].is_string() && c["nullable"].is_boolean());
        }
        assert!(t["generated_columns"].is_array() && t["primary_key"].is_array(), "{t}");
        for c in t["chunks"].as_array().expect("chunks") {
            assert!(c["id"].is_u64() && c["range"].is_object(), "{c}");
            assert_eq!(c["done"], true, "{c}");
            assert!(c["path"].is_string() && c["rows"].is_u64() && c["bytes"].is_u64(), "{c}");
            assert!(hex16(&c["checksum"]), "checksum is 16 hex digits: {c}");
            assert!(c.get("snapshot").is_none(), "no per-chunk snapshot in a plain run: {c}");
        }
    }
    let odd = table(m, "public", "odd");
    assert_eq!(odd["generated_columns"], serde_json::json!(["g"]));
    assert_eq!(odd["primary_key"], serde_json::json!(["id"]));
    let cols: Vec<&str> =
        odd["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["id", "t", "b", "ts", "f"], "chunk files hold no generated column");
    assert_eq!(table(m, "public", "nopk")["primary_key"], serde_json::json!([]));
    assert!(table(m, "public", "big")["chunks"].as_array().unwrap().len() > 1, "big is split");
}

/// Checks the `--json` report against the manifest.
#[track_caller]
fn check_report(r: &Value, m: &Value, out: &Path) {
    assert_eq!(r["status"], "ok", "{r:#}");
    assert_eq!(r["out"], arg(out));
    assert_eq!(r["snapshot"], m["snapshot"], "report.snapshot is the manifest's");
    assert!(r["elapsed_s"].as_f64().is_some_and(|e| e >= 0.0), "{r}");
    let mut rows = 0;
    let mut bytes = 0;
    for t in r["tables"].as_array().expect("tables") {
        for k in ["schema", "name", "status", "rows", "bytes", "chunks", "error"] {
            assert!(t.get(k).is_some(), "report table without {k}: {t}");
        }
        assert_eq!(t["status"], "ok");
        assert!(t["error"].is_null());
        let mt = table(m, t["schema"].as_str().unwrap(), t["name"].as_str().unwrap());
        let chunks = mt["chunks"].as_array().unwrap();
        assert_eq!(t["chunks"].as_u64(), Some(chunks.len() as u64));
        let sum = |k: &str| chunks.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(t["rows"].as_u64(), Some(sum("rows")));
        assert_eq!(t["bytes"].as_u64(), Some(sum("bytes")));
        rows += sum("rows");
        bytes += sum("bytes");
    }
    assert_eq!(table_names(r), TABLES);
    assert_eq!(r["rows"].as_u64(), Some(rows));
    assert_eq!(r["bytes"].as_u64(), Some(bytes));
}

/// The chunk files hold exactly what `COPY` prints (no writes run here), and nothing else is
/// in the output directory.
#[track_caller]
fn check_content(db: &str, out: &Path, m: &Value) {
    let content = verify_chunks(out, m);
    for t in TABLES {
        let got = sorted_lines(&content[t]);
        let mut want = copy_lines(db, t, None);
        want.sort();
        assert_eq!(got.len(), want.len(), "rows of {t}");
        let count: usize = sql(db, &format!("SELECT count(*) FROM {t}")).parse().unwrap();
        assert_eq!(got.len(), count, "rows of {t} = SELECT count(*)");
        assert!(got == want, "content of {t} differs from COPY");
    }
    let mut expected: BTreeSet<String> = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["chunks"].as_array().unwrap().clone())
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    expected.insert("manifest.json".into());
    assert_eq!(files_under(out).into_iter().collect::<BTreeSet<_>>(), expected);
}

fn slots_of(db: &str) -> String {
    sql(
        db,
        &format!(
            "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE database = '{db}'"
        ),
    )
}

#[test]
fn happy_path_default_slot_mode() {
    let db = sample_db("x_happy");
    let (_tmp, out) = out_dir();
    let src = source(&db);
    let r = run(&job_args(&src, &out, "2", "256kB", &[]));
    r.expect_code(0);
    let report = r.json();
    let m = manifest(&out);
    check_manifest(&m, &db, "slot", "none");
    assert_eq!(m["snapshot"]["slot_temporary"], true);
    check_report(&report, &m, &out);
    check_content(&db, &out, &m);
    for c in table(&m, "public", "big")["chunks"].as_array().unwrap() {
        let p = c["path"].as_str().unwrap();
        assert!(p.starts_with("public.big/") && p.ends_with(".copy"), "{p}");
    }
    // The temporary slot goes with the process.
    wait_until("the temporary slot to be dropped", Duration::from_secs(10), || {
        slots_of(&db).is_empty()
    });
}

#[test]
fn happy_path_zstd_and_gzip() {
    let db = sample_db("x_compress");
    let src = source(&db);
    for (compress, ext, mode) in [("zstd", ".copy.zst", "export"), ("gzip", ".copy.gz", "slot")] {
        let (_tmp, out) = out_dir();
        let r = run(&job_args(
            &src,
            &out,
            "2",
            "256kB",
            &["--compress", compress, "--snapshot-mode", mode],
        ));
        r.expect_code(0);
        let m = manifest(&out);
        check_manifest(&m, &db, mode, compress);
        check_report(&r.json(), &m, &out);
        check_content(&db, &out, &m);
        for t in m["tables"].as_array().unwrap() {
            for c in t["chunks"].as_array().unwrap() {
                let p = c["path"].as_str().unwrap();
                assert!(p.ends_with(ext), "{compress}: {p}");
                if c["bytes"].as_u64().unwrap() > 100_000 {
                    assert!(
                        c["stored_bytes"].as_u64().unwrap() < c["bytes"].as_u64().unwrap(),
                        "{compress} compresses: {c}"
                    );
                }
            }
        }
    }
}

#[test]
fn plan_copies_nothing() {
    let db = sample_db("x_plan");
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let slot = format!("plan_{}", &db[db.len() - 12..]);
    // A permanent --slot would outlive the process if --plan created one.
    let r = run(&[
        "--source",
        &src,
        "--out",
        arg(&out),
        "--plan",
        "--json",
        "--chunk-size",
        "256kB",
        "--slot",
        &slot,
    ]);
    r.expect_code(0);
    let plan = r.json();
    assert_eq!(table_names(&plan), TABLES, "{plan:#}");
    let big = table(&plan, "public", "big");
    assert!(big["chunks"].as_array().unwrap().len() > 1, "{big}");
    assert!(big["estimated_bytes"].as_u64().unwrap() > 0, "{big}");
    assert!(!out.exists() || files_under(&out).is_empty(), "--plan wrote {:?}", files_under(&out));
    assert_eq!(slots_of(&db), "", "--plan left a replication slot behind");

    // Without --json the plan is printed for people (stderr), stdout stays empty.
    let r = run(&["--source", &src, "--out", arg(&out), "--plan", "--chunk-size", "256kB"]);
    r.expect_code(0);
    assert!(r.stderr.contains("plan:") && r.stderr.contains("\"public\".\"big\""), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(!out.exists() || files_under(&out).is_empty());
}
