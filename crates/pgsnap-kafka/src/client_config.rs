//! [`KafkaClientConfig`]: the librdkafka settings (TLS, SASL, timeouts, ...) of every Kafka
//! client pgsnap opens, and of the rendered Routine Load.
//!
//! A config is a map of [librdkafka configuration
//! properties](https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)
//! (`security.protocol`, `ssl.ca.location`, `sasl.mechanism`, `sasl.username`,
//! `sasl.password`, ...) to their values. It is built in code ([`KafkaClientConfig::set`]) or
//! read from a Java properties file as the Kafka command line tools read theirs
//! ([`KafkaClientConfig::from_properties_file`]).
//!
//! # Secrets
//!
//! A key is a secret when it contains `password` or `secret`, or is `ssl.key.pem`,
//! `sasl.jaas.config` or `sasl.oauthbearer.config` ([`is_secret_key`]). Secret values never
//! leave the config except into the librdkafka client: `Debug`,
//! [`KafkaClientConfig::redacted`] (the handoff report's `kafka_config`) and
//! [`Serialize`] show [`REDACTED`] instead, error messages name the key and
//! never the value, and the rendered Routine Load holds a placeholder
//! ([`crate::render::routine_load`]). Only [`KafkaClientConfig::iter`] and
//! [`KafkaClientConfig::get`] return them.
//!
//! # What is refused
//!
//! [`KafkaClientConfig::validate`] (called by every client before it is created, and by the
//! renderer) refuses, by name:
//!
//! - the keys pgsnap sets itself for correctness ([`RESERVED_KEYS`]): `bootstrap.servers`
//!   (and its alias `metadata.broker.list`; the brokers are an argument of their own),
//!   `group.id`, `enable.auto.commit`, `enable.auto.offset.store`, `enable.partition.eof`,
//!   `isolation.level`, `auto.offset.reset`, `allow.auto.create.topics`, `fetch.wait.max.ms`.
//!   They are refused rather than silently overridden: a setting that would not take effect
//!   is a mistake the user should see (pgsnap's clients never join a group, never commit,
//!   read only committed records and never create topics);
//! - the SASL mechanisms `GSSAPI` (Kerberos) and `OAUTHBEARER` (and OIDC, which is
//!   `OAUTHBEARER`): they cannot be tested here (no KDC, no identity provider). `PLAIN`,
//!   `SCRAM-SHA-256` and `SCRAM-SHA-512` are accepted ([`SASL_MECHANISMS`]); any other
//!   mechanism is refused too;
//! - a `SASL_PLAINTEXT` / `SASL_SSL` `security.protocol` without `sasl.mechanism`
//!   (librdkafka's default mechanism is `GSSAPI`);
//! - `sasl.mechanism` and its alias `sasl.mechanisms` together, empty keys, and NUL bytes.
//!
//! Anything else passes to librdkafka unchecked; a key or value librdkafka refuses when the
//! client is created is an [`Error::KafkaConfig`] naming the key (a configuration error, never
//! retried).
//!
//! # Java properties
//!
//! [`KafkaClientConfig::from_properties`] reads the format of `java.util.Properties`, as the
//! Kafka tools' `--command-config` / `--consumer.config` files are read: `key=value`,
//! `key: value` or `key value`; `#` and `!` comment lines; blank lines; a trailing backslash
//! continues the line; `\t`, `\n`, `\r`, `\f`, `\uXXXX` and `\<char>` escapes. The parsing
//! is the maintained [`java-properties`](https://docs.rs/java-properties) crate (already used
//! for Debezium's connector configs), which follows `java.util.Properties` and reports line
//! numbers; pgsnap adds no parser of its own. A file is read as UTF-8 when it is valid UTF-8,
//! else as ISO-8859-1 (what `java.util.Properties.load(InputStream)` reads). A key given twice
//! keeps its last value, as in Java.
//!
//! # Example
//!
//! ```
//! use pgsnap_kafka::KafkaClientConfig;
//!
//! let config = KafkaClientConfig::from_properties(
//!     "# the company cluster\n\
//!      security.protocol=SASL_SSL\n\
//!      ssl.ca.location=/etc/kafka/ca.pem\n\
//!      sasl.mechanism: SCRAM-SHA-512\n\
//!      sasl.username=pgsnap\n\
//!      sasl.password=s3cr3t\n",
//! )?;
//! assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
//! // Secrets never show.
//! assert_eq!(config.redacted()["sasl.password"], "***");
//! assert!(!format!("{config:?}").contains("s3cr3t"));
//! // Refused by name.
//! let kerberos = KafkaClientConfig::new().with_setting("sasl.mechanism", "GSSAPI");
//! assert!(kerberos.validate().unwrap_err().to_string().contains("GSSAPI"));
//! # Ok::<(), pgsnap_kafka::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// What [`KafkaClientConfig::redacted`], `Debug` and `Serialize` show instead of a secret.
pub const REDACTED: &str = "***";

/// The keys pgsnap's clients set themselves, and why: refused by
/// [`KafkaClientConfig::validate`].
pub const RESERVED_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "the brokers are given on their own (the brokers argument)"),
    ("metadata.broker.list", "the brokers are given on their own (the brokers argument)"),
    ("group.id", "pgsnap's consumers use a throwaway group they never join"),
    ("enable.auto.commit", "pgsnap never commits offsets"),
    ("enable.auto.offset.store", "pgsnap never stores offsets"),
    ("enable.partition.eof", "pgsnap's reads end at the partition end"),
    (
        "isolation.level",
        "pgsnap reads only committed records (read_committed), so the high watermark is the \
         last stable offset",
    ),
    ("auto.offset.reset", "a read below the low watermark must fail, not jump (error)"),
    ("allow.auto.create.topics", "pgsnap never creates topics"),
    ("fetch.wait.max.ms", "pgsnap's short reads keep the broker's fetch wait short"),
];

/// The SASL mechanisms pgsnap accepts (`sasl.mechanism` / `sasl.mechanisms`).
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Whether `key` holds a secret: it contains `password` or `secret` (any case), or is
/// `ssl.key.pem`, `sasl.jaas.config` or `sasl.oauthbearer.config`.
///
/// ```
/// use pgsnap_kafka::client_config::is_secret_key;
/// assert!(is_secret_key("sasl.password"));
/// assert!(is_secret_key("ssl.keystore.password"));
/// assert!(is_secret_key("sasl.oauthbearer.client.secret"));
/// assert!(is_secret_key("ssl.key.pem"));
/// assert!(!is_secret_key("sasl.username"));
/// assert!(!is_secret_key("ssl.ca.location"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || matches!(k.as_str(), "ssl.key.pem" | "sasl.jaas.config" | "sasl.oauthbearer.config")
}

/// librdkafka client settings: key → value, applied to every Kafka client pgsnap opens
/// (before pgsnap's own settings) and mapped into the rendered Routine Load. See the
/// [module docs](self) for the secrets, the refusals and the file format.
///
/// # Example
///
/// ```
/// use pgsnap_kafka::KafkaClientConfig;
///
/// let mut config = KafkaClientConfig::new();
/// config.set("security.protocol", "SSL").set("ssl.ca.location", "/etc/kafka/ca.pem");
/// config.validate()?;
/// assert_eq!(config.len(), 2);
/// # Ok::<(), pgsnap_kafka::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaClientConfig {
    settings: BTreeMap<String, String>,
}

impl KafkaClientConfig {
    /// No settings: librdkafka's defaults (plaintext, no authentication).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (a later value replaces an earlier one). Checked by
    /// [`validate`](Self::validate), not here.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// [`set`](Self::set), by value.
    ///
    /// ```
    /// use pgsnap_kafka::KafkaClientConfig;
    /// let config = KafkaClientConfig::new()
    ///     .with_setting("security.protocol", "SASL_SSL")
    ///     .with_setting("sasl.mechanism", "PLAIN");
    /// assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
    /// ```
    pub fn with_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets every setting of `other`, replacing the same keys here (e.g. command line
    /// settings over a file's).
    pub fn extend(&mut self, other: &KafkaClientConfig) -> &mut Self {
        for (k, v) in &other.settings {
            self.settings.insert(k.clone(), v.clone());
        }
        self
    }

    /// The value of `key`, secrets included.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// Whether there are no settings.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// How many settings there are.
    pub fn len(&self) -> usize {
        self.settings.len()
    }

    /// The settings in key order, **secrets included**: for a client of your own. Never log
    /// them; use [`redacted`](Self::redacted) for that.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The settings with every secret's value replaced by [`REDACTED`] (`"***"`): what
    /// reports and logs may show.
    ///
    /// ```
    /// use pgsnap_kafka::KafkaClientConfig;
    /// let config = KafkaClientConfig::new()
    ///     .with_setting("sasl.username", "pgsnap")
    ///     .with_setting("sasl.password", "s3cr3t");
    /// let shown = config.redacted();
    /// assert_eq!(shown["sasl.username"], "pgsnap");
    /// assert_eq!(shown["sasl.password"], "***");
    /// ```
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.settings
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k) { REDACTED.to_owned() } else { v.clone() };
                (k.clone(), shown)
            })
            .collect()
    }

    /// Reads Java properties text (see the [module docs](self#java-properties)) and
    /// [validates](Self::validate) the settings.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaConfig`] naming the line: malformed escapes, a refused key or value.
    pub fn from_properties(text: &str) -> Result<Self> {
        parse_properties(text.as_bytes(), encoding_rs::UTF_8, None)
    }

    /// Reads a Java properties file (see the [module docs](self#java-properties)) and
    /// [validates](Self::validate) the settings.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaConfig`] naming the file (and the line): the file cannot be read, a
    /// malformed escape, a refused key or value.
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::KafkaConfig {
            key: None,
            file: Some(path.to_path_buf()),
            line: None,
            reason: e.to_string(),
        })?;
        // Java's Properties.load(InputStream) reads ISO-8859-1; a UTF-8 file (what most
        // editors write) is read as UTF-8.
        let encoding = if std::str::from_utf8(&bytes).is_ok() {
            encoding_rs::UTF_8
        } else {
            encoding_rs::WINDOWS_1252
        };
        parse_properties(&bytes, encoding, Some(path))
    }

    /// Checks the settings: no key pgsnap sets itself ([`RESERVED_KEYS`]), a supported SASL
    /// mechanism ([`SASL_MECHANISMS`]; `GSSAPI` and `OAUTHBEARER` are refused by name), given
    /// whenever `security.protocol` is `SASL_*` (librdkafka would default to `GSSAPI`), not
    /// both `sasl.mechanism` and `sasl.mechanisms`, no empty key, no NUL byte.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaConfig`] naming the key (never the value).
    pub fn validate(&self) -> Result<()> {
        for (k, v) in &self.settings {
            check_setting(k, v).map_err(|reason| Error::KafkaConfig {
                key: Some(k.clone()),
                file: None,
                line: None,
                reason,
            })?;
        }
        if self.settings.contains_key("sasl.mechanism")
            && self.settings.contains_key("sasl.mechanisms")
        {
            return Err(Error::KafkaConfig {
                key: Some("sasl.mechanisms".into()),
                file: None,
                line: None,
                reason: "sasl.mechanism is set too: they are the same setting (aliases); give one"
                    .into(),
            });
        }
        let sasl = self
            .get("security.protocol")
            .is_some_and(|p| p.trim().to_ascii_lowercase().starts_with("sasl_"));
        if sasl && self.get("sasl.mechanism").or(self.get("sasl.mechanisms")).is_none() {
            return Err(Error::KafkaConfig {
                key: Some("security.protocol".into()),
                file: None,
                line: None,
                reason: "a SASL protocol without sasl.mechanism: librdkafka would use GSSAPI \
                         (Kerberos), which pgsnap does not support; set sasl.mechanism to \
                         PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                    .into(),
            });
        }
        Ok(())
    }

    /// [Validates](Self::validate) the settings and sets them on an rdkafka client config.
    /// pgsnap's clients call it on a fresh `ClientConfig`, then set their own keys
    /// ([`RESERVED_KEYS`]) after it.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    pub fn apply_to(&self, config: &mut rdkafka::ClientConfig) -> Result<()> {
        self.validate()?;
        for (k, v) in &self.settings {
            config.set(k, v);
        }
        Ok(())
    }

    /// A librdkafka refusal of one of these settings (`KafkaError::ClientConfig` when the
    /// client is created) as a configuration error naming the key, the value redacted when
    /// it is a secret.
    #[cfg(feature = "rdkafka")]
    pub(crate) fn refusal(key: &str, value: &str, description: &str) -> Error {
        let mut reason = description.to_owned();
        if is_secret_key(key) && !value.is_empty() {
            reason = reason.replace(value, REDACTED);
        }
        Error::KafkaConfig {
            key: Some(key.to_owned()),
            file: None,
            line: None,
            reason: format!("librdkafka refused it: {reason}"),
        }
    }
}

/// Why `key = value` is refused, if it is.
fn check_setting(key: &str, value: &str) -> std::result::Result<(), String> {
    if key.trim().is_empty() {
        return Err("the key is empty".into());
    }
    if key.contains('\0') || value.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the key contains whitespace or a control character".into());
    }
    if let Some((_, why)) = RESERVED_KEYS.iter().find(|(k, _)| *k == key) {
        return Err(format!("pgsnap sets it itself: {why}"));
    }
    if key == "sasl.mechanism" || key == "sasl.mechanisms" {
        let m = value.trim();
        let upper = m.to_ascii_uppercase();
        if upper == "GSSAPI" {
            return Err("SASL mechanism GSSAPI (Kerberos) is not supported: pgsnap cannot test \
                        it (no Kerberos KDC); use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                .into());
        }
        if upper == "OAUTHBEARER" {
            return Err("SASL mechanism OAUTHBEARER (OAuth/OIDC) is not supported: pgsnap \
                        cannot test it (no identity provider); use PLAIN, SCRAM-SHA-256 or \
                        SCRAM-SHA-512"
                .into());
        }
        if !SASL_MECHANISMS.contains(&m) {
            return Err(format!(
                "unknown SASL mechanism {m:?}: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ));
        }
    }
    Ok(())
}

/// Parses Java properties bytes in `encoding`; errors name `file` (if any) and the line.
fn parse_properties(
    bytes: &[u8],
    encoding: &'static encoding_rs::Encoding,
    file: Option<&Path>,
) -> Result<KafkaClientConfig> {
    let file: Option<PathBuf> = file.map(Path::to_path_buf);
    let mut config = KafkaClientConfig::new();
    for line in java_properties::PropertiesIter::new_with_encoding(bytes, encoding) {
        let line = line.map_err(|e| {
            // The crate's Display appends " (line_number = N)"; the line is ours to show.
            let text = e.to_string();
            let reason = text.split(" (line_number").next().unwrap_or(&text).to_owned();
            Error::KafkaConfig { key: None, file: file.clone(), line: e.line_number(), reason }
        })?;
        let number = line.line_number();
        if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
            check_setting(&key, &value).map_err(|reason| Error::KafkaConfig {
                key: Some(key.clone()),
                file: file.clone(),
                line: Some(number),
                reason,
            })?;
            config.settings.insert(key, value);
        }
    }
    config.validate().map_err(|e| match e {
        Error::KafkaConfig { key, line, reason, .. } => {
            Error::KafkaConfig { key, file: file.clone(), line, reason }
        }
        other => other,
    })?;
    Ok(config)
}

/// Secrets show as [`REDACTED`].
impl std::fmt::Debug for KafkaClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

/// The [redacted](KafkaClientConfig::redacted) map: secrets are [`REDACTED`].
impl Serialize for KafkaClientConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for KafkaClientConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut config = KafkaClientConfig::new();
        for (k, v) in iter {
            config.set(k, v);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_as_the_kafka_tools_read_them() {
        let text = "# comment\n\
                    ! another comment\n\
                    \n\
                    security.protocol=SASL_SSL\n\
                    sasl.mechanism : SCRAM-SHA-256\n\
                    sasl.username pgsnap\n\
                    ssl.ca.location = /etc/kafka/ca\\\n\
                    \x20   .pem\n\
                    sasl.password=p\\u00e4ss\\=word\\\\\n\
                    client.id=first\n\
                    client.id=second\n\
                    socket.timeout.ms=\n";
        let c = KafkaClientConfig::from_properties(text).unwrap();
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(c.get("sasl.username"), Some("pgsnap"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"), "continuation");
        assert_eq!(c.get("sasl.password"), Some("päss=word\\"), "escapes");
        assert_eq!(c.get("client.id"), Some("second"), "the last value wins");
        assert_eq!(c.get("socket.timeout.ms"), Some(""));
        assert_eq!(c.len(), 7);
        // UTF-8 text stays UTF-8.
        let c = KafkaClientConfig::from_properties("sasl.username=jürgen").unwrap();
        assert_eq!(c.get("sasl.username"), Some("jürgen"));
    }

    #[test]
    fn files_name_the_file_and_the_line() {
        let dir = std::env::temp_dir().join(format!("pgsnap-kcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.properties");
        std::fs::write(&path, "security.protocol=SSL\n\n# x\ngroup.id=mine\n").unwrap();
        let err = KafkaClientConfig::from_properties_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("client.properties line 4"), "{text}");
        assert!(text.contains("\"group.id\"") && text.contains("pgsnap sets it itself"), "{text}");
        std::fs::write(&path, "a=1\nsasl.password=\\uZZZZ\n").unwrap();
        let text = KafkaClientConfig::from_properties_file(&path).unwrap_err().to_string();
        assert!(text.contains("client.properties line 2") && text.contains("\\uxxxx"), "{text}");
        // ISO-8859-1, as Java reads it, when the file is not UTF-8.
        std::fs::write(&path, b"sasl.username=j\xfcrgen\n").unwrap();
        let c = KafkaClientConfig::from_properties_file(&path).unwrap();
        assert_eq!(c.get("sasl.username"), Some("jürgen"));
        let missing = dir.join("nope.properties");
        let text = KafkaClientConfig::from_properties_file(&missing).unwrap_err().to_string();
        assert!(text.contains("nope.properties"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_never_show() {
        let c: KafkaClientConfig = [
            ("sasl.username", "pgsnap"),
            ("sasl.password", "hunter2-sasl"),
            ("ssl.key.password", "hunter2-key"),
            ("ssl.keystore.password", "hunter2-ks"),
            ("ssl.truststore.password", "hunter2-ts"),
            ("sasl.oauthbearer.client.secret", "hunter2-oidc"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----hunter2"),
            ("ssl.ca.location", "/etc/ca.pem"),
        ]
        .into_iter()
        .collect();
        let debug = format!("{c:?} {c:#?}");
        let json = serde_json::to_string(&c).unwrap();
        for shown in [&debug, &json] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("pgsnap") && shown.contains("/etc/ca.pem"), "{shown}");
        }
        let r = c.redacted();
        assert_eq!(r.len(), 8);
        assert_eq!(r["sasl.password"], REDACTED);
        assert_eq!(r["ssl.key.pem"], REDACTED);
        assert_eq!(r["sasl.username"], "pgsnap");
        assert_eq!(json, serde_json::to_string(&r).unwrap());
    }

    #[test]
    fn refusals_by_name() {
        for key in ["bootstrap.servers", "group.id", "enable.auto.commit", "isolation.level"] {
            let e = KafkaClientConfig::new().with_setting(key, "x").validate().unwrap_err();
            assert!(e.to_string().contains(&format!("{key:?}")), "{e}");
            assert!(matches!(&e, Error::KafkaConfig { key: Some(k), .. } if k == key));
        }
        for (m, name) in [("GSSAPI", "Kerberos"), ("oauthbearer", "OAUTHBEARER")] {
            for key in ["sasl.mechanism", "sasl.mechanisms"] {
                let e = KafkaClientConfig::new().with_setting(key, m).validate().unwrap_err();
                assert!(e.to_string().contains(name), "{e}");
            }
        }
        let e = KafkaClientConfig::new()
            .with_setting("sasl.mechanism", "DIGEST-MD5")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("unknown SASL mechanism"), "{e}");
        for m in SASL_MECHANISMS {
            KafkaClientConfig::new().with_setting("sasl.mechanism", *m).validate().unwrap();
        }
        let no_mechanism = KafkaClientConfig::new().with_setting("security.protocol", "sasl_ssl");
        let e = no_mechanism.validate().unwrap_err().to_string();
        assert!(e.contains("GSSAPI") && e.contains("sasl.mechanism"), "{e}");
        let both = KafkaClientConfig::new()
            .with_setting("sasl.mechanism", "PLAIN")
            .with_setting("sasl.mechanisms", "PLAIN");
        assert!(both.validate().is_err());
        let nul = KafkaClientConfig::new().with_setting("sasl.password", "a\0b");
        let e = nul.validate().unwrap_err().to_string();
        assert!(e.contains("NUL") && !e.contains("a\0b"), "{e}");
        // A refused file line names the line.
        let e = KafkaClientConfig::from_properties("a=1\nsasl.mechanism=GSSAPI\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        // Errors are configuration errors.
        let core = pgsnap_core::Error::from(e);
        assert_eq!(core.kind(), pgsnap_core::ErrorKind::Config);
    }

    #[cfg(feature = "rdkafka")]
    #[test]
    fn librdkafka_refusals_name_the_key_and_hide_secrets() {
        let e = KafkaClientConfig::refusal(
            "ssl.key.password",
            "hunter2",
            "Invalid value \"hunter2\" for configuration property \"ssl.key.password\"",
        );
        let text = e.to_string();
        assert!(text.contains("ssl.key.password") && !text.contains("hunter2"), "{text}");
        let mut rd = rdkafka::ClientConfig::new();
        KafkaClientConfig::new().with_setting("client.id", "x").apply_to(&mut rd).unwrap();
        assert_eq!(rd.get("client.id"), Some("x"));
        assert!(KafkaClientConfig::new().with_setting("group.id", "g").apply_to(&mut rd).is_err());
    }
}
