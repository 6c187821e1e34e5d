//! `--metrics-addr`: the address bound is reported (port 0 picks one), and an address that
//! cannot be listened on is a usage error naming the flag, before any work.

use std::net::TcpListener;

use pgsnap_test_support::unique_db;

use crate::support::*;

#[test]
fn metrics_addr_port_0_is_reported_and_an_address_in_use_exits_2_before_any_work() {
    let db = unique_db("x_metrics");
    create_big_table(&db, "t", 2_000);
    let src = source(&db);
    let (_tmp, out) = out_dir();
    let o = arg(&out);

    let r = run(&["--source", &src, "--out", o, "--json", "--metrics-addr", "127.0.0.1:0"]);
    r.expect_code(0);
    let json = r.json();
    let addr: std::net::SocketAddr = json["metrics_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics_addr: {json}"))
        .parse()
        .unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the bound port, not the one asked for");
    assert!(
        r.stderr.contains(&format!("http://{addr}/metrics")),
        "the log names the address:\n{}",
        r.stderr
    );
    // Without the flag the report has no such field.
    let (_tmp2, out2) = out_dir();
    let plain = run(&["--source", &src, "--out", arg(&out2), "--json"]);
    plain.expect_code(0);
    assert!(plain.json().get("metrics_addr").is_none());

    // An address in use: exit 2 naming the flag and the address; nothing was done.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let (_tmp3, out3) = out_dir();
    let r = run(&["--source", &src, "--out", arg(&out3), "--json", "--metrics-addr", &taken_addr]);
    r.expect_code(2);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("--metrics-addr") && r.stderr.contains(&taken_addr), "{}", r.stderr);
    assert!(!out3.exists() || files_under(&out3).is_empty(), "it wrote to --out");
    assert_eq!(
        sql(&db, &format!("SELECT count(*) FROM pg_replication_slots WHERE database = '{db}'")),
        "0",
        "a slot was taken before the metrics address was checked"
    );
    // Not an address at all.
    let r = run(&["--source", &src, "--out", arg(&out3), "--json", "--metrics-addr", "nowhere"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--metrics-addr"), "{}", r.stderr);

    // status: the server is bound before the first check.
    let r = run_example(
        "status",
        &[
            "--source",
            &src,
            "--state",
            arg(&out3),
            "--fe",
            "http://127.0.0.1:1",
            "--watch",
            "1",
            "--metrics-addr",
            &taken_addr,
        ],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("--metrics-addr") && r.stderr.contains(&taken_addr), "{}", r.stderr);
    drop(taken);
}
