//! Tests of the throwaway tansu broker (needs `bash scripts/setup.sh --kafka`).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use pgsnap_test_support::kafka::{Record, Tansu};

use super::process_alive;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_create_topic_produce_and_drop() {
    let t = Instant::now();
    let broker = Tansu::start();
    eprintln!("tansu started in {:?}", t.elapsed());
    assert_eq!(broker.bootstrap(), format!("127.0.0.1:{}", broker.port()));
    let pid = broker.pid();
    assert!(process_alive(pid));

    broker.create_topic("support.topic", 2);
    let producer = broker.producer();
    let sent = producer
        .send_all(
            "support.topic",
            &[
                Record {
                    partition: Some(1),
                    key: Some(b"a"),
                    value: Some(b"1"),
                    ..Record::default()
                },
                Record { partition: Some(1), key: Some(b"b"), value: None, ..Record::default() },
                Record {
                    partition: Some(0),
                    value: Some(b"3"),
                    timestamp_ms: Some(1),
                    ..Record::default()
                },
                Record {
                    partition: Some(1),
                    key: Some(b"c"),
                    value: Some(b"4"),
                    ..Record::default()
                },
            ],
        )
        .await;
    // One record per batch: offsets count up by one per partition.
    assert_eq!(sent, vec![(1, 0), (1, 1), (0, 0), (1, 2)]);

    let port = broker.port();
    drop(broker);
    assert!(!process_alive(pid), "tansu {pid} still running");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still accepts");
}

/// Set for the child process of [`tansu_watchdog_kills_the_broker_of_a_killed_test`].
const WATCHDOG_CHILD_ENV: &str = "PGSNAP_TEST_SUPPORT_TANSU_WATCHDOG_CHILD";

#[test]
#[ignore = "helper process for tansu_watchdog_kills_the_broker_of_a_killed_test"]
fn tansu_watchdog_child() {
    if std::env::var_os(WATCHDOG_CHILD_ENV).is_none() {
        return;
    }
    let broker = Tansu::start();
    println!("TANSU PID {}", broker.pid());
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn tansu_watchdog_kills_the_broker_of_a_killed_test() {
    let pid: u32 = crate::kill9_child_after(
        "kafka::tansu_watchdog_child",
        WATCHDOG_CHILD_ENV,
        "TANSU PID ",
        |p| {
            assert!(crate::process_alive(p.parse().unwrap()));
        },
    )
    .parse()
    .unwrap();
    crate::wait_until_gone(|| !crate::process_alive(pid));
    assert!(!crate::process_alive(pid), "tansu {pid} outlived its test process");
}
