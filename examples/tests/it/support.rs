//! Running the example binaries (`snapshot_to_files`, `migrate_to_starrocks`) as black boxes,
//! and reading what they wrote.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pgsnap_test_support::shared_cluster;
use pgsnap_test_support::starrocks::{Cell, LoadRecord, StarRocksDouble, StarRocksOptions};
use serde_json::Value;

/// How long one run of the binary may take before the test kills it and fails.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The `snapshot_to_files` example (the files job).
pub(crate) const SNAPSHOT_TO_FILES: &str = "snapshot_to_files";
/// The `migrate_to_starrocks` example (the StarRocks job).
pub(crate) const MIGRATE_TO_STARROCKS: &str = "migrate_to_starrocks";
/// The `verify` example (PostgreSQL compared with StarRocks).
pub(crate) const VERIFY: &str = "verify";

/// The `pgsnap` command (crate `pgsnap-cli`).
const PGSNAP: &str = "pgsnap";

/// The environment variable that may point at a prebuilt binary of the example `name`.
fn bin_override_var(name: &str) -> Option<&'static str> {
    match name {
        SNAPSHOT_TO_FILES => Some("PGSNAP_EXAMPLE_BIN"),
        MIGRATE_TO_STARROCKS => Some("PGSNAP_MIGRATE_BIN"),
        PGSNAP => Some("PGSNAP_BIN"),
        _ => None,
    }
}

/// Whether the black-box tests run against `pgsnap <subcommand>` (`PGSNAP_FRONT=cli`)
/// instead of the examples: one test list, both command-line fronts.
fn cli_front() -> bool {
    match std::env::var("PGSNAP_FRONT").as_deref() {
        Ok("cli") => true,
        Ok("examples") | Ok("") | Err(_) => false,
        Ok(other) => panic!("PGSNAP_FRONT={other}: use cli or examples"),
    }
}

/// The `pgsnap` subcommand that does what the example `name` does.
fn subcommand_of(name: &str) -> &'static str {
    match name {
        SNAPSHOT_TO_FILES => "snapshot",
        MIGRATE_TO_STARROCKS => "migrate",
        "handoff" => "handoff",
        "drop_slot" => "drop-slot",
        "status" => "status",
        VERIFY => "verify",
        other => panic!("no pgsnap subcommand for the example {other}"),
    }
}

/// The example binary `name`, built once per test process.
///
/// `PGSNAP_EXAMPLE_BIN` (for `snapshot_to_files`) or `PGSNAP_MIGRATE_BIN` (for
/// `migrate_to_starrocks`) may point at a prebuilt binary (e.g. a release build). Otherwise
/// `cargo build --example <name>` runs once, with the profile this test binary was built
/// with (`target/<profile>/deps/it-*`), and the path comes from cargo's JSON messages.
/// Building from inside `cargo test` does not wait on cargo's lock: cargo releases it once
/// the test binaries are built.
pub(crate) fn binary_of(name: &str) -> PathBuf {
    type Bins = Mutex<HashMap<String, Arc<OnceLock<PathBuf>>>>;
    static BINS: OnceLock<Bins> = OnceLock::new();
    let cell = {
        let mut bins = BINS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(bins.entry(name.to_owned()).or_default())
    };
    cell.get_or_init(|| {
        if let Some(var) = bin_override_var(name)
            && let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty())
        {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "{var}={} is not a file", p.display());
            return p;
        }
        build_example(name)
    })
    .clone()
}

fn build_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile dir>/deps/it-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("test binary in <profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest_dir)
        .args(["build", "--quiet", "--message-format=json-render-diagnostics"])
        .args(["--profile", &profile]);
    let what = if name == PGSNAP {
        cmd.args(["--package", "pgsnap-cli", "--bin", name]);
        format!("cargo build --bin {name}")
    } else {
        cmd.args(["--package", "pgsnap-examples", "--example", name]);
        format!("cargo build --example {name}")
    };
    let out = run_command(cmd, Duration::from_secs(900), &what);
    assert_eq!(out.code, Some(0), "{what} failed:\n{}", out.stderr);
    let exe = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo named no {name} executable:\n{}", out.stdout));
    assert!(exe.is_file(), "{} missing after the build", exe.display());
    exe
}

/// What a finished process left.
#[derive(Debug)]
pub(crate) struct Output {
    /// The exit code (`None` when killed by a signal).
    pub(crate) code: Option<i32>,
    /// Everything written to stdout.
    pub(crate) stdout: String,
    /// Everything written to stderr.
    pub(crate) stderr: String,
}

impl Output {
    /// Asserts the exit code, showing the output otherwise.
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The whole of stdout as one JSON object (the `--json` contract: nothing else there).
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        let v: Value = serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not exactly one JSON value ({e}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout, self.stderr
            )
        });
        assert!(v.is_object(), "stdout is JSON but not an object: {v}");
        v
    }
}

fn pipe_reader(r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut r = r;
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A running process with its output collected on threads; killed when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().map(pipe_reader);
        let stderr = child.stderr.take().map(pipe_reader);
        Proc { child, stdout, stderr, started: Instant::now(), what: what.to_owned() }
    }

    /// Whether the process still runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end, killing the process (and failing) after `timeout`.
    #[track_caller]
    pub(crate) fn wait(mut self, timeout: Duration) -> Output {
        let deadline = self.started + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let out = self.collect();
                    panic!(
                        "{} did not finish within {timeout:?}; killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        self.what, out.stdout, out.stderr
                    );
                }
                Err(e) => panic!("waiting for {}: {e}", self.what),
            }
        }
        self.collect()
    }

    /// Sends `signal` (`TERM`, `INT`, ...) with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits at most `timeout` from now for the end, failing (after a SIGKILL) otherwise.
    #[track_caller]
    pub(crate) fn wait_from_now(mut self, timeout: Duration) -> Output {
        self.started = Instant::now();
        self.wait(timeout)
    }

    /// SIGKILL (`kill -9`), then collects what it printed.
    pub(crate) fn kill9(mut self) -> Output {
        let _ = self.child.kill();
        self.collect()
    }

    fn collect(&mut self) -> Output {
        let status = self.child.wait().expect("wait");
        Output {
            code: status.code(),
            stdout: self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default(),
            stderr: self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.stdout.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run_command(cmd: Command, timeout: Duration, what: &str) -> Output {
    Proc::spawn(cmd, what).wait(timeout)
}

/// A command running the example `name` (or, with `PGSNAP_FRONT=cli`, the matching `pgsnap`
/// subcommand) with `args`, in a known environment: logs in a known shape, and nothing from
/// the caller's environment picks another database. Add environment variables (a password)
/// before running it with [`run_cmd`] or [`spawn_cmd`].
pub(crate) fn example_command(name: &str, args: &[&str]) -> Command {
    let mut cmd = if cli_front() {
        let mut cmd = Command::new(binary_of(PGSNAP));
        cmd.arg(subcommand_of(name));
        cmd
    } else {
        Command::new(binary_of(name))
    };
    cmd.args(args);
    cmd.env("RUST_LOG", "info");
    for v in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS", "PGSNAP_SOURCE"]
    {
        cmd.env_remove(v);
    }
    cmd
}

/// The name of the program a command runs, for messages.
fn program_name(cmd: &Command) -> String {
    Path::new(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs a command (from [`example_command`]) to its end (at most [`RUN_TIMEOUT`]).
#[track_caller]
pub(crate) fn run_cmd(cmd: Command) -> Output {
    let what = program_name(&cmd);
    Proc::spawn(cmd, &what).wait(RUN_TIMEOUT)
}

/// Starts a command (from [`example_command`]) in the background.
pub(crate) fn spawn_cmd(cmd: Command) -> Proc {
    let what = program_name(&cmd);
    Proc::spawn(cmd, &what)
}

/// Runs the example `name` to its end (at most [`RUN_TIMEOUT`]).
#[track_caller]
pub(crate) fn run_example(name: &str, args: &[&str]) -> Output {
    run_cmd(example_command(name, args))
}

/// Starts the example `name` in the background.
pub(crate) fn spawn_example(name: &str, args: &[&str]) -> Proc {
    spawn_cmd(example_command(name, args))
}

/// Runs `snapshot_to_files` to its end (at most [`RUN_TIMEOUT`]).
#[track_caller]
pub(crate) fn run(args: &[&str]) -> Output {
    run_example(SNAPSHOT_TO_FILES, args)
}

/// Starts `snapshot_to_files` in the background.
pub(crate) fn spawn(args: &[&str]) -> Proc {
    spawn_example(SNAPSHOT_TO_FILES, args)
}

/// `--source` for a database of the shared cluster.
pub(crate) fn source(db: &str) -> String {
    shared_cluster().conninfo(db)
}

/// A path as a `&str` argument.
/// The arguments most tests run the job with: `--source SRC --out OUT --json --jobs JOBS
/// --chunk-size CHUNK`, then `rest`.
pub(crate) fn job_args<'a>(
    src: &'a str,
    out: &'a Path,
    jobs: &'a str,
    chunk_size: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "--source",
        src,
        "--out",
        arg(out),
        "--json",
        "--jobs",
        jobs,
        "--chunk-size",
        chunk_size,
    ];
    v.extend_from_slice(rest);
    v
}

pub(crate) fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs SQL on a database of the shared cluster (psql, `-At` output).
#[track_caller]
pub(crate) fn sql(db: &str, sql: &str) -> String {
    shared_cluster().psql(db, sql)
}

/// The pinned session settings of the job, for reference `COPY`s in psql.
pub(crate) const PINNED: &str = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; \
     SET extra_float_digits = 3; SET bytea_output = hex; SET client_encoding = 'UTF8';";

/// `COPY <table> TO STDOUT` (text format, pinned settings) as lines, under `snapshot` when
/// given (imported with `SET TRANSACTION SNAPSHOT`).
#[track_caller]
pub(crate) fn copy_lines(db: &str, table: &str, snapshot: Option<&str>) -> Vec<String> {
    let import = snapshot.map(|s| format!("SET TRANSACTION SNAPSHOT '{s}';")).unwrap_or_default();
    let out = sql(
        db,
        &format!(
            "{PINNED} BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {import} COPY {table} TO STDOUT; COMMIT;"
        ),
    );
    if out.is_empty() { Vec::new() } else { out.split('\n').map(str::to_owned).collect() }
}

/// Reads `<out>/manifest.json`.
#[track_caller]
pub(crate) fn manifest(out: &Path) -> Value {
    let path = out.join("manifest.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads `<out>/manifest.json` if it exists and parses (it is replaced atomically, so a
/// reader never sees half of one).
pub(crate) fn try_manifest(out: &Path) -> Option<Value> {
    let bytes = std::fs::read(out.join("manifest.json")).ok()?;
    Some(serde_json::from_slice(&bytes).expect("manifest.json is always complete JSON"))
}

/// The table entry `schema.name` of a manifest or report.
#[track_caller]
pub(crate) fn table<'a>(doc: &'a Value, schema: &str, name: &str) -> &'a Value {
    doc["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["schema"] == schema && t["name"] == name)
        .unwrap_or_else(|| panic!("no table {schema}.{name} in {doc:#}"))
}

/// Names (`schema.name`) of the tables of a manifest, report or plan.
pub(crate) fn table_names(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| format!("{}.{}", t["schema"].as_str().unwrap(), t["name"].as_str().unwrap()))
        .collect();
    v.sort();
    v
}

/// Done chunks in a manifest.
pub(crate) fn done_chunks(m: &Value) -> usize {
    m["tables"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .flat_map(|t| t["chunks"].as_array().cloned().unwrap_or_default())
                .filter(|c| c["done"] == true)
                .count()
        })
        .unwrap_or(0)
}

/// All chunks in a manifest.
pub(crate) fn all_chunks(m: &Value) -> usize {
    m["tables"]
        .as_array()
        .map(|ts| ts.iter().map(|t| t["chunks"].as_array().map_or(0, Vec::len)).sum())
        .unwrap_or(0)
}

/// Decompresses a chunk file by its name (`.zst`, `.gz`, or plain).
pub(crate) fn read_chunk(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.to_string_lossy();
    if name.ends_with(".zst") {
        zstd::stream::decode_all(&raw[..]).unwrap_or_else(|e| panic!("{name}: zstd: {e}"))
    } else if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{name}: gzip: {e}"));
        out
    } else {
        raw
    }
}

/// Checks every done chunk of the manifest against its file: the file exists at `path`
/// (relative to `out`), its stored size is `stored_bytes`, and its uncompressed content has
/// `bytes` bytes, `rows` lines and XXH3-64 `checksum`. Returns the uncompressed content of
/// each table's done chunks, in chunk order, keyed by `schema.name`.
#[track_caller]
pub(crate) fn verify_chunks(out: &Path, m: &Value) -> BTreeMap<String, Vec<u8>> {
    assert_eq!(m["checksum_algorithm"], "xxh3-64");
    let mut tables = BTreeMap::new();
    for t in m["tables"].as_array().expect("tables") {
        let key = format!("{}.{}", t["schema"].as_str().unwrap(), t["name"].as_str().unwrap());
        let mut content = Vec::new();
        let mut ids = Vec::new();
        for c in t["chunks"].as_array().expect("chunks") {
            ids.push(c["id"].as_u64().expect("chunk id"));
            if c["done"] != true {
                continue;
            }
            let rel = c["path"].as_str().unwrap_or_else(|| panic!("done chunk without path: {c}"));
            assert!(!rel.starts_with('/') && !rel.contains(".."), "path not relative: {rel}");
            let path = out.join(rel);
            let stored = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("chunk file {}: {e}", path.display()))
                .len();
            assert_eq!(stored, c["stored_bytes"].as_u64().unwrap(), "stored size of {rel}");
            let data = read_chunk(&path);
            assert_eq!(data.len() as u64, c["bytes"].as_u64().unwrap(), "bytes of {rel}");
            assert_eq!(
                data.iter().filter(|&&b| b == b'\n').count() as u64,
                c["rows"].as_u64().unwrap(),
                "rows of {rel}"
            );
            let sum = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data));
            assert_eq!(c["checksum"].as_str(), Some(sum.as_str()), "checksum of {rel}");
            content.extend_from_slice(&data);
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "chunk ids of {key} repeat: {ids:?}");
        tables.insert(key, content);
    }
    tables
}

/// Lines of COPY text content, sorted.
pub(crate) fn sorted_lines(content: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(content).expect("utf-8 COPY text");
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// Every file under `out` (relative paths), sorted.
pub(crate) fn files_under(out: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, acc: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, acc);
            } else {
                acc.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut acc = Vec::new();
    walk(out, out, &mut acc);
    acc.sort();
    acc
}

/// Waits until `cond` holds, polling; fails after `timeout`.
#[track_caller]
pub(crate) fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A table big enough for many chunks: `id int primary key, v text`, `rows` rows of about
/// 80 bytes of COPY text each.
pub(crate) fn create_big_table(db: &str, name: &str, rows: u64) {
    sql(
        db,
        &format!(
            "CREATE TABLE {name} (id int PRIMARY KEY, v text NOT NULL, n numeric); \
             INSERT INTO {name} SELECT g, md5(g::text) || repeat('x', 40), g * 1.5 FROM generate_series(1, {rows}) g; \
             VACUUM ANALYZE {name};"
        ),
    );
}

/// A background tokio runtime for sessions the test holds open (an exported snapshot,
/// concurrent writers) while it runs the binary synchronously.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A snapshot exported by a session this test holds open (`--snapshot-mode external`).
pub(crate) struct HeldSnapshot {
    /// The exported snapshot's name.
    pub(crate) name: String,
    client: Option<tokio_postgres::Client>,
    rt: tokio::runtime::Runtime,
}

impl HeldSnapshot {
    /// `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT pg_export_snapshot()`, kept open.
    pub(crate) fn export(db: &str) -> HeldSnapshot {
        let rt = runtime();
        let (client, name) = rt.block_on(shared_cluster().hold_snapshot(db));
        HeldSnapshot { name, client: Some(client), rt }
    }

    /// Ends the holding transaction: the snapshot can no longer be imported.
    pub(crate) fn release(&mut self) {
        if let Some(c) = self.client.take() {
            self.rt.block_on(async move {
                let _ = c.batch_execute("COMMIT").await;
            });
        }
    }
}

impl Drop for HeldSnapshot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Sessions updating, inserting and deleting rows of `table` (`id int primary key, v text,
/// n numeric`) in short transactions until dropped.
pub(crate) struct Writers {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ops: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
}

impl Writers {
    /// Starts `n` writer sessions on `table`, whose ids are `1..=max_id` at the start.
    pub(crate) fn start(db: &str, table: &str, n: usize, max_id: i64) -> Writers {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let rt = runtime();
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..n {
            let client = rt.block_on(shared_cluster().connect(db));
            let (stop, ops, table) = (Arc::clone(&stop), Arc::clone(&ops), table.to_owned());
            tasks.push(rt.spawn(async move {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
                let mut next_id = 10_000_000 * (w as i64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = (x % max_id as u64) as i64 + 1;
                    next_id += 1;
                    let stmt = match x % 3 {
                        0 => format!("UPDATE {table} SET v = v || 'u', n = n + 1 WHERE id = {id}"),
                        1 => format!("DELETE FROM {table} WHERE id = {id}"),
                        _ => format!(
                            "INSERT INTO {table} VALUES ({next_id}, 'new ' || {next_id}, {id})"
                        ),
                    };
                    if client.batch_execute(&stmt).await.is_err() {
                        break;
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                    // A steady trickle, not a flood: leave the CPUs to the run under test.
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }));
        }
        Writers { stop, ops, tasks, rt }
    }

    /// Statements committed so far.
    pub(crate) fn ops(&self) -> u64 {
        self.ops.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the writers and returns the statements committed.
    pub(crate) fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            let _ = self.rt.block_on(t);
        }
        self.ops()
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A fresh output directory path (not created) inside a temp dir.
pub(crate) fn out_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    (tmp, out)
}

/// Temp files (`.<name>.tmp-*`) anywhere under `out`.
pub(crate) fn temp_files(out: &Path) -> Vec<String> {
    files_under(out)
        .into_iter()
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            name.starts_with('.') && name.contains(".tmp-")
        })
        .collect()
}

/// Waits until the manifest in `dir` satisfies `cond` while `proc` runs, then kills it with
/// SIGKILL. Panics if the run ends first or `cond` does not hold within 30 s. Returns the
/// manifest after the kill and how long the run lived; checks the run was not complete.
#[track_caller]
pub(crate) fn kill9_when(
    mut proc: Proc,
    dir: &Path,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    const START: Duration = Duration::from_secs(30);
    let started = Instant::now();
    loop {
        if try_manifest(dir).is_some_and(|m| cond(&m)) {
            break;
        }
        if !proc.running() {
            let o = proc.wait(RUN_TIMEOUT);
            panic!(
                "the run ended (exit {:?}) before {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                o.code, o.stdout, o.stderr
            );
        }
        assert!(started.elapsed() < START, "not {what} after {START:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = proc.kill9();
    assert_eq!(killed.code, None, "killed by a signal\n{}", killed.stderr);
    let m = manifest(dir);
    assert!(done_chunks(&m) < all_chunks(&m), "the run finished before it was killed: slow it");
    (m, started.elapsed())
}

/// The StarRocks user the double accepts, and its password.
pub(crate) const USER: &str = "loader";
pub(crate) const PASSWORD: &str = "pw-for-loader";
/// The variable `--password-env` names.
pub(crate) const PASSWORD_VAR: &str = "PGSNAP_TEST_STARROCKS_PASSWORD";
/// The StarRocks database loaded into.
pub(crate) const SR_DB: &str = "analytics";

/// A StarRocks test double on a background runtime that lives as long as the test holds it.
pub(crate) struct Sr {
    // Dropped before the runtime: stops the double's servers.
    pub(crate) double: StarRocksDouble,
    rt: tokio::runtime::Runtime,
}

impl Sr {
    /// Starts a double accepting [`USER`]/[`PASSWORD`], with the (empty) database [`SR_DB`].
    pub(crate) fn start() -> Sr {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let double = rt.block_on(StarRocksDouble::start(
            StarRocksOptions::default().with_user(USER, PASSWORD),
        ));
        double.create_database(SR_DB);
        Sr { double, rt }
    }

    /// `--fe`, `--fe-sql`, `--user`, `--password-env` and `--database` for this double.
    pub(crate) fn args(&self) -> Vec<String> {
        strings(&[
            "--fe",
            &self.double.fe_url(),
            "--fe-sql",
            &self.double.mysql_addr().to_string(),
            "--user",
            USER,
            "--password-env",
            PASSWORD_VAR,
            "--database",
            SR_DB,
        ])
    }

    /// [`Sr::args`] plus `--source src --state state --json`, then `rest`.
    pub(crate) fn job_args(&self, src: &str, state: &Path, rest: &[&str]) -> Vec<String> {
        let mut v = self.args();
        v.extend(strings(&["--source", src, "--state", arg(state), "--json"]));
        v.extend(strings(rest));
        v
    }

    /// The tables of [`SR_DB`] (lower-case names).
    pub(crate) fn tables(&self) -> BTreeSet<String> {
        let cat = self.double.catalog().lock();
        cat.databases.get(SR_DB).map(|d| d.tables.keys().cloned().collect()).unwrap_or_default()
    }

    /// The rows of `table` as the `columns` named (in that order), sorted: a multiset.
    #[track_caller]
    pub(crate) fn rows(&self, table: &str, columns: &[&str]) -> Vec<Vec<Cell>> {
        let names: Vec<String> = {
            let cat = self.double.catalog().lock();
            let t = cat.databases[SR_DB]
                .tables
                .get(table)
                .unwrap_or_else(|| panic!("no StarRocks table {table}"));
            t.columns.iter().map(|c| c.name.to_lowercase()).collect()
        };
        let idx: Vec<usize> = columns
            .iter()
            .map(|c| {
                names.iter().position(|n| n == c).unwrap_or_else(|| {
                    panic!("StarRocks table {table} has no column {c}: {names:?}")
                })
            })
            .collect();
        let mut rows: Vec<Vec<Cell>> = self
            .double
            .rows(SR_DB, table)
            .into_iter()
            .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
            .collect();
        rows.sort();
        rows
    }

    /// `query`'s rows on PostgreSQL (every column cast to text by the query, under the job's
    /// pinned session settings), sorted.
    #[track_caller]
    pub(crate) fn pg_rows(&self, db: &str, query: &str) -> Vec<Vec<Cell>> {
        let mut rows: Vec<Vec<Cell>> = self.rt.block_on(async {
            let client = shared_cluster().connect(db).await;
            client.batch_execute(PINNED).await.expect("session settings");
            client
                .query(query, &[])
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"))
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
                .collect()
        });
        rows.sort();
        rows
    }

    /// Loads (attempts that reached the BE) that committed: `Success` or `Publish Timeout`.
    pub(crate) fn committed(&self) -> Vec<LoadRecord> {
        self.double
            .loads()
            .into_iter()
            .filter(|l| l.status == "Success" || l.status == "Publish Timeout")
            .collect()
    }
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
