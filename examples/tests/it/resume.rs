//! kill -9 and `--resume`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use pgsnap_test_support::unique_db;
use serde_json::Value;

use crate::support::*;

/// Done chunks of a manifest: `path -> inode` of their files.
fn done_files(out: &Path, m: &Value) -> BTreeMap<String, u64> {
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["chunks"].as_array().unwrap().clone())
        .filter(|c| c["done"] == true)
        .map(|c| {
            let p = c["path"].as_str().unwrap().to_owned();
            let ino = std::fs::metadata(out.join(&p)).map(|m| m.ino()).unwrap_or_else(|e| {
                panic!("chunk {p} is recorded as done but its file is missing: {e}")
            });
            (p, ino)
        })
        .collect()
}

/// Rows in done chunks of a manifest.
fn done_rows(m: &Value) -> u64 {
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["chunks"].as_array().unwrap().clone())
        .filter(|c| c["done"] == true)
        .map(|c| c["rows"].as_u64().unwrap())
        .sum()
}

/// Starts the binary and kills it with SIGKILL once `done` chunks are recorded (0: once the
/// run has saved its first manifest, i.e. chunks are in flight). Returns the done chunks
/// after the kill.
fn kill_after(args: &[&str], out: &Path, done: usize) -> BTreeMap<String, u64> {
    kill_when(args, out, &format!("{done} chunks done"), |m| done_chunks(m) >= done)
}

/// Starts the binary and kills it with SIGKILL once its manifest satisfies `cond`. Returns
/// the done chunks after the kill, and checks the run was not complete.
fn kill_when(
    args: &[&str],
    out: &Path,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> BTreeMap<String, u64> {
    let (m, lived) = kill9_when(spawn(args), out, what, cond);
    eprintln!(
        "kill point {what}: killed after {lived:?} at {} rows, {} of {} chunks done ({} temp files)",
        done_rows(&m),
        done_chunks(&m),
        all_chunks(&m),
        temp_files(out).len()
    );
    done_files(out, &m)
}

/// External snapshot held by this test, concurrent writers, kill -9 at three points (each
/// resumed run is killed again), then a resume to the end: the chunk files hold exactly what
/// `COPY` prints under the held snapshot, no row twice, no chunk twice, no temp file left,
/// and chunks recorded as done before a kill are not copied again.
#[test]
fn kill_9_and_resume_with_external_snapshot() {
    let db = unique_db("x_kill_external");
    let rows = 100_000;
    create_big_table(&db, "big", rows);
    sql(
        &db,
        "CREATE TABLE side (id int PRIMARY KEY, v text); INSERT INTO side SELECT g, 's' || g FROM generate_series(1, 3000) g; ANALYZE side;",
    );
    let writers = Writers::start(&db, "big", 2, rows as i64);
    let side_writers = Writers::start(&db, "side", 1, 3000);
    // Let the writers get going, so the snapshot is taken amid them.
    wait_until("writers", Duration::from_secs(10), || writers.ops() > 50);
    let held = HeldSnapshot::export(&db);
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let args = job_args(
        &src,
        &out,
        "2",
        "256kB",
        &["--throttle", "2MB", "--snapshot-mode", "external", "--snapshot", &held.name],
    );
    let resume: Vec<&str> = args.iter().copied().chain(["--resume"]).collect();

    // 1. Killed while chunk files are written that the manifest does not record yet (it is
    // saved at most once a second): the resume must copy those chunks again.
    let unrecorded = |m: &Value| -> BTreeSet<String> {
        let done = done_files(&out, m);
        files_under(&out)
            .into_iter()
            .filter(|f| f.starts_with("public.") && !f.contains("/.") && !done.contains_key(f))
            .collect()
    };
    let first = kill_when(&args, &out, "an unrecorded chunk file", |m| !unrecorded(m).is_empty());
    let unrecorded_at_kill: BTreeMap<String, u64> = unrecorded(&manifest(&out))
        .into_iter()
        .map(|f| {
            let ino = std::fs::metadata(out.join(&f)).unwrap().ino();
            (f, ino)
        })
        .collect();
    let total = all_chunks(&manifest(&out));
    assert!(total >= 20, "want many chunks, got {total}");
    // 2. and 3. Resumed, and killed again once the resumed run has recorded progress of its
    // own.
    let more_than = |n: u64| move |m: &Value| done_rows(m) > n;
    let second =
        kill_when(&resume, &out, "new chunks recorded", more_than(done_rows(&manifest(&out))));
    let third =
        kill_when(&resume, &out, "new chunks recorded", more_than(done_rows(&manifest(&out))));
    assert!(first.len() < second.len() && second.len() < third.len());
    // 4. Resumed to the end, with the same snapshot name (still held by this test).
    let r = run(&resume);
    r.expect_code(0);
    let report = r.json();
    assert_eq!(report["status"], "ok", "{report:#}");
    let ops = writers.stop() + side_writers.stop();
    assert!(ops > 200, "the writers barely ran ({ops} statements)");

    let m = manifest(&out);
    assert_eq!(m["status"], "ok");
    assert_eq!(m["snapshot"]["mode"], "external");
    assert_eq!(m["snapshot"]["name"], held.name.as_str());
    assert_eq!(report["snapshot"], m["snapshot"]);
    assert_eq!(done_chunks(&m), all_chunks(&m), "every chunk done");
    assert_eq!(all_chunks(&m), total, "the plan did not change across resumes");
    // Chunks recorded as done before a kill were kept, not copied again; chunk files the
    // manifest did not record were copied again.
    let now = done_files(&out, &m);
    for (p, ino) in first.iter().chain(&second).chain(&third) {
        assert_eq!(now.get(p), Some(ino), "{p} was copied again after the resume");
    }
    // (Empty only if a manifest save slipped in between the check and the kill: possible
    // on a very slow machine, where the first chunk ends after the first save is due.)
    if unrecorded_at_kill.is_empty() {
        eprintln!("note: every chunk file was recorded by the time of the first kill");
    }
    for (p, ino) in &unrecorded_at_kill {
        assert_ne!(now.get(p), Some(ino), "{p} was not recorded, yet the resume kept it");
    }
    for t in m["tables"].as_array().unwrap() {
        for c in t["chunks"].as_array().unwrap() {
            assert!(c.get("snapshot").is_none(), "same snapshot throughout: {c}");
        }
    }

    let content = verify_chunks(&out, &m);
    for (t, key) in [("big", "public.big"), ("side", "public.side")] {
        let got = sorted_lines(&content[key]);
        let mut want = copy_lines(&db, t, Some(&held.name));
        want.sort();
        assert_eq!(got.len(), want.len(), "{t}: rows under the held snapshot");
        assert!(got == want, "{t}: content differs from COPY under the held snapshot");
        let ids: BTreeSet<&str> = got.iter().map(|l| l.split('\t').next().unwrap()).collect();
        assert_eq!(ids.len(), got.len(), "{t}: a row appears twice");
        assert_eq!(
            report["tables"].as_array().unwrap().iter().find(|x| x["name"] == t).unwrap()["rows"]
                .as_u64(),
            Some(got.len() as u64)
        );
    }
    // The snapshot mattered: the table has moved on since.
    let mut current = copy_lines(&db, "big", None);
    current.sort();
    assert!(current != sorted_lines(&content["public.big"]), "the writers changed nothing");

    // Nothing but the manifest and the recorded chunk files; no temp file.
    assert!(temp_files(&out).is_empty(), "left behind: {:?}", temp_files(&out));
    let mut expected: BTreeSet<String> = now.keys().cloned().collect();
    expected.insert("manifest.json".into());
    assert_eq!(files_under(&out).into_iter().collect::<BTreeSet<_>>(), expected);
    drop(held);
}

/// SIGTERM and SIGINT mid-run (as an orchestrator or Ctrl-C sends them): the run stops
/// within 10 s with exit 143 (130), prints its report, and keeps in its manifest only chunks
/// whose files are whole; `--resume` then completes it, and the output equals an
/// uninterrupted run's under the same snapshot.
#[test]
fn sigterm_then_resume_equals_an_uninterrupted_run() {
    let db = unique_db("x_sigterm");
    create_big_table(&db, "big", 40_000);
    let held = HeldSnapshot::export(&db);
    let src = source(&db);
    let external = ["--snapshot-mode", "external", "--snapshot", held.name.as_str()];

    // The reference: one uninterrupted run.
    let (_tmp0, whole) = out_dir();
    let r = run(&job_args(&src, &whole, "2", "128kB", &external));
    r.expect_code(0);
    let want = verify_chunks(&whole, &manifest(&whole));

    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let (_tmp, out) = out_dir();
        let mut rest = external.to_vec();
        rest.extend(["--throttle", "1MB"]);
        let args = job_args(&src, &out, "2", "128kB", &rest);
        let proc = spawn(&args);
        wait_until("a chunk done", Duration::from_secs(30), || {
            try_manifest(&out).is_some_and(|m| done_chunks(&m) >= 1)
        });
        proc.signal(signal);
        let stopped = std::time::Instant::now();
        let r = proc.wait_from_now(Duration::from_secs(10));
        eprintln!("SIG{signal}: stopped after {:?}", stopped.elapsed());
        r.expect_code(code);
        let report = r.json();
        assert_eq!(report["status"], "failed", "{report:#}");
        assert_eq!(report["report_version"], 1);
        assert!(report["error"].as_str().is_some_and(|e| e.contains("cancelled")), "{report:#}");
        let m = manifest(&out);
        assert!(done_chunks(&m) < all_chunks(&m), "SIG{signal}: the run finished first");
        // Every chunk the manifest records as done is whole.
        verify_chunks(&out, &m);

        let resume: Vec<&str> = args.iter().copied().chain(["--resume"]).collect();
        let r = run(&resume);
        r.expect_code(0);
        let m = manifest(&out);
        assert_eq!(done_chunks(&m), all_chunks(&m));
        assert!(verify_chunks(&out, &m) == want, "SIG{signal}: resumed output differs");
        assert!(temp_files(&out).is_empty(), "left behind: {:?}", temp_files(&out));
    }
    drop(held);
}

/// Slot mode with a temporary slot: the slot (and its snapshot) ends with the killed process,
/// so --resume refuses, with or without --allow-snapshot-change.
#[test]
fn kill_9_in_slot_mode_refuses_resume() {
    let db = unique_db("x_kill_slot");
    create_big_table(&db, "big", 30_000);
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let args = job_args(&src, &out, "2", "128kB", &["--throttle", "1MB"]);
    let done = kill_after(&args, &out, 1);
    assert!(!done.is_empty());
    let m = manifest(&out);
    assert_eq!(m["snapshot"]["mode"], "slot");
    assert_eq!(m["snapshot"]["slot_temporary"], true);
    // Nothing left behind even by kill -9: the temporary slot is gone with its connection.
    wait_until("the temporary slot to be dropped", Duration::from_secs(10), || {
        sql(&db, &format!("SELECT count(*) FROM pg_replication_slots WHERE database = '{db}'"))
            == "0"
    });

    let mut resume: Vec<&str> = args.to_vec();
    resume.push("--resume");
    let r = run(&resume);
    r.expect_code(4);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("cannot resume") && r.stderr.contains("snapshot"), "{}", r.stderr);
    resume.push("--allow-snapshot-change");
    let r = run(&resume);
    r.expect_code(4);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("permanent --slot"), "{}", r.stderr);
    assert_eq!(manifest(&out), m, "a refused resume changes nothing");
}

/// Drops a replication slot when the test ends, passing or not.
struct SlotGuard<'a> {
    db: &'a str,
    slot: String,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let _ = pgsnap_test_support::shared_cluster().try_psql(
            self.db,
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}'",
                self.slot
            ),
        );
    }
}

/// Slot mode with a permanent slot: after kill -9, --resume refuses without
/// --allow-snapshot-change and with it copies the remaining chunks under a new snapshot,
/// recorded on exactly those chunks.
#[test]
fn kill_9_with_permanent_slot_resumes_under_a_new_snapshot() {
    let db = unique_db("x_kill_perm_slot");
    create_big_table(&db, "big", 30_000);
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let slot = SlotGuard { db: &db, slot: format!("perm_{}", &db[db.len() - 16..]) };
    let args = job_args(&src, &out, "2", "128kB", &["--throttle", "1MB", "--slot", &slot.slot]);
    let before = kill_after(&args, &out, 1);
    // Commit a transaction, so any snapshot taken from now on differs from the run's
    // (otherwise an idle database gives the same `pg_current_snapshot()`, rightly treated as
    // the same snapshot).
    sql(&db, "SELECT txid_current()");
    let m0 = manifest(&out);
    let s0 = m0["snapshot"].clone();
    assert_eq!(s0["slot"], slot.slot.as_str());
    assert_eq!(s0["slot_temporary"], false);
    assert_eq!(
        sql(
            &db,
            &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'", slot.slot)
        ),
        "1",
        "the permanent slot outlives the process"
    );

    let mut resume: Vec<&str> = args.to_vec();
    resume.push("--resume");
    let r = run(&resume);
    r.expect_code(4);
    assert!(r.stderr.contains("--allow-snapshot-change"), "{}", r.stderr);

    resume.push("--allow-snapshot-change");
    // Without the slot, a new snapshot would not be sound: CDC could not replay from the
    // handoff LSN. (A slot of the same name is made again below only to go on testing.)
    sql(&db, &format!("SELECT pg_drop_replication_slot('{}')", slot.slot));
    let r = run(&resume);
    r.expect_code(4);
    assert!(r.stderr.contains("no longer exists"), "{}", r.stderr);
    sql(
        &db,
        &format!("SELECT 1 FROM pg_create_logical_replication_slot('{}', 'pgoutput')", slot.slot),
    );
    let r = run(&resume);
    r.expect_code(0);
    let report = r.json();
    assert_eq!(report["status"], "ok");
    let m = manifest(&out);
    assert_eq!(m["snapshot"], s0, "the run's snapshot (and handoff LSN) stays the original");
    assert_eq!(report["snapshot"], s0);
    let mut new_snapshots = BTreeSet::new();
    for c in table(&m, "public", "big")["chunks"].as_array().unwrap() {
        assert_eq!(c["done"], true);
        let p = c["path"].as_str().unwrap();
        if before.contains_key(p) {
            assert!(c.get("snapshot").is_none(), "chunk done before the kill: {c}");
        } else {
            let s = &c["snapshot"];
            assert!(s.is_object(), "chunk copied after the resume records its snapshot: {c}");
            assert!(s["name"].is_string() && s["taken_at"].is_string(), "{s}");
            assert_ne!(s["pg_snapshot"], s0["pg_snapshot"]);
            assert_ne!(s["name"], s0["name"]);
            new_snapshots.insert(s.to_string());
        }
    }
    assert_eq!(new_snapshots.len(), 1, "one new snapshot for the resumed run");
    // No writes here, so both snapshots see the same rows.
    let content = verify_chunks(&out, &m);
    let mut want = copy_lines(&db, "big", None);
    want.sort();
    assert!(sorted_lines(&content["public.big"]) == want);
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
}
