//! [`KafkaOffsetResolver`]: the [`OffsetResolver`] of `pgsnap-core` on Kafka topics written
//! by Debezium, in the three handoff modes.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pgsnap_core::{OffsetMap, OffsetResolver, SnapshotInfo};

use crate::client_config::KafkaClientConfig;
use crate::error::{Error, Result};
use crate::kafka::{KafkaLogOptions, KafkaLogs};
use crate::resolve::{
    PartitionLog, Resolution, ScanOptions, resolve_partition_time, resolve_running, slot_first,
};
use crate::xid::PgSnapshot;

/// How the change log relates to the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandoffMode {
    /// pgsnap created the slot and Debezium streams from it with `snapshot.mode=no_data`:
    /// every record written after the connector started is post-snapshot, so the answer is
    /// the high watermarks captured before it started
    /// ([`KafkaOffsetResolver::capture_high_watermarks`]).
    SlotFirst {
        /// The high watermarks read before the connector started.
        recorded: OffsetMap,
    },
    /// Debezium already runs on its own slot; the snapshot came from a temporary slot with
    /// an exported snapshot. Per partition: the first event whose transaction is invisible
    /// in the snapshot, by binary search, confirmed by a bounded scan.
    Running,
    /// A lower bound from the broker's time index (the snapshot's server time minus `skew`),
    /// then a forward scan with the running mode's test.
    Time {
        /// Clock skew margin subtracted from the snapshot time.
        skew: Duration,
    },
}

/// Resolves, per topic and partition, the first offset after a pgsnap snapshot.
///
/// Every client it opens uses the [`KafkaClientConfig`] of
/// [`with_client_config`](Self::with_client_config) (TLS, SASL, ...).
///
/// # Example
/// ```no_run
/// # async fn demo(snapshot: pgsnap_core::SnapshotInfo) -> Result<(), Box<dyn std::error::Error>> {
/// use pgsnap_core::OffsetResolver;
/// use pgsnap_kafka::resolver::{HandoffMode, KafkaOffsetResolver};
///
/// use pgsnap_kafka::KafkaClientConfig;
///
/// let tls = KafkaClientConfig::new()
///     .with_setting("security.protocol", "SSL")
///     .with_setting("ssl.ca.location", "/etc/kafka/ca.pem");
/// let resolver =
///     KafkaOffsetResolver::new("kafka1:9093", HandoffMode::Running).with_client_config(tls);
/// let offsets = resolver.resolve(&snapshot, &["pg.public.orders".to_owned()]).await?;
/// println!("{}", serde_json::to_string(&offsets)?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KafkaOffsetResolver {
    brokers: String,
    mode: HandoffMode,
    options: ScanOptions,
    client_config: KafkaClientConfig,
    last: Mutex<Option<Resolution>>,
}

impl KafkaOffsetResolver {
    /// A resolver reading from `brokers` (`host:port,...`) in `mode`.
    pub fn new(brokers: impl Into<String>, mode: HandoffMode) -> Self {
        Self {
            brokers: brokers.into(),
            mode,
            options: ScanOptions::default(),
            client_config: KafkaClientConfig::new(),
            last: Mutex::new(None),
        }
    }

    /// Sets the librdkafka settings of every client the resolver opens (TLS, SASL, ...).
    /// Default: none (plaintext). Checked when the first client is created: a refused
    /// setting fails [`resolve`](OffsetResolver::resolve) with a configuration error.
    pub fn with_client_config(mut self, config: KafkaClientConfig) -> Self {
        self.client_config = config;
        self
    }

    /// The librdkafka settings of the resolver's clients.
    pub fn client_config(&self) -> &KafkaClientConfig {
        &self.client_config
    }

    /// Sets the scan options (batch size, confirmation window, scan limit).
    pub fn with_scan_options(mut self, options: ScanOptions) -> Self {
        self.options = options;
        self
    }

    /// The per-partition detail of the last [`resolve`](OffsetResolver::resolve): low and
    /// high watermarks, broker reads, warnings.
    pub fn last_resolution(&self) -> Option<Resolution> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the high watermark of every partition of `topics`: call it before the connector
    /// starts, for [`HandoffMode::SlotFirst`]. Topics that do not exist yet are left out
    /// (they start at 0). Plaintext, no client settings: see
    /// [`capture_high_watermarks_with`](Self::capture_high_watermarks_with).
    ///
    /// # Errors
    /// When a broker or an existing topic cannot be read (see [`Error::is_temporary`] for
    /// the failures worth retrying).
    pub async fn capture_high_watermarks(brokers: &str, topics: &[String]) -> Result<OffsetMap> {
        Self::capture_high_watermarks_with(brokers, topics, &KafkaClientConfig::new()).await
    }

    /// [`capture_high_watermarks`](Self::capture_high_watermarks) with the librdkafka
    /// settings `config` (TLS, SASL, ...): the same settings as the resolver's
    /// ([`with_client_config`](Self::with_client_config)).
    ///
    /// # Errors
    /// As [`capture_high_watermarks`](Self::capture_high_watermarks), and
    /// [`Error::KafkaConfig`] for a setting pgsnap or librdkafka refuses.
    pub async fn capture_high_watermarks_with(
        brokers: &str,
        topics: &[String],
        config: &KafkaClientConfig,
    ) -> Result<OffsetMap> {
        let options = KafkaLogOptions { client_config: config.clone(), ..Default::default() };
        let mut out = OffsetMap::default();
        for topic in topics {
            let logs = match KafkaLogs::open_with(brokers, topic, &options).await {
                Ok(l) => l,
                Err(Error::NoSuchTopic { .. }) => continue,
                Err(e) => return Err(e),
            };
            let refs: Vec<&dyn PartitionLog> =
                logs.logs().iter().map(|l| l as &dyn PartitionLog).collect();
            let map = crate::resolve::capture_high_watermarks(&refs).await?;
            for (t, parts) in map.0 {
                for (p, o) in parts {
                    out.insert(t.clone(), p, o);
                }
            }
        }
        Ok(out)
    }
}

/// Milliseconds since the Unix epoch of pgsnap's `taken_at` (`YYYY-MM-DDTHH:MM:SS[.f]Z`,
/// UTC).
pub fn taken_at_ms(taken_at: &str) -> Option<i64> {
    let s = taken_at.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let ms = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
        digits.parse::<i64>().ok()?
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

#[async_trait]
impl OffsetResolver for KafkaOffsetResolver {
    async fn resolve(
        &self,
        snapshot: &SnapshotInfo,
        topics: &[String],
    ) -> pgsnap_core::Result<OffsetMap> {
        let mut all = Resolution::default();
        let pg = || snapshot.pg_snapshot.parse::<PgSnapshot>();
        let open_options =
            KafkaLogOptions { client_config: self.client_config.clone(), ..Default::default() };
        for topic in topics {
            let logs = KafkaLogs::open_with(&self.brokers, topic, &open_options).await?;
            let refs: Vec<&dyn PartitionLog> =
                logs.logs().iter().map(|l| l as &dyn PartitionLog).collect();
            let r = match &self.mode {
                HandoffMode::SlotFirst { recorded } => slot_first(recorded, &refs).await?,
                HandoffMode::Running => resolve_running(&refs, &pg()?, &self.options).await?,
                HandoffMode::Time { skew } => {
                    let at = taken_at_ms(&snapshot.taken_at)
                        .ok_or_else(|| Error::TakenAt { taken_at: snapshot.taken_at.clone() })?;
                    let from = at - i64::try_from(skew.as_millis()).unwrap_or(i64::MAX);
                    let snap = pg()?;
                    let mut r = Resolution::default();
                    for log in logs.logs() {
                        let p = resolve_partition_time(log, &snap, &self.options, || async move {
                            log.offset_for_time(from)
                                .await
                                .map_err(|e| Box::new(e) as pgsnap_core::BoxError)
                        })
                        .await?;
                        r.push(p);
                    }
                    r
                }
            };
            for p in r.partitions {
                for w in &p.warnings {
                    tracing::warn!(topic = %p.topic, partition = p.partition, "{w}");
                }
                all.push(p);
            }
        }
        let offsets = all.offsets.clone();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(all);
        Ok(offsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_config_reaches_every_client() {
        let bad = KafkaClientConfig::new().with_setting("isolation.level", "read_uncommitted");
        let topics = ["pg.public.t".to_owned()];
        let err = KafkaOffsetResolver::capture_high_watermarks_with("127.0.0.1:1", &topics, &bad)
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::KafkaConfig { key: Some(k), .. } if k == "isolation.level"));
        let resolver = KafkaOffsetResolver::new("127.0.0.1:1", HandoffMode::Running)
            .with_client_config(bad.clone());
        assert_eq!(resolver.client_config(), &bad);
        let snapshot = pgsnap_core::SnapshotInfo {
            mode: pgsnap_core::SnapshotMode::Slot,
            name: "00000003-00000002-1".into(),
            lsn: None,
            slot: None,
            slot_temporary: None,
            pg_snapshot: "10:10:".into(),
            taken_at: "2026-01-01T00:00:00Z".into(),
        };
        let err = resolver.resolve(&snapshot, &topics).await.unwrap_err();
        assert_eq!(err.kind(), pgsnap_core::ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("isolation.level"), "{err}");
    }

    #[test]
    fn taken_at_parses_to_epoch_millis() {
        assert_eq!(taken_at_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(taken_at_ms("2026-11-25T10:00:00.123456Z"), Some(1_795_600_800_123));
        assert_eq!(taken_at_ms("2000-02-29T23:59:59.9Z"), Some(951_868_799_900));
        assert_eq!(taken_at_ms("2026-11-25 10:00:00"), None);
        assert_eq!(taken_at_ms("2026-13-01T00:00:00Z"), None);
    }
}
