//! Tests of the throwaway PostgreSQL clusters themselves.

mod debezium;
mod kafka;
mod routine_load;
mod starrocks;
mod starrocks_mysql;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use pgsnap_test_support::{ClusterOptions, PgCluster, shared_cluster, unique_db};

/// The postmaster's pid, from the first line of `postmaster.pid`.
fn postmaster_pid(cluster: &PgCluster) -> u32 {
    let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
    pid_file.lines().next().unwrap().trim().parse().unwrap()
}

/// Whether `pid` runs (a zombie waiting for its reaper counts as gone).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').unwrap().1.trim_start().starts_with(['Z', 'X']),
        Err(_) => false,
    }
}

#[tokio::test]
async fn start_connect_and_query() {
    let t = Instant::now();
    let cluster = PgCluster::start();
    eprintln!("cluster started in {:?}", t.elapsed());

    assert_eq!(cluster.host(), "127.0.0.1");
    assert_ne!(cluster.port(), 0);
    assert!(cluster.data_dir().join("PG_VERSION").exists());
    assert!(cluster.data_dir().join("server.log").exists());
    assert!(
        cluster.socket_dir().join(format!(".s.PGSQL.{}", cluster.port())).exists(),
        "unix socket in {}",
        cluster.socket_dir().display()
    );

    let client = cluster.connect("postgres").await;
    let row = client.query_one("SHOW server_version_num", &[]).await.unwrap();
    let version: i32 = row.get::<_, String>(0).parse().unwrap();
    assert!((150_000..160_000).contains(&version), "{version}");
    for (setting, want) in [
        ("wal_level", "logical"),
        ("fsync", "off"),
        ("max_replication_slots", "32"),
        ("max_wal_senders", "32"),
        ("max_connections", "200"),
        ("listen_addresses", "127.0.0.1"),
        ("server_encoding", "UTF8"),
    ] {
        let row = client.query_one(&format!("SHOW {setting}"), &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), want, "{setting}");
    }
    assert_eq!(cluster.psql("postgres", "SELECT 1; SELECT 'a', 2"), "1\na|2");
}

#[tokio::test]
async fn create_database_and_connection_strings() {
    let cluster = PgCluster::start();
    cluster.create_database("Odd Name");
    cluster.create_database("plain_db");

    let from_conninfo: tokio_postgres::Config = cluster.conninfo("Odd Name").parse().unwrap();
    let from_url: tokio_postgres::Config = cluster.url("plain_db").parse().unwrap();
    for (config, want) in [
        (from_conninfo, "Odd Name"),
        (from_url, "plain_db"),
        (cluster.config("plain_db"), "plain_db"),
    ] {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = client.query_one("SELECT current_database(), current_user", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), want);
        assert_eq!(row.get::<_, String>(1), "postgres");
    }

    let db = cluster.unique_db("Own-Prefix");
    assert!(db.starts_with("own_prefix_"), "{db}");
    assert_eq!(cluster.psql(&db, "SELECT current_database()"), db);
}

#[test]
fn psql_failures_report_stderr() {
    let db = unique_db("psql_fail");
    let cluster = shared_cluster();
    let err = cluster.try_psql(&db, "SELECT * FROM no_such_table").unwrap_err();
    assert!(err.contains("relation \"no_such_table\" does not exist"), "{err}");
    assert_eq!(cluster.try_psql(&db, "SELECT 7").unwrap(), "7");

    // psql itself panics with the SQL and the error.
    let panic = std::panic::catch_unwind(|| cluster.psql(&db, "SELECT 1/0")).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(msg.contains("SELECT 1/0") && msg.contains("division by zero"), "{msg}");
}

#[test]
fn two_clusters_at_once() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(PgCluster::start);
        let b = s.spawn(PgCluster::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    a.psql("postgres", "CREATE TABLE only_in_a (id int)");
    assert_eq!(
        a.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"),
        "1"
    );
    assert_eq!(
        b.psql("postgres", "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"),
        "0"
    );
}

#[test]
fn drop_stops_the_server_and_removes_the_dir() {
    let cluster = PgCluster::start();
    let port = cluster.port();
    let socket_dir = cluster.socket_dir().to_path_buf();
    let pid = postmaster_pid(&cluster);
    assert!(process_alive(pid));
    TcpStream::connect(("127.0.0.1", port)).unwrap();

    drop(cluster);

    assert!(!socket_dir.exists(), "{} still exists", socket_dir.display());
    assert!(!process_alive(pid), "postmaster {pid} still running");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still accepts");
}

#[test]
fn options_are_applied() {
    let cluster = PgCluster::start_with(
        ClusterOptions::default()
            .with_wal_level_logical(false)
            .with_extra_conf("work_mem = '7MB'")
            .with_hba_prepend("host all blocked 127.0.0.1/32 reject")
            .with_data_file("extra/deeper/hello.txt", "hi"),
    );
    assert_eq!(cluster.psql("postgres", "SHOW wal_level"), "replica");
    assert_eq!(cluster.psql("postgres", "SHOW work_mem"), "7MB");
    let file = cluster.data_dir().join("extra/deeper/hello.txt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi");
    assert_eq!(
        cluster.psql("postgres", "SELECT pg_read_file('extra/deeper/hello.txt')"),
        "hi",
        "the server can read data files"
    );

    cluster.psql("postgres", "CREATE ROLE blocked LOGIN");
    let err = cluster.try_psql("user=blocked dbname=postgres", "SELECT 1").unwrap_err();
    assert!(err.contains("pg_hba.conf rejects connection"), "{err}");
}

#[test]
fn logical_replication_slot_with_exported_snapshot() {
    let db = unique_db("repl");
    let cluster = shared_cluster();
    let out = cluster.psql(
        &format!("dbname={db} replication=database"),
        &format!("CREATE_REPLICATION_SLOT {db} LOGICAL pgoutput (SNAPSHOT 'export')"),
    );
    let fields: Vec<&str> = out.split('|').collect();
    assert_eq!(fields.len(), 4, "{out}");
    assert_eq!(fields[0], db);
    assert_eq!(fields[3], "pgoutput");
    cluster.psql(&db, &format!("SELECT pg_drop_replication_slot('{db}')"));
}

#[test]
fn restart_and_reload() {
    let cluster = PgCluster::start();
    let port = cluster.port();
    cluster.psql("postgres", "CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)");
    let pid_before = postmaster_pid(&cluster);

    let t = Instant::now();
    cluster.restart();
    eprintln!("restart took {:?}", t.elapsed());
    assert_ne!(postmaster_pid(&cluster), pid_before);
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql("postgres", "SELECT id FROM kept"), "42");

    cluster.psql("postgres", "ALTER SYSTEM SET work_mem = '9MB'");
    cluster.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = cluster.psql("postgres", "SHOW work_mem");
        if value == "9MB" {
            break;
        }
        assert!(Instant::now() < deadline, "reload not applied: work_mem = {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shared_cluster_gives_unique_databases() {
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| unique_db("shared"))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cluster = shared_cluster();
    assert!(std::ptr::eq(cluster, shared_cluster()));
    let listed =
        cluster.psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shared\\_%'");
    for name in &names {
        assert!(name.starts_with("shared_"), "{name}");
        assert!(listed.lines().any(|l| l == name), "{name} not in {listed}");
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn pg_bin_points_at_postgres_15() {
    let psql = PgCluster::pg_bin("psql");
    assert!(psql.is_file(), "{}", psql.display());
    let out = std::process::Command::new(&psql).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 15."));
}

/// Set for the child process of
/// [`watchdog_cleans_up_after_a_killed_test_process`].
const WATCHDOG_CHILD_ENV: &str = "PGSNAP_TEST_SUPPORT_WATCHDOG_CHILD";

#[test]
#[ignore = "helper process for watchdog_cleans_up_after_a_killed_test_process"]
fn watchdog_child() {
    if std::env::var_os(WATCHDOG_CHILD_ENV).is_none() {
        return;
    }
    let cluster = PgCluster::start();
    println!("DATA {} PID {}", cluster.data_dir().display(), postmaster_pid(&cluster));
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn watchdog_cleans_up_after_a_killed_test_process() {
    let split = |printed: &str| {
        let (data, pid) = printed.rsplit_once(" PID ").unwrap();
        (std::path::PathBuf::from(data), pid.parse::<u32>().unwrap())
    };
    let printed = kill9_child_after("watchdog_child", WATCHDOG_CHILD_ENV, "DATA ", |p| {
        let (data_dir, pid) = split(p);
        assert!(data_dir.exists() && process_alive(pid));
    });
    let (data_dir, pid) = split(&printed);
    wait_until_gone(|| !data_dir.exists() && !process_alive(pid));
    assert!(!process_alive(pid), "postmaster {pid} outlived its test process");
    assert!(!data_dir.exists(), "{} outlived its test process", data_dir.display());
}

/// Runs the ignored test `child_test` of this binary in a child process (with `env` set),
/// waits for the line carrying `marker` and returns what follows the marker; `check` runs
/// on it while the child is alive; then SIGKILLs the child (no `Drop` runs in it).
fn kill9_child_after(
    child_test: &str,
    env: &str,
    marker: &str,
    check: impl FnOnce(&str),
) -> String {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child_test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map(Result::unwrap)
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("the child {child_test} printed no {marker:?}"));
    // libtest prints "test <name> ... " before it on the same line.
    let printed = line.split_once(marker).unwrap().1.trim().to_owned();
    check(&printed);
    child.kill().unwrap();
    child.wait().unwrap();
    printed
}

/// Waits up to 15 s for `gone` to hold.
fn wait_until_gone(mut gone: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}
