//! The handoff job through TLS: tansu behind Debian's `stunnel4`
//! (`pgsnap_test_support::kafka::shared_tls_tansu`), tansu advertising the TLS address, with
//! the CA the test support makes. With the right CA the slot-first handoff completes and
//! answers with the high watermarks read through TLS; with an unrelated CA it fails with an
//! error naming the broker.

use pgsnap::kafka::KafkaClientConfig;
use pgsnap::starrocks::parity::StarRocksVersion;
use pgsnap::{HandoffJob, HandoffMode, Outcome, RunControl};
use pgsnap_test_support::kafka::{Record, shared_tls_tansu};

use crate::support::*;

fn tls_config(ca: &std::path::Path) -> KafkaClientConfig {
    KafkaClientConfig::new()
        .with_setting("security.protocol", "SSL")
        .with_setting("ssl.ca.location", ca.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_first_handoff_runs_through_tls() {
    let kafka = shared_tls_tansu();
    let db = db_with_rows("lib_handoff_tls", 200);
    // The topic prefix is unique per database: the broker is shared by the test binary.
    let prefix = format!("tls{}", &db[db.len() - 12..]);
    let topic = format!("{prefix}.public.big");
    kafka.create_topic(&topic, 2);
    let producer = kafka.producer();
    for p in 0..2 {
        for i in 0..(1 + p) {
            let v = format!("{{\"seed\":{i}}}");
            let record = Record {
                partition: Some(p),
                key: Some(b"k"),
                value: Some(v.as_bytes()),
                timestamp_ms: None,
            };
            producer.send(&topic, record).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let slot = format!("t_{}", &db[db.len() - 12..]);
    let report = HandoffJob::new(
        options(&db).with_slot(&slot),
        dir.path().join("out"),
        kafka.bootstrap(),
        &prefix,
    )
    .with_starrocks_version(StarRocksVersion::new(3, 4, 2))
    .with_kafka_config(tls_config(kafka.ca_cert()))
    .run(&RunControl::new())
    .await
    .unwrap();
    sql(&db, &format!("SELECT pg_drop_replication_slot('{slot}'); DROP PUBLICATION \"{slot}\";"));

    assert_eq!(report.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    assert_eq!(report.mode, HandoffMode::SlotFirst);
    let parts = &report.offsets.0[&topic];
    assert_eq!(parts.iter().map(|(p, o)| (*p, *o)).collect::<Vec<_>>(), [(0, 1), (1, 2)]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["kafka_config"]["security.protocol"], "SSL");
    assert_eq!(rows_written(&dir.path().join("out")).len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_with_the_wrong_ca_fails_naming_the_broker() {
    let kafka = shared_tls_tansu();
    let db = db_with_rows("lib_handoff_tls_bad", 10);
    let prefix = format!("tlsbad{}", &db[db.len() - 12..]);
    kafka.create_topic(&format!("{prefix}.public.big"), 1);
    let dir = tempfile::tempdir().unwrap();
    let slot = format!("tb_{}", &db[db.len() - 12..]);
    let started = std::time::Instant::now();
    let err = HandoffJob::new(
        options(&db).with_slot(&slot),
        dir.path().join("out"),
        kafka.bootstrap(),
        &prefix,
    )
    .with_starrocks_version(StarRocksVersion::new(3, 4, 2))
    .with_kafka_config(tls_config(kafka.other_ca_cert()))
    .run(&RunControl::new())
    .await
    .expect_err("a handoff through TLS with the wrong CA");
    // Whatever the job created before it failed.
    sql(
        &db,
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = '{slot}'; DROP PUBLICATION IF EXISTS \"{slot}\";"
        ),
    );
    let message = err.to_string();
    eprintln!("handoff, wrong CA, after {:?}: {message}", started.elapsed());
    assert!(
        message.contains(&format!("ssl://{}", kafka.bootstrap())),
        "the error does not name the broker: {message}"
    );
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}
