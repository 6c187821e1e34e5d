//! The handoff job against tansu (Kafka): slot-first, with the high watermarks as the
//! answer, the Routine Load and the Debezium config; typed refusals of options that do not
//! fit together.

use pgsnap::kafka::KafkaClientConfig;
use pgsnap::starrocks::parity::StarRocksVersion;
use pgsnap::{ConfigError, HandoffJob, HandoffMode, JobError, Outcome, RunControl};
use pgsnap_test_support::kafka::{Record, Tansu};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_first_handoff_answers_with_the_high_watermarks() {
    let kafka = Tansu::start();
    let db = db_with_rows("lib_handoff", 5_000);
    let topic = "lh.public.big";
    kafka.create_topic(topic, 2);
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
            producer.send(topic, record).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let slot = format!("h_{}", &db[db.len() - 12..]);
    // Metrics served by the job while it runs (port 0), into a handle the test keeps.
    let metrics = pgsnap::metrics::Metrics::new();
    let control = RunControl::new()
        .with_metrics(metrics.clone())
        .with_metrics_addr("127.0.0.1:0".parse().unwrap());
    let report = HandoffJob::new(
        options(&db).with_slot(&slot),
        dir.path().join("out"),
        kafka.bootstrap(),
        "lh",
    )
    .with_starrocks_version(StarRocksVersion::new(3, 4, 2))
    // Client settings reach the clients (a plaintext broker ignores the SASL ones) and the
    // report, the secret redacted.
    .with_kafka_config(
        KafkaClientConfig::new()
            .with_setting("security.protocol", "plaintext")
            .with_setting("client.id", "pgsnap-lib-test")
            .with_setting("sasl.username", "loader")
            .with_setting("sasl.password", "hunter2-secret"),
    )
    .run(&control)
    .await
    .unwrap();
    let slot_existed = sql(
        &db,
        &format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT temporary"
        ),
    );
    sql(&db, &format!("SELECT pg_drop_replication_slot('{slot}'); DROP PUBLICATION \"{slot}\";"));

    assert_eq!(report.outcome(), Outcome::Complete, "{:?}", report.run.warnings);
    assert_eq!(slot_existed, "1", "the permanent slot outlives the job, for Debezium");
    assert_eq!(report.mode, HandoffMode::SlotFirst);
    let parts = &report.offsets.0[topic];
    assert_eq!(parts.iter().map(|(p, o)| (*p, *o)).collect::<Vec<_>>(), [(0, 1), (1, 2)]);
    assert_eq!(report.routine_load.len(), 1);
    assert!(
        report.routine_load[0].contains("\"kafka_offsets\" = \"1,2\""),
        "{}",
        report.routine_load[0]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["report_version"], 1);
    assert_eq!(json["debezium"]["config"]["slot.name"], slot.as_str());
    assert_eq!(json["starrocks_version"], "3.4.2");
    assert_eq!(json["tables"][0]["starrocks_table"], "big");
    // The effective Kafka settings, the secret as "***", nowhere in clear.
    assert_eq!(
        json["kafka_config"],
        serde_json::json!({
            "client.id": "pgsnap-lib-test",
            "sasl.password": "***",
            "sasl.username": "loader",
            "security.protocol": "plaintext",
        })
    );
    assert!(!json.to_string().contains("hunter2"), "{json}");
    assert!(!format!("{report:?}").contains("hunter2"));
    let rl = &report.routine_load[0];
    assert!(rl.contains(r#""property.security.protocol" = "plaintext""#), "{rl}");
    assert!(rl.contains(r#""property.sasl.password" = "${KAFKA_SASL_PASSWORD}""#), "{rl}");
    assert_eq!(json["routine_load_placeholders"]["${KAFKA_SASL_PASSWORD}"], "sasl.password");
    assert_eq!(json["routine_load_files"], serde_json::json!([]));
    let unmapped: Vec<_> =
        report.run.warnings.iter().filter(|w| w.contains("no Routine Load counterpart")).collect();
    assert!(unmapped.len() == 1 && unmapped[0].contains("client.id"), "{unmapped:?}");
    assert_eq!(rows_written(&dir.path().join("out")).len(), 5_000);

    // The handoff's metrics: the copy, the snapshot's xmin age and the permanent slot's lag;
    // the address bound is the report's, and the job's server is gone with the job.
    let addr = metrics.addr().expect("served");
    assert_eq!(json["metrics_addr"], addr.to_string());
    assert_ne!(addr.port(), 0);
    // (Aborted when the job returns; the listener closes once the runtime drops the task.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the job's server outlived the job");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text = metrics.encode();
    for needle in [
        "pgsnap_copied_rows_total{table=\"public.big\"} 5000\n".to_owned(),
        format!("pgsnap_slot_lag_bytes{{slot=\"{slot}\"}} "),
        "pgsnap_snapshot_xmin_age_transactions ".to_owned(),
        "pgsnap_run_state{state=\"complete\"} 1\n".to_owned(),
    ] {
        assert!(text.contains(&needle), "{needle} missing:\n{text}");
    }
    assert!(!text.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_do_not_fit_are_refused_before_anything_runs() {
    let db = db_with_rows("lib_handoff_bad", 10);
    let dir = tempfile::tempdir().unwrap();
    let job = |mode| {
        HandoffJob::new(options(&db), dir.path().join("out"), "127.0.0.1:1", "x").with_mode(mode)
    };
    let e = job(HandoffMode::Running).with_strict(true).run(&RunControl::new()).await.unwrap_err();
    assert!(matches!(e, JobError::Config(ConfigError::NoStarRocksVersion)), "{e:?}");
    let e = job(HandoffMode::Running)
        .with_starrocks_version(StarRocksVersion::new(3, 4, 2))
        .with_strict(true)
        .run(&RunControl::new())
        .await
        .unwrap_err();
    assert!(matches!(e, JobError::Config(ConfigError::UnknownEncodings { .. })), "{e:?}");
    let e = HandoffJob::new(options(&db).with_slot("s"), dir.path().join("out"), "b:1", "x")
        .with_mode(HandoffMode::Running)
        .run(&RunControl::new())
        .await
        .unwrap_err();
    assert!(matches!(e, JobError::Config(ConfigError::SlotWhileRunning { .. })), "{e:?}");
    for (key, value) in [("group.id", "hunter2"), ("sasl.mechanism", "GSSAPI")] {
        let e = job(HandoffMode::SlotFirst)
            .with_kafka_config(KafkaClientConfig::new().with_setting(key, value))
            .run(&RunControl::new())
            .await
            .unwrap_err();
        let JobError::Config(ConfigError::KafkaClient(message)) = &e else { panic!("{e:?}") };
        assert!(message.contains(key) && !message.contains("hunter2"), "{message}");
    }
    assert!(!dir.path().join("out").exists(), "nothing was written");
}
