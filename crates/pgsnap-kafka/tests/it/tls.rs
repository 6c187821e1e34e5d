//! Kafka over TLS against a real broker: tansu 0.6 behind Debian's `stunnel4`
//! ([`pgsnap_test_support::kafka::TlsTansu`]), tansu advertising the TLS address so that every
//! connection a client makes goes through TLS, verified with a CA the test makes.
//!
//! - librdkafka is built with TLS and SASL PLAIN/SCRAM (`builtin.features`);
//! - plain rdkafka clients (`security.protocol=ssl`, `ssl.ca.location`) produce and read
//!   watermarks through the TLS listener; with an unrelated CA the handshake fails with
//!   librdkafka's `certificate verify failed`, naming the broker;
//! - pgsnap's own clients ([`KafkaLogs`], [`KafkaOffsetResolver`] and
//!   [`KafkaOffsetResolver::capture_high_watermarks_with`]) do the same with a
//!   [`KafkaClientConfig`]; with the wrong CA they fail with a pgsnap error naming the broker.
//!
//! SASL: no test here logs in successfully. tansu 0.6 runs the SCRAM exchange when started
//! with `--authentication` but can store no credential in this build (see the `kafka` module
//! docs of `pgsnap-test-support`), so every login fails with `unknown-user`. What is tested
//! against it, through TLS (`security.protocol=SASL_SSL`), is the configuration path: the
//! SCRAM-SHA-256/512 settings reach the broker's SCRAM exchange, PLAIN is answered with the
//! broker's mechanisms, and pgsnap's error names the broker without the password.
//!
//! One broker (tansu + stunnel) serves the whole test binary ([`shared_tls_tansu`]); each test
//! has a topic of its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgsnap_core::{OffsetResolver, SnapshotInfo, SnapshotMode};
use pgsnap_kafka::kafka::{KafkaLogOptions, KafkaLogs};
use pgsnap_kafka::resolver::{HandoffMode, KafkaOffsetResolver};
use pgsnap_kafka::{ConnectionFailure, KafkaClientConfig};
use pgsnap_test_support::kafka::{Record, TlsTansu, shared_sasl_tls_tansu, shared_tls_tansu};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

/// How long a client with the wrong CA may try before the test looks at its errors.
const WRONG_CA_TIMEOUT: Duration = Duration::from_secs(5);

/// `tls.<name>.<pid>-<nanoseconds>`: a topic of the shared broker for one test.
fn unique_topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("tls.{name}.{}-{nanos}", std::process::id())
}

/// librdkafka's error and log lines, as a client's context receives them.
#[derive(Clone, Default)]
struct Recorder {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl ClientContext for Recorder {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.lines.lock().unwrap().push(format!("log {level:?} {fac}: {log_message}"));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.lines.lock().unwrap().push(format!("error {error}: {reason}"));
    }
}

impl ConsumerContext for Recorder {}

/// librdkafka queues its log lines and errors for the client's poll: polls `consumer` until a
/// recorded line contains `needle` (or 5 s passed); returns every recorded line.
fn lines_until(consumer: &BaseConsumer<Recorder>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let recorder = consumer.context();
    while !recorder.text().contains(needle) && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            panic!("unexpected message at offset {}", rdkafka::Message::offset(&message));
        }
    }
    recorder.text()
}

/// A consumer for `broker` trusting `ca` (not `broker`'s own CA when testing the wrong one).
fn consumer(broker: &TlsTansu, ca: &std::path::Path) -> (BaseConsumer<Recorder>, Recorder) {
    consumer_with(broker, ca, &[])
}

/// [`consumer`] with more librdkafka `settings` (which may replace `security.protocol`).
fn consumer_with(
    broker: &TlsTansu,
    ca: &std::path::Path,
    settings: &[(&str, &str)],
) -> (BaseConsumer<Recorder>, Recorder) {
    let recorder = Recorder::default();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.display().to_string())
        .set("group.id", "pgsnap-tls-test")
        .set("enable.auto.commit", "false");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let consumer = config.create_with_context(recorder.clone()).expect("creating a TLS consumer");
    (consumer, recorder)
}

/// The password of the SASL tests: must never show in an error.
const SASL_PASSWORD: &str = "pgsnap-test-pa55word";

/// Runs a metadata request on the SASL broker with `mechanism`; returns librdkafka's error and
/// log lines, once one contains `needle`. The request must fail: no login can succeed on
/// tansu 0.6 (see the module docs).
async fn sasl_attempt(mechanism: &'static str, needle: &'static str) -> String {
    tokio::task::spawn_blocking(move || {
        let broker = shared_sasl_tls_tansu();
        let (consumer, _) = consumer_with(
            broker,
            broker.ca_cert(),
            &[
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanism", mechanism),
                ("sasl.username", "pgsnap"),
                ("sasl.password", SASL_PASSWORD),
            ],
        );
        let result = consumer.fetch_metadata(None, WRONG_CA_TIMEOUT);
        assert!(result.is_err(), "a SASL login succeeded on tansu 0.6: update the tests");
        lines_until(&consumer, needle)
    })
    .await
    .unwrap()
}

#[test]
fn librdkafka_is_built_with_tls_and_sasl_plain_and_scram() {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .expect("a librdkafka config")
        .get("builtin.features")
        .expect("builtin.features");
    let features: Vec<&str> = features.split(',').collect();
    for wanted in ["ssl", "sasl", "sasl_plain", "sasl_scram"] {
        assert!(
            features.contains(&wanted),
            "librdkafka {version} lacks {wanted} in builtin.features {features:?}: is the \
             workspace rdkafka dependency built with its `ssl` feature (and libssl-dev \
             installed: bash scripts/setup.sh)?"
        );
    }
    // GSSAPI (Kerberos) needs libsasl2 and is deliberately not built (rdkafka's `gssapi`
    // feature is off): pgsnap refuses that mechanism by name instead.
    assert!(
        !features.contains(&"sasl_gssapi"),
        "librdkafka {version} unexpectedly has sasl_gssapi: {features:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rdkafka_produces_and_reads_watermarks_through_tls() {
    let broker = shared_tls_tansu();
    let topic = unique_topic("rdkafka");
    broker.create_topic(&topic, 1);
    let producer = broker.producer();
    for i in 0..3u8 {
        let (partition, offset) = producer
            .send(&topic, Record { partition: Some(0), value: Some(&[i]), ..Record::default() })
            .await;
        assert_eq!((partition, offset), (0, i64::from(i)));
    }
    let ca = broker.ca_cert().to_path_buf();
    let (watermarks, recorder) = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || {
            let (consumer, recorder) = consumer(shared_tls_tansu(), &ca);
            (consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)), recorder)
        }
    })
    .await
    .unwrap();
    let watermarks =
        watermarks.unwrap_or_else(|e| panic!("watermarks through TLS: {e}\n{}", recorder.text()));
    assert_eq!(watermarks, (0, 3));
    // The connections went through stunnel (tansu advertises only the TLS address).
    let log = broker.stunnel_log();
    assert!(log.contains("Service [kafka] accepted connection"), "stunnel log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rdkafka_with_the_wrong_ca_fails_the_handshake_naming_the_broker() {
    let broker = shared_tls_tansu();
    let other_ca = broker.other_ca_cert().to_path_buf();
    let started = Instant::now();
    let (failed, text) = tokio::task::spawn_blocking(move || {
        let (consumer, _) = consumer(shared_tls_tansu(), &other_ca);
        let failed = consumer.fetch_metadata(None, WRONG_CA_TIMEOUT).is_err();
        (failed, lines_until(&consumer, "SSL handshake failed"))
    })
    .await
    .unwrap();
    assert!(failed, "metadata through TLS with the wrong CA succeeded");
    let address = broker.bootstrap();
    let line = text
        .lines()
        .find(|l| l.contains("SSL handshake failed"))
        .unwrap_or_else(|| panic!("no SSL handshake failure reported:\n{text}"));
    assert!(
        line.contains(&format!("ssl://{address}")),
        "the failure does not name {address}: {line}"
    );
    assert!(line.contains("certificate verify failed"), "{line}");
    eprintln!("wrong CA, after {:?}: {line}", started.elapsed());
}

/// pgsnap's client settings for `broker`, trusting `ca`.
fn tls_config(ca: &std::path::Path) -> KafkaClientConfig {
    KafkaClientConfig::new()
        .with_setting("security.protocol", "SSL")
        .with_setting("ssl.ca.location", ca.display().to_string())
}

/// A Debezium 3.x change event (schemas disabled) of transaction `tx`.
fn event(id: u32, tx: u32, lsn: u64) -> String {
    format!(
        r#"{{"before":null,"after":{{"id":{id}}},"source":{{"version":"3.6.3.Final","connector":"postgresql","name":"pg","ts_ms":1764000000000,"snapshot":"false","db":"app","sequence":"[null,\"{lsn}\"]","schema":"public","table":"items","txId":{tx},"lsn":{lsn},"xmin":null}},"op":"c","ts_ms":1764000000100}}"#
    )
}

/// Produces one event per transaction 700..710 to partition 0 of a new topic, through TLS;
/// returns the topic.
async fn topic_with_events(name: &str) -> String {
    let broker = shared_tls_tansu();
    let topic = unique_topic(name);
    broker.create_topic(&topic, 1);
    let producer = broker.producer();
    for (n, tx) in (700..710u32).enumerate() {
        let value = event(n as u32, tx, 1_000_000 + 100 * n as u64);
        let key = format!(r#"{{"id":{n}}}"#);
        let (_, offset) = producer
            .send(
                &topic,
                Record {
                    partition: Some(0),
                    key: Some(key.as_bytes()),
                    value: Some(value.as_bytes()),
                    ..Record::default()
                },
            )
            .await;
        assert_eq!(offset, n as i64);
    }
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_logs_read_through_tls_with_a_client_config() {
    let broker = shared_tls_tansu();
    let topic = topic_with_events("logs").await;
    let options =
        KafkaLogOptions { client_config: tls_config(broker.ca_cert()), ..Default::default() };
    let logs = KafkaLogs::open_with(&broker.bootstrap(), &topic, &options)
        .await
        .expect("opening the topic through TLS");
    let log = logs.partition(0).expect("partition 0");
    assert_eq!(log.watermarks().await.expect("watermarks through TLS"), (0, 10));
    let records = log.read_from(4, 3).await.expect("reading through TLS");
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_and_watermark_capture_run_through_tls() {
    let broker = shared_tls_tansu();
    let topic = topic_with_events("resolver").await;
    let config = tls_config(broker.ca_cert());
    let topics = vec![topic.clone()];

    let captured =
        KafkaOffsetResolver::capture_high_watermarks_with(&broker.bootstrap(), &topics, &config)
            .await
            .expect("capturing high watermarks through TLS");
    assert_eq!(captured.0[&topic][&0], 10, "{captured:?}");

    // Transactions below 705 are visible in the snapshot: the first post-snapshot event is
    // transaction 705's, at offset 5.
    let snapshot = SnapshotInfo {
        mode: SnapshotMode::Slot,
        name: "00000003-00000002-1".into(),
        lsn: None,
        slot: None,
        slot_temporary: Some(true),
        pg_snapshot: "705:705:".into(),
        taken_at: "2026-01-01T00:00:00.000000Z".into(),
    };
    let resolver = KafkaOffsetResolver::new(broker.bootstrap(), HandoffMode::Running)
        .with_client_config(config);
    let offsets = resolver.resolve(&snapshot, &topics).await.expect("resolving through TLS");
    assert_eq!(offsets.0[&topic][&0], 5, "{offsets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsnap_clients_with_the_wrong_ca_fail_naming_the_broker() {
    let broker = shared_tls_tansu();
    let topic = unique_topic("wrong-ca");
    broker.create_topic(&topic, 1);
    let address = broker.bootstrap();
    let wrong = tls_config(broker.other_ca_cert());

    // The default request timeout (30 s): a TLS failure must end the request long before.
    let options = KafkaLogOptions { client_config: wrong.clone(), ..Default::default() };
    let started = Instant::now();
    let err = KafkaLogs::open_with(&address, &topic, &options)
        .await
        .expect_err("opening a topic with the wrong CA");
    let elapsed = started.elapsed();
    let message = err.to_string();
    eprintln!("KafkaLogs, wrong CA, after {elapsed:?}: {message}");
    assert_tls_failure(&err, &address);
    assert!(elapsed < FAIL_FAST, "a TLS failure took {elapsed:?}");

    let started = Instant::now();
    let err = KafkaOffsetResolver::capture_high_watermarks_with(&address, &[topic], &wrong)
        .await
        .expect_err("capturing watermarks with the wrong CA");
    let elapsed = started.elapsed();
    eprintln!("capture_high_watermarks_with, wrong CA, after {elapsed:?}: {err}");
    assert_tls_failure(&err, &address);
    assert!(elapsed < FAIL_FAST, "a TLS failure took {elapsed:?}");
    let core = pgsnap_core::Error::from(err);
    assert!(!core.is_temporary(), "a TLS failure is not worth retrying: {core}");
}

/// How long a TLS or login failure may take to end a request whose timeout is 30 s.
const FAIL_FAST: Duration = Duration::from_secs(10);

/// `err` is a TLS failure with librdkafka's account, naming `address`.
fn assert_tls_failure(err: &pgsnap_kafka::Error, address: &str) {
    let message = err.to_string();
    assert!(
        matches!(err, pgsnap_kafka::Error::KafkaConnection { failure: ConnectionFailure::Tls, .. }),
        "{err:?}"
    );
    assert!(message.contains(&format!("ssl://{address}")), "does not name {address}: {message}");
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(message.contains("ssl.ca.location"), "no hint: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_scram_over_tls_reaches_the_brokers_scram_exchange() {
    let address = shared_sasl_tls_tansu().bootstrap();
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
        let text = sasl_attempt(mechanism, "SASL SCRAM authentication failed").await;
        // The TLS handshake and the SASL handshake succeeded; the SCRAM exchange ran and the
        // broker knows no such user (tansu 0.6 stores no SCRAM credential here).
        let line = text
            .lines()
            .find(|l| l.contains("SASL SCRAM authentication failed"))
            .unwrap_or_else(|| panic!("{mechanism}: no SCRAM failure reported:\n{text}"));
        assert!(line.contains(&format!("sasl_ssl://{address}")), "{mechanism}: {line}");
        assert!(line.contains("unknown-user"), "{mechanism}: {line}");
        assert!(!text.contains(SASL_PASSWORD), "{mechanism}: the password shows:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_over_tls_is_refused_by_tansu() {
    let address = shared_sasl_tls_tansu().bootstrap();
    let text = sasl_attempt("PLAIN", "SASL PLAIN mechanism handshake failed").await;
    let line = text
        .lines()
        .find(|l| l.contains("SASL PLAIN mechanism handshake failed"))
        .unwrap_or_else(|| panic!("no PLAIN handshake failure reported:\n{text}"));
    assert!(line.contains(&format!("sasl_ssl://{address}")), "{line}");
    assert!(!text.contains(SASL_PASSWORD), "the password shows:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsnap_clients_with_sasl_settings_fail_naming_the_broker_not_the_password() {
    let broker = shared_sasl_tls_tansu();
    let address = broker.bootstrap();
    let config = KafkaClientConfig::new()
        .with_setting("security.protocol", "SASL_SSL")
        .with_setting("ssl.ca.location", broker.ca_cert().display().to_string())
        .with_setting("sasl.mechanism", "SCRAM-SHA-512")
        .with_setting("sasl.username", "pgsnap")
        .with_setting("sasl.password", SASL_PASSWORD);
    let options = KafkaLogOptions { client_config: config, ..Default::default() };
    let started = Instant::now();
    let err = KafkaLogs::open_with(&address, "pg.public.items", &options)
        .await
        .expect_err("no SASL login succeeds on tansu 0.6");
    let elapsed = started.elapsed();
    let message = err.to_string();
    let debug = format!("{err:?}");
    eprintln!("KafkaLogs, SASL SCRAM-SHA-512 as an unknown user, after {elapsed:?}: {message}");
    assert!(
        matches!(
            err,
            pgsnap_kafka::Error::KafkaConnection { failure: ConnectionFailure::Authentication, .. }
        ),
        "{debug}"
    );
    assert!(message.contains(&format!("sasl_ssl://{address}")), "does not name it: {message}");
    assert!(message.contains("SASL SCRAM authentication failed"), "{message}");
    assert!(message.contains("sasl.username"), "no hint: {message}");
    assert!(!message.contains(SASL_PASSWORD) && !debug.contains(SASL_PASSWORD), "{debug}");
    assert!(elapsed < FAIL_FAST, "a login failure took {elapsed:?}");
    assert!(!pgsnap_core::Error::from(err).is_temporary());
}
