//! A throwaway Prometheus server (Debian's `prometheus` package; `bash scripts/setup.sh`
//! installs it) scraping the targets a test names every second, and its HTTP query API.
//!
//! ```no_run
//! use pgsnap_test_support::prometheus::Prometheus;
//! let prom = Prometheus::start(&["127.0.0.1:9187".parse().unwrap()]);
//! prom.wait_for("up == 1", std::time::Duration::from_secs(10));
//! let up = prom.query("up");
//! assert_eq!(up[0]["value"][1], "1");
//! ```

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The scrape job's name in the configuration the tests write (the `job` label of every
/// scraped series).
pub const JOB: &str = "pgsnap";

const HOST: &str = "127.0.0.1";
const PORT_ATTEMPTS: usize = 5;

/// A running Prometheus on its own port of `127.0.0.1`, with its TSDB in a temp dir; killed
/// (and the dir removed) on drop, or by a watchdog once the test process is gone.
#[derive(Debug)]
pub struct Prometheus {
    child: Option<Child>,
    watchdog: Option<Child>,
    port: u16,
    log_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// The `prometheus` binary: `$PGSNAP_PROMETHEUS_BIN`, else `/usr/bin/prometheus`.
    ///
    /// # Panics
    /// If it is missing, naming the command that installs it.
    pub fn bin() -> PathBuf {
        let path = std::env::var_os("PGSNAP_PROMETHEUS_BIN")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
        if !path.is_file() {
            panic!(
                "{} is missing: install Prometheus with `bash scripts/setup.sh` (Debian package \
                 prometheus), or point PGSNAP_PROMETHEUS_BIN at a prometheus binary",
                path.display()
            );
        }
        path
    }

    /// Starts Prometheus scraping `targets` (`/metrics`) every second under the scrape job
    /// [`JOB`], and waits until it is ready.
    ///
    /// # Panics
    /// The binary is missing, or Prometheus does not become ready.
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        let bin = Prometheus::bin();
        let dir = tempfile::Builder::new()
            .prefix("pgsnap-prometheus-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for Prometheus: {e}"));
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        let log_file = dir.path().join("prometheus.log");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = fs::File::create(&log_file)
                .unwrap_or_else(|e| panic!("creating {}: {e}", log_file.display()));
            let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
            let mut child = Command::new(&bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={HOST}:{port}"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    let watchdog = crate::process::spawn_watchdog(
                        "pgsnap-prometheus-watchdog",
                        child.id(),
                        &[dir.path()],
                    );
                    return Prometheus { child: Some(child), watchdog, port, log_file, _dir: dir };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{e}\n--- prometheus log ---\n{}", tail(&log_file));
                }
            }
        }
        panic!("Prometheus did not start ({PORT_ATTEMPTS} tries): {last_error}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The result vector of an instant query (`/api/v1/query`) at the present time.
    ///
    /// # Panics
    /// When Prometheus answers with an error (a bad expression): the message names it.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let (status, body) = http_get(
            &format!("{HOST}:{}", self.port),
            &format!("/api/v1/query?query={}", encode(promql)),
        )
        .unwrap_or_else(|e| panic!("querying Prometheus: {e}"));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("Prometheus answered {status} with no JSON ({e}): {body}"));
        if v["status"] != "success" {
            panic!("Prometheus refused {promql:?}: {}", v["error"]);
        }
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The values of `promql`'s series, as numbers (empty when it has none).
    pub fn values(&self, promql: &str) -> Vec<f64> {
        self.query(promql).iter().filter_map(|s| s["value"][1].as_str()?.parse().ok()).collect()
    }

    /// Waits until `promql` has at least one series; returns them.
    ///
    /// # Panics
    /// After `timeout`, with Prometheus' view of its targets.
    pub fn wait_for(&self, promql: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.query(promql);
            if !r.is_empty() {
                return r;
            }
            if Instant::now() > deadline {
                let targets = http_get(&format!("{HOST}:{}", self.port), "/api/v1/targets")
                    .map(|r| r.1)
                    .unwrap_or_default();
                panic!("no series for {promql:?} after {timeout:?}; targets: {targets}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port on {HOST}: {e}"))
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("prometheus exited with {status}"));
        }
        if let Ok((200, _)) = http_get(&format!("{HOST}:{port}"), "/-/ready") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("not ready within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.0 GET of `path` on `addr` (`host:port`): (status, body). Enough for
/// Prometheus' API and a `/metrics` endpoint, without an HTTP client in the tests.
///
/// # Errors
/// Connecting, writing or reading failing (10 s read timeout).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    const QUERY: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, QUERY).to_string()
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
