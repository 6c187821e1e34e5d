//! Throwaway PostgreSQL 15 clusters.

use std::collections::HashSet;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::tls::TestCerts;

/// Where Debian's `postgresql-15` package puts the server binaries.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// What to tell someone whose machine lacks the binaries.
const INSTALL_HINT: &str = "install them with `bash scripts/setup.sh` \
     (or set PGSNAP_PG_BIN to a PostgreSQL 15 bin directory)";
/// Host every cluster listens on.
const HOST: &str = "127.0.0.1";
/// Superuser created by `initdb -U`.
const SUPERUSER: &str = "postgres";
/// How often a start is retried when the chosen port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl -w` waits for start, restart and stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// Lines of the server log shown when the server fails to start.
const LOG_TAIL_LINES: usize = 40;
/// Free space `/dev/shm` needs to be the default base directory (a small
/// Docker-style 64 MB `/dev/shm` is not used).
const MIN_SHM_FREE_KIB: u64 = 2 * 1024 * 1024;
/// Postgres' identifier limit (NAMEDATALEN - 1).
const MAX_IDENT_LEN: usize = 63;

/// Options for [`PgCluster::start_with`].
///
/// `ClusterOptions::default()` gives what [`PgCluster::start`] uses:
/// `wal_level = logical`, no extra configuration.
///
/// # Example
///
/// ```
/// use pgsnap_test_support::{ClusterOptions, PgCluster};
///
/// let cluster = PgCluster::start_with(
///     ClusterOptions::default()
///         .with_extra_conf("work_mem = '7MB'")
///         .with_hba_prepend("host all blocked 127.0.0.1/32 reject"),
/// );
/// assert_eq!(cluster.psql("postgres", "SHOW work_mem"), "7MB");
/// ```
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Lines appended to `postgresql.conf` after the test defaults (so they
    /// override them), e.g. `"max_wal_size = '64MB'"`. Do not set `port`,
    /// `listen_addresses` or `unix_socket_directories`: the cluster manages
    /// them.
    pub extra_conf: Vec<String>,
    /// `wal_level = logical` when true (the default), `replica` otherwise.
    pub wal_level_logical: bool,
    /// Lines put before the `initdb --auth=trust` entries of `pg_hba.conf`
    /// (the first matching line wins), e.g.
    /// `"host all alice 127.0.0.1/32 scram-sha-256"`.
    pub hba_prepend: Vec<String>,
    /// Files written into the data directory before the first start, as
    /// `(path relative to the data directory, contents)`, owned by the server
    /// user with mode 0600: e.g. `server.crt` and `server.key` for a cluster
    /// started with `ssl = on` in [`extra_conf`](Self::extra_conf).
    pub data_files: Vec<(PathBuf, Vec<u8>)>,
    /// Directory under which the cluster's temp dir is created. `None` (the
    /// default) means `$PGSNAP_TEST_TMPDIR` if set, else `/dev/shm` (tmpfs:
    /// `initdb` takes about 0.3 s there against about 1 s on disk) when it is
    /// a writable directory, else `/tmp` (or the usual temp dir when not
    /// root). Benchmarks that should hit a disk can point this at one.
    pub base_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            extra_conf: Vec::new(),
            wal_level_logical: true,
            hba_prepend: Vec::new(),
            data_files: Vec::new(),
            base_dir: None,
        }
    }
}

impl ClusterOptions {
    /// Appends one line to [`extra_conf`](Self::extra_conf).
    pub fn with_extra_conf(mut self, line: impl Into<String>) -> Self {
        self.extra_conf.push(line.into());
        self
    }

    /// Sets [`wal_level_logical`](Self::wal_level_logical).
    pub fn with_wal_level_logical(mut self, logical: bool) -> Self {
        self.wal_level_logical = logical;
        self
    }

    /// Appends one line to [`hba_prepend`](Self::hba_prepend).
    pub fn with_hba_prepend(mut self, line: impl Into<String>) -> Self {
        self.hba_prepend.push(line.into());
        self
    }

    /// Sets [`base_dir`](Self::base_dir).
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Adds one file to [`data_files`](Self::data_files).
    pub fn with_data_file(
        mut self,
        path: impl Into<PathBuf>,
        contents: impl Into<Vec<u8>>,
    ) -> Self {
        self.data_files.push((path.into(), contents.into()));
        self
    }

    /// Turns TLS on with `certs`' server certificate: writes
    /// `certs.server_cert` and `certs.server_key` into the data directory as
    /// `server.crt` and `server.key` (PostgreSQL's default file names, see
    /// [`with_data_file`](Self::with_data_file)) and adds `ssl = on`.
    ///
    /// The files are copied, so `certs` may be dropped once the cluster has
    /// started (keep it while clients need [`TestCerts::ca_cert`]).
    ///
    /// # Panics
    ///
    /// If the certificate or key cannot be read.
    pub fn with_tls(self, certs: &TestCerts) -> Self {
        let read = |path: &Path| {
            fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        };
        self.with_data_file("server.crt", read(&certs.server_cert))
            .with_data_file("server.key", read(&certs.server_key))
            .with_extra_conf("ssl = on")
    }
}

/// A throwaway PostgreSQL 15 cluster: `initdb` in a temp dir, its own free
/// port on `127.0.0.1`, unix socket in the temp dir, `wal_level = logical`,
/// replication allowed (trust auth), `fsync = off`. Stopped
/// (`pg_ctl stop -m immediate`) and deleted on drop.
///
/// The superuser is `postgres` (no password). The server log is
/// `server.log` in the data directory.
///
/// Methods that run a program ([`psql`](Self::psql),
/// [`create_database`](Self::create_database), [`restart`](Self::restart),
/// …) block the calling thread; that is fine in tests, also inside a tokio
/// runtime.
///
/// # Panics
///
/// Everything here panics with a clear message instead of returning errors:
/// it is meant for tests only.
#[derive(Debug)]
pub struct PgCluster {
    /// Temp dir holding `data/` and the unix socket; `None` once dropped.
    root: Option<tempfile::TempDir>,
    root_path: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    /// The detached `sh` that cleans up if the test process dies.
    watchdog: Option<Child>,
}

impl PgCluster {
    /// Starts a cluster with [`ClusterOptions::default`].
    ///
    /// # Panics
    ///
    /// If the PostgreSQL binaries are missing (the message names
    /// `bash scripts/setup.sh`), or if `initdb` or the server fail (the
    /// message includes their output and the tail of the server log).
    pub fn start() -> PgCluster {
        Self::start_with(ClusterOptions::default())
    }

    /// Starts a cluster with the given options.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with(opts: ClusterOptions) -> PgCluster {
        if let Err(msg) = check_binaries(&pg_bin_dir()) {
            panic!("{msg}");
        }
        let user = server_user();
        let base = opts.base_dir.clone().unwrap_or_else(temp_base);
        let root = tempfile::Builder::new()
            .prefix("pgsnap-pg-")
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("creating a temp dir under {}: {e}", base.display()));
        let root_path = root.path().to_path_buf();
        user.chown(&root_path);
        let data_dir = root_path.join("data");
        let log_file = data_dir.join("server.log");
        let mut cluster =
            PgCluster { root: Some(root), root_path, data_dir, log_file, port: 0, watchdog: None };
        cluster.init(&opts);
        cluster.start_on_free_port(&opts);
        cluster.watchdog = spawn_watchdog(&cluster.root_path, &cluster.data_dir);
        cluster
    }

    /// The TCP port the server listens on (on [`host`](Self::host)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host the server listens on: always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.root_path
    }

    /// The data directory (`PGDATA`); the server log is `server.log` in it.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A libpq key/value connection string:
    /// `host=127.0.0.1 port=N user=postgres dbname=<dbname>`.
    ///
    /// It parses with `tokio_postgres::Config`'s `FromStr` too.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!("host={HOST} port={} user={SUPERUSER} dbname={}", self.port, conninfo_value(dbname))
    }

    /// A connection URL: `postgresql://postgres@127.0.0.1:N/<dbname>`.
    ///
    /// `dbname` is inserted as is (names from [`unique_db`] need no escaping).
    pub fn url(&self, dbname: &str) -> String {
        format!("postgresql://{SUPERUSER}@{HOST}:{}/{dbname}", self.port)
    }

    /// A `tokio_postgres::Config` for `dbname` (TCP, user `postgres`).
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(HOST)
            .port(self.port)
            .user(SUPERUSER)
            .dbname(dbname)
            .application_name("pgsnap-test-support")
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// Connects to `dbname` without TLS and spawns the connection task on
    /// the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If the connection fails, or when called outside a tokio runtime.
    pub async fn connect(&self, dbname: &str) -> tokio_postgres::Client {
        let (client, connection) = self
            .config(dbname)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url(dbname)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("pgsnap-test-support: connection task ended: {e}");
            }
        });
        client
    }

    /// Exports a snapshot of `dbname` from a new session and keeps it importable:
    /// `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT pg_export_snapshot()`, left
    /// open. Returns the session (the snapshot lives until it commits or is dropped) and the
    /// snapshot's name.
    ///
    /// # Panics
    ///
    /// If a statement fails, or when called outside a tokio runtime.
    pub async fn hold_snapshot(&self, dbname: &str) -> (tokio_postgres::Client, String) {
        let client = self.connect(dbname).await;
        client
            .batch_execute(
                "SET idle_in_transaction_session_timeout = 0; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            )
            .await
            .expect("begin");
        let name: String =
            client.query_one("SELECT pg_export_snapshot()", &[]).await.expect("export").get(0);
        (client, name)
    }

    /// Creates the database `name` (quoted as an identifier, so any name
    /// works).
    ///
    /// # Panics
    ///
    /// If `CREATE DATABASE` fails, e.g. because the database exists.
    pub fn create_database(&self, name: &str) {
        self.psql(SUPERUSER, &format!("CREATE DATABASE {}", quote_ident(name)));
    }

    /// Creates a database named `<prefix>_<random hex>` on this cluster and
    /// returns its name.
    ///
    /// The prefix is lower-cased, characters other than `[a-z0-9_]` become
    /// `_`, and it is shortened so the name fits Postgres' 63-byte limit.
    pub fn unique_db(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        self.create_database(&name);
        name
    }

    /// Runs `sql` through
    /// `psql -X -q -v ON_ERROR_STOP=1 -At` on `dbname` and returns its
    /// standard output without the final newline (rows on separate lines,
    /// columns separated by `|`).
    ///
    /// `sql` is fed on standard input, so it may hold several statements
    /// (each in its own transaction unless you write `BEGIN`/`COMMIT`) and
    /// psql meta-commands. `dbname` may also be a connection string such as
    /// `"dbname=postgres replication=database"`: host, port and user come
    /// from this cluster unless the string sets them.
    ///
    /// # Panics
    ///
    /// If psql exits non-zero; the message holds the SQL and psql's stderr.
    /// Use [`try_psql`](Self::try_psql) to expect a failure.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        self.try_psql(dbname, sql).unwrap_or_else(|stderr| {
            panic!(
                "psql on {dbname} ({}) failed:\n--- sql ---\n{sql}\n--- stderr ---\n{stderr}",
                self.url("")
            )
        })
    }

    /// Like [`psql`](Self::psql), but returns psql's stderr (trimmed) as the
    /// error when psql exits non-zero, e.g. to check that a statement fails.
    ///
    /// # Panics
    ///
    /// Only if psql cannot be run at all.
    pub fn try_psql(&self, dbname: &str, sql: &str) -> Result<String, String> {
        let psql = pg_bin("psql");
        let mut cmd = Command::new(&psql);
        scrub_env(&mut cmd);
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-h", HOST, "-p"])
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", dbname, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}; {INSTALL_HINT}", psql.display()));
        let mut stdin = child.stdin.take().expect("psql stdin is piped");
        let output = std::thread::scope(|s| {
            // Write on another thread so a large script cannot deadlock
            // against a large result.
            s.spawn(move || {
                // psql may exit early (ON_ERROR_STOP); its exit status tells.
                let _ = stdin.write_all(sql.as_bytes());
            });
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("waiting for psql: {e}"));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_string();
            return Err(if stderr.is_empty() { format!("psql {}", output.status) } else { stderr });
        }
        let mut out = String::from_utf8(output.stdout).expect("psql output is UTF-8");
        if out.ends_with('\n') {
            out.pop();
        }
        Ok(out)
    }

    /// Restarts the server (`pg_ctl restart -m fast`), e.g. after changing a
    /// setting that needs a restart. Same port, same data.
    ///
    /// Do not restart the [`shared_cluster`]: other tests use it.
    ///
    /// # Panics
    ///
    /// If the server does not come back; the message holds the log tail.
    pub fn restart(&self) {
        let out = run(pg_ctl()
            .args(["restart", "-w", "-s", "-m", "fast", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file));
        if !out.status.success() {
            panic!(
                "pg_ctl restart failed ({}): {}\n--- server log tail ---\n{}",
                out.status,
                output_text(&out),
                log_tail(&self.log_file)
            );
        }
    }

    /// Makes the server re-read its configuration (`pg_ctl reload`).
    ///
    /// Like `SIGHUP`, this is asynchronous: sessions pick up the new values
    /// shortly after, new sessions almost at once.
    ///
    /// # Panics
    ///
    /// If `pg_ctl reload` fails.
    pub fn reload(&self) {
        let out = run(pg_ctl().args(["reload", "-s", "-D"]).arg(&self.data_dir));
        if !out.status.success() {
            panic!("pg_ctl reload failed ({}): {}", out.status, output_text(&out));
        }
    }

    /// The path of PostgreSQL binary `name`: `/usr/lib/postgresql/15/bin/<name>`,
    /// or `$PGSNAP_PG_BIN/<name>` when that variable is set.
    pub fn pg_bin(name: &str) -> PathBuf {
        pg_bin(name)
    }

    /// Runs `initdb`, writes the data files and `pg_hba.conf` lines.
    fn init(&self, opts: &ClusterOptions) {
        let out = run(server_cmd("initdb").arg("-D").arg(&self.data_dir).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ]));
        if !out.status.success() {
            panic!(
                "initdb -D {} failed ({}):\n{}",
                self.data_dir.display(),
                out.status,
                output_text(&out)
            );
        }
        let user = server_user();
        for (rel, contents) in &opts.data_files {
            assert!(
                rel.is_relative(),
                "ClusterOptions::data_files paths must be relative to the data directory: {}",
                rel.display()
            );
            let path = self.data_dir.join(rel);
            if let Some(parent) = rel.parent() {
                fs::create_dir_all(self.data_dir.join(parent))
                    .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
                // Give every directory we may have created to the server user.
                for dir in parent.ancestors().filter(|d| !d.as_os_str().is_empty()) {
                    user.chown(&self.data_dir.join(dir));
                }
            }
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            user.chown(&path);
        }
        if !opts.hba_prepend.is_empty() {
            let hba = self.data_dir.join("pg_hba.conf");
            let old = read_file(&hba);
            let mut new = String::from("# pgsnap-test-support: ClusterOptions::hba_prepend\n");
            for line in &opts.hba_prepend {
                new.push_str(line);
                new.push('\n');
            }
            new.push_str(&old);
            write_existing(&hba, &new);
        }
    }

    /// Appends the test configuration and starts the server, retrying on
    /// another port when the chosen one was taken in the meantime.
    fn start_on_free_port(&mut self, opts: &ClusterOptions) {
        let conf_path = self.data_dir.join("postgresql.conf");
        let initdb_conf = read_file(&conf_path);
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let conf = format!("{initdb_conf}\n{}", test_conf(port, &self.root_path, opts));
            write_existing(&conf_path, &conf);
            let log_offset = fs::metadata(&self.log_file).map(|m| m.len()).unwrap_or(0);
            let out = run(pg_ctl()
                .args(["start", "-w", "-s", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file));
            if out.status.success() {
                self.port = port;
                return;
            }
            let log = log_tail(&self.log_file);
            let this_attempt = fs::read(&self.log_file)
                .ok()
                .and_then(|l| {
                    l.get(log_offset as usize..).map(|l| String::from_utf8_lossy(l).into_owned())
                })
                .unwrap_or_default();
            let port_taken = this_attempt.contains("Address already in use")
                || this_attempt.contains("could not create any TCP/IP sockets");
            if port_taken && attempt < PORT_ATTEMPTS {
                continue;
            }
            panic!(
                "starting PostgreSQL in {} on port {port} failed ({}): {}\n--- server log tail ---\n{log}",
                self.data_dir.display(),
                out.status,
                output_text(&out)
            );
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(pid) = read_postmaster_pid(&self.data_dir) {
            let out = run(pg_ctl()
                .args(["stop", "-w", "-s", "-m", "immediate", "-t", PG_CTL_TIMEOUT_SECS, "-D"])
                .arg(&self.data_dir));
            if !out.status.success() {
                eprintln!(
                    "pgsnap-test-support: pg_ctl stop -D {} failed ({}): {}",
                    self.data_dir.display(),
                    out.status,
                    output_text(&out)
                );
            }
            // pg_ctl returns once postmaster.pid is gone, a moment before
            // the process has exited.
            wait_for_exit(pid, Duration::from_secs(10));
        }
        if let Some(root) = self.root.take() {
            let path = root.path().to_path_buf();
            if let Err(e) = root.close() {
                eprintln!("pgsnap-test-support: removing {}: {e}", path.display());
            }
        }
    }
}

/// A process-wide shared cluster for tests that only need *a* database.
///
/// Started on first use with [`PgCluster::start`] and never torn down
/// explicitly: its watchdog stops it and removes its directory within about
/// a second after the test process exits. Give each test its own database
/// with [`unique_db`]; do not restart or reconfigure this cluster.
///
/// # Panics
///
/// As [`PgCluster::start`]. A failed start is retried by the next caller.
pub fn shared_cluster() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start)
}

/// Creates a fresh database named `<prefix>_<random hex>` on the
/// [`shared_cluster`] and returns its name.
///
/// See [`PgCluster::unique_db`] for how the prefix is sanitised.
///
/// # Panics
///
/// As [`shared_cluster`], or if `CREATE DATABASE` fails.
pub fn unique_db(prefix: &str) -> String {
    shared_cluster().unique_db(prefix)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The directory holding the PostgreSQL binaries.
fn pg_bin_dir() -> PathBuf {
    match std::env::var_os("PGSNAP_PG_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_PG_BIN),
    }
}

fn pg_bin(name: &str) -> PathBuf {
    pg_bin_dir().join(name)
}

/// Checks that the programs a cluster needs are in `dir`.
fn check_binaries(dir: &Path) -> Result<(), String> {
    let missing: Vec<String> = ["initdb", "pg_ctl", "postgres", "psql"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "PostgreSQL 15 binaries not found ({} missing); {INSTALL_HINT}",
            missing.join(", ")
        ))
    }
}

/// Which OS user runs `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone, Copy)]
enum ServerUser {
    /// The current (non-root) user.
    Current,
    /// We are root: use the `postgres` user through `runuser`.
    Postgres { uid: u32, gid: u32 },
}

impl ServerUser {
    /// Gives `path` to the server user (no-op when that is us).
    fn chown(self, path: &Path) {
        if let ServerUser::Postgres { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
        }
    }
}

fn server_user() -> ServerUser {
    static USER: OnceLock<ServerUser> = OnceLock::new();
    *USER.get_or_init(|| {
        let euid = id(&["-u"]).expect("running `id -u`");
        if euid != 0 {
            return ServerUser::Current;
        }
        match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
            (Some(uid), Some(gid)) => ServerUser::Postgres { uid, gid },
            _ => panic!(
                "running as root, but there is no `postgres` user to run the server as \
                 (PostgreSQL refuses root); {INSTALL_HINT}"
            ),
        }
    })
}

/// Runs `id ARGS` and parses the number it prints.
fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Where cluster directories go by default: `$PGSNAP_TEST_TMPDIR`, else
/// `/dev/shm` (tmpfs) when writable, else `/tmp` when root (the `postgres`
/// user must be able to traverse it), else the usual temp dir.
fn temp_base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(choose_temp_base).clone()
}

fn choose_temp_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGSNAP_TEST_TMPDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && fs::metadata(shm).is_ok_and(|m| m.permissions().mode() & 0o1777 == 0o1777)
        && free_kib(shm).is_some_and(|kib| kib >= MIN_SHM_FREE_KIB)
    {
        return shm.to_path_buf();
    }
    match server_user() {
        ServerUser::Postgres { .. } => PathBuf::from("/tmp"),
        ServerUser::Current => std::env::temp_dir(),
    }
}

/// Free space under `dir` in KiB, from `df -Pk`.
fn free_kib(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// Removes libpq's `PG*` variables so the caller's environment cannot
/// redirect or reconfigure our commands.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && k.starts_with("PG")
            && !k.starts_with("PGSNAP_")
        {
            cmd.env_remove(&key);
        }
    }
}

/// A command for a server program, run as the server user.
fn server_cmd(name: &str) -> Command {
    let program = pg_bin(name);
    let mut cmd = match server_user() {
        ServerUser::Current => Command::new(program),
        ServerUser::Postgres { .. } => {
            let runuser = if Path::new("/usr/sbin/runuser").exists() {
                "/usr/sbin/runuser"
            } else {
                "runuser"
            };
            let mut cmd = Command::new(runuser);
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        }
    };
    scrub_env(&mut cmd);
    // The postgres user may not be able to read the test's working directory.
    cmd.current_dir("/");
    cmd
}

fn pg_ctl() -> Command {
    server_cmd("pg_ctl")
}

/// Runs a command to completion, capturing its output.
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn output_text(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(err.trim());
    }
    text
}

fn read_file(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Overwrites a file in place (keeping its owner and mode).
fn write_existing(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The last lines of the server log.
fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// The configuration appended to `postgresql.conf`.
fn test_conf(port: u16, socket_dir: &Path, opts: &ClusterOptions) -> String {
    let wal_level = if opts.wal_level_logical { "logical" } else { "replica" };
    let mut conf = format!(
        "# --- pgsnap-test-support ---\n\
         port = {port}\n\
         listen_addresses = '{HOST}'\n\
         unix_socket_directories = '{}'\n\
         wal_level = {wal_level}\n\
         max_replication_slots = 32\n\
         max_wal_senders = 32\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         shared_buffers = 128MB\n\
         max_connections = 200\n\
         log_min_messages = warning\n",
        socket_dir.display().to_string().replace('\'', "''"),
    );
    for line in &opts.extra_conf {
        conf.push_str(line);
        conf.push('\n');
    }
    conf
}

/// A port that was free a moment ago, not handed out before by this process.
fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..50 {
        let port = TcpListener::bind((HOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("finding a free port on {HOST}: {e}"));
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("could not find a free port on {HOST} that this process has not used yet");
}

/// The postmaster's pid from `postmaster.pid`, if the file exists.
fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether process `pid` is still running (a zombie counts as gone).
fn process_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Waits until process `pid` has exited, at most `timeout`.
fn wait_for_exit(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while process_running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Spawns the detached watchdog that stops the server and removes `root`
/// once this process is gone (it exits by itself when `data_dir` vanishes,
/// and [`PgCluster`]'s `Drop` kills it first anyway).
fn spawn_watchdog(root: &Path, data_dir: &Path) -> Option<Child> {
    const SCRIPT: &str = r#"
pid=$1; data=$2; root=$3; shift 3
while kill -0 "$pid" 2>/dev/null && [ -d "$data" ]; do sleep 1; done
if [ -d "$data" ]; then
    "$@" stop -D "$data" -m immediate -w -t 60 >/dev/null 2>&1
    rm -rf "$root"
fi
"#;
    let ctl = pg_ctl();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", SCRIPT, "pgsnap-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(data_dir)
        .arg(root)
        .arg(ctl.get_program())
        .args(ctl.get_args())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own process group: a Ctrl-C to the test run must not kill it.
        .process_group(0);
    scrub_env(&mut cmd);
    match cmd.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!("pgsnap-test-support: could not start the cluster watchdog: {e}");
            None
        }
    }
}

/// A name `<sanitised prefix>_<16 hex digits>` unique across processes.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
    );
    let suffix = format!("{:016x}", hasher.finish());
    let mut clean: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if clean.is_empty() {
        clean.push_str("db");
    }
    clean.truncate(MAX_IDENT_LEN - suffix.len() - 1);
    format!("{clean}_{suffix}")
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a conninfo value when it needs it.
fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\') {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_name_the_setup_script() {
        let err = check_binaries(Path::new("/nonexistent/pg/bin")).unwrap_err();
        assert!(err.contains("bash scripts/setup.sh"), "{err}");
        assert!(err.contains("/nonexistent/pg/bin/initdb"), "{err}");
    }

    #[test]
    fn binaries_found_in_default_dir() {
        check_binaries(&pg_bin_dir()).unwrap();
    }

    #[test]
    fn unique_names_are_valid_identifiers() {
        let a = unique_name("My-Test.Prefix");
        let b = unique_name("My-Test.Prefix");
        assert_ne!(a, b);
        assert!(a.starts_with("my_test_prefix_"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        let long = unique_name(&"x".repeat(200));
        assert_eq!(long.len(), MAX_IDENT_LEN);
        assert!(unique_name("").starts_with("db_"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(conninfo_value("plain"), "plain");
        assert_eq!(conninfo_value("has space"), "'has space'");
        assert_eq!(conninfo_value(r"it's\"), r"'it\'s\\'");
        assert_eq!(conninfo_value(""), "''");
    }

    #[test]
    fn conf_has_overrides_last() {
        let conf = test_conf(
            5555,
            Path::new("/tmp/x"),
            &ClusterOptions::default().with_wal_level_logical(false).with_extra_conf("port = 6666"),
        );
        assert!(conf.contains("wal_level = replica"));
        assert!(conf.find("port = 5555").unwrap() < conf.find("port = 6666").unwrap());
    }
}
