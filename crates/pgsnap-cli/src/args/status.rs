//! `pgsnap status`: the flags, and the [`StatusJob`] they describe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgsnap::core::Lsn;
use pgsnap::kafka::KafkaClientConfig;
use pgsnap::kafka::client_config::is_secret_key;
use pgsnap::kafka::connect::ConnectClient;
use pgsnap::starrocks::StarRocksSinkBuilder;
use pgsnap::{Cutover, StatusJob};

use super::{SourceArgs, UsageError};

/// How often `--until-caught-up` checks without `--watch`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// `pgsnap status`: how far the CDC after a handoff has come, per table and overall.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "How far the CDC after a handoff has come: Routine Loads against Kafka's high watermarks, the slot, the connector, and whether it is caught up for cutover."
)]
pub struct StatusCmd {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub source: SourceArgs,
    /// The handoff's state directory (its --out): the manifest with the Routine Loads that
    /// `handoff --create-routine-loads` created.
    #[arg(long)]
    pub state: PathBuf,
    /// StarRocks FE HTTP address, e.g. http://fe1:8030 (the MySQL port defaults to its host, port 9030).
    #[arg(long, required = true)]
    pub fe: Vec<String>,
    /// The FE's MySQL-protocol address (default: the first FE's host, port 9030).
    #[arg(long)]
    pub fe_sql: Option<String>,
    /// StarRocks user.
    #[arg(long, default_value = "root")]
    pub user: String,
    /// Name of the environment variable that holds the StarRocks password (default: empty password).
    #[arg(long)]
    pub password_env: Option<String>,
    /// StarRocks database of the Routine Loads (default: the one the handoff recorded).
    #[arg(long)]
    pub database: Option<String>,
    /// PEM file of CA certificates to trust for an https FE address.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cdc: CdcArgs,
    /// Check again until caught up (with a cutover LSN: caught up for cutover; exit 0), or
    /// --timeout passes (exit 6). A paused or failed job ends it at once (exit 1): waiting
    /// cannot fix it.
    #[arg(long)]
    pub until_caught_up: bool,
    /// With --until-caught-up: seconds to wait in all.
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "until_caught_up")]
    pub timeout: u64,
    /// Check every SECS seconds: a live table redrawn on a terminal (plain lines otherwise);
    /// with --json one object per line (NDJSON). Ends with Ctrl-C, or with --until-caught-up.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub watch: Option<u64>,
    /// Print the report as one JSON object on stdout (with --watch: one object per line).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub metrics: super::MetricsArgs,
}

/// The flags that locate the CDC of a handoff (Kafka, Kafka Connect, the slot) and the
/// cutover point: shared by `status` and `verify --state`.
#[derive(Debug, Clone, clap::Args)]
pub struct CdcArgs {
    /// Kafka bootstrap brokers (default: the ones the handoff recorded).
    #[arg(long)]
    pub brokers: Option<String>,
    /// A librdkafka setting for the Kafka clients (as for handoff); repeatable, overrides
    /// --kafka-config-file. Secrets are refused here: put them in --kafka-config-file.
    #[arg(long, value_name = "KEY=VALUE")]
    pub kafka_config: Vec<String>,
    /// Java properties file of librdkafka settings (TLS, SASL; the place for secrets).
    #[arg(long, value_name = "PATH")]
    pub kafka_config_file: Option<PathBuf>,
    /// Kafka Connect REST URL: the connector's state, and its processed position (lsn_proc of
    /// its offsets) for the cutover rule instead of the slot's confirmed_flush_lsn.
    #[arg(long)]
    pub connect_url: Option<String>,
    /// CA certificates (PEM) to trust for an https:// --connect-url.
    #[arg(long, value_name = "PATH", requires = "connect_url")]
    pub connect_ca_file: Option<PathBuf>,
    /// Kafka Connect basic-auth user (its password: --connect-password-env).
    #[arg(long, value_name = "USER", requires_all = ["connect_url", "connect_password_env"])]
    pub connect_user: Option<String>,
    /// Name of the environment variable that holds the --connect-user password.
    #[arg(long, value_name = "VAR", requires = "connect_user")]
    pub connect_password_env: Option<String>,
    /// The Debezium connector's name (default: the one the handoff recorded).
    #[arg(long, requires = "connect_url")]
    pub connector: Option<String>,
    /// The replication slot to report (default: the handoff's permanent slot; in running mode
    /// name the connector's own slot).
    #[arg(long)]
    pub slot: Option<String>,
    /// The cutover LSN T (X/Y), read after the application stopped writing: caught up for
    /// cutover needs the connector's position at or past T.
    #[arg(long, value_name = "LSN", value_parser = parse_lsn, conflicts_with = "writes_stopped")]
    pub cutover_lsn: Option<Lsn>,
    /// The application has stopped writing: take T = the end of the WAL now (pg_current_wal_insert_lsn()). Stop the writes
    /// FIRST; a T read while writes go on is not a cutover point.
    #[arg(long)]
    pub writes_stopped: bool,
}

impl CdcArgs {
    /// `job` with these flags: Kafka client settings, brokers, Kafka Connect, connector, slot
    /// and the cutover point.
    ///
    /// # Errors
    /// `--connect-password-env` naming an unset variable, a bad `--connect-url` or
    /// `--connect-ca-file`, a bad `--kafka-config` or `--kafka-config-file`.
    pub fn apply(&self, job: StatusJob) -> Result<StatusJob, UsageError> {
        let mut job = job
            .with_kafka_config(kafka_client_config(
                self.kafka_config_file.as_deref(),
                &self.kafka_config,
            )?)
            .with_cutover(match (self.cutover_lsn, self.writes_stopped) {
                (Some(t), _) => Cutover::Lsn(t),
                (None, true) => Cutover::TakeNow,
                (None, false) => Cutover::None,
            });
        if let Some(b) = &self.brokers {
            job = job.with_brokers(b.clone());
        }
        if let Some(url) = &self.connect_url {
            job = job.with_connect(connect_client(
                url,
                self.connect_ca_file.as_deref(),
                self.connect_user.as_deref(),
                self.connect_password_env.as_deref(),
            )?);
        }
        if let Some(name) = &self.connector {
            job = job.with_connector(name.clone());
        }
        if let Some(slot) = &self.slot {
            job = job.with_slot(slot.clone());
        }
        Ok(job)
    }

    /// Whether any flag was given (`verify` needs `--state` for them).
    pub fn any(&self) -> bool {
        self.brokers.is_some()
            || !self.kafka_config.is_empty()
            || self.kafka_config_file.is_some()
            || self.connect_url.is_some()
            || self.slot.is_some()
            || self.cutover_lsn.is_some()
            || self.writes_stopped
    }
}

fn parse_lsn(s: &str) -> Result<Lsn, String> {
    s.parse().map_err(|e| format!("{e}"))
}

impl StatusCmd {
    /// How often to check: `--watch`, else [`DEFAULT_POLL_INTERVAL`].
    pub fn interval(&self) -> Duration {
        self.watch.map_or(DEFAULT_POLL_INTERVAL, Duration::from_secs)
    }

    /// The status job these flags describe.
    ///
    /// # Errors
    /// `--password-env` or `--connect-password-env` naming an unset variable, a bad
    /// `--connect-url` or `--connect-ca-file`, a bad `--kafka-config` or
    /// `--kafka-config-file`.
    pub fn job(&self) -> Result<StatusJob, UsageError> {
        let password = match &self.password_env {
            Some(var) => std::env::var(var).map_err(|_| {
                UsageError(format!(
                    "--password-env {var}: the environment variable {var} is not set"
                ))
            })?,
            None => String::new(),
        };
        let mut sr = StarRocksSinkBuilder::new(
            self.fe.first().cloned().unwrap_or_default(),
            self.database.clone().unwrap_or_default(),
        )
        .with_user(self.user.clone())
        .with_password(password);
        for fe in self.fe.iter().skip(1) {
            sr = sr.with_fe_url(fe.clone());
        }
        if let Some(a) = &self.fe_sql {
            sr = sr.with_fe_sql(a.clone());
        }
        if let Some(p) = &self.ca_file {
            sr = sr.with_ca_file(p.clone());
        }
        let job = self.cdc.apply(StatusJob::new(&self.state, self.source.connection(), sr))?;
        #[cfg(feature = "metrics")]
        if let Some(addr) = self.metrics.metrics_addr {
            return Ok(job.with_metrics_addr(addr));
        }
        Ok(job)
    }
}

/// The Kafka client settings of `--kafka-config-file` (`file`), then `--kafka-config`
/// (`flags`, `KEY=VALUE`) over them.
///
/// # Errors
/// An unreadable or malformed file (named, with the line), a flag that is not `KEY=VALUE`
/// or names a secret, a refused setting (named by its key; values are never shown).
///
/// ```
/// use pgsnap_cli::args::kafka_client_config;
/// let c = kafka_client_config(None, &["security.protocol=SSL".into()]).unwrap();
/// assert_eq!(c.get("security.protocol"), Some("SSL"));
/// assert!(kafka_client_config(None, &["sasl.password=x".into()]).is_err());
/// ```
pub fn kafka_client_config(
    file: Option<&Path>,
    flags: &[String],
) -> Result<KafkaClientConfig, UsageError> {
    let mut config = match file {
        Some(path) => KafkaClientConfig::from_properties_file(path)
            .map_err(|e| UsageError(format!("--kafka-config-file: {e}")))?,
        None => KafkaClientConfig::new(),
    };
    for setting in flags {
        // Never echo the flag: a mistyped one may hold a secret.
        let Some((key, value)) = setting.split_once('=') else {
            return Err(UsageError(
                "--kafka-config: expected KEY=VALUE (the argument is not shown)".into(),
            ));
        };
        let key = key.trim();
        if is_secret_key(key) {
            return Err(UsageError(format!(
                "--kafka-config {key}: a secret on the command line is visible to other users \
                 of this machine (ps, /proc); put it in --kafka-config-file"
            )));
        }
        config.set(key, value);
    }
    config.validate().map_err(|e| UsageError(format!("--kafka-config: {e}")))?;
    Ok(config)
}

/// The Kafka Connect client of `--connect-url` (`url`), `--connect-ca-file`,
/// `--connect-user` and `--connect-password-env` (the name of the variable holding the
/// password).
///
/// # Errors
/// A bad URL or CA file, an unset password variable (each message names its flag).
///
/// ```
/// use pgsnap_cli::args::connect_client;
/// let c = connect_client("http://connect:8083", None, None, None).unwrap();
/// assert_eq!(c.url(), "http://connect:8083");
/// assert!(connect_client("connect:8083", None, None, None).is_err());
/// ```
pub fn connect_client(
    url: &str,
    ca_file: Option<&Path>,
    user: Option<&str>,
    password_env: Option<&str>,
) -> Result<ConnectClient, UsageError> {
    let mut client =
        ConnectClient::new(url).map_err(|e| UsageError(format!("--connect-url: {e}")))?;
    if let Some(path) = ca_file {
        client =
            client.with_ca_file(path).map_err(|e| UsageError(format!("--connect-ca-file: {e}")))?;
    }
    if let (Some(user), Some(var)) = (user, password_env) {
        let password = std::env::var(var).map_err(|e| {
            let why = match e {
                std::env::VarError::NotPresent => "is not set",
                std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
            };
            UsageError(format!(
                "--connect-password-env {var}: the environment variable {var} {why}"
            ))
        })?;
        client = client.with_basic_auth(user, password);
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::StatusCmd;

    fn parse(extra: &[&str]) -> Result<StatusCmd, clap::Error> {
        let base = ["status", "--source", "host=db dbname=app", "--state", "/nonexistent/st"];
        StatusCmd::try_parse_from(base.iter().chain(&["--fe", "http://fe:8030"]).chain(extra))
    }

    #[test]
    fn flags_make_a_job_and_refuse_what_does_not_fit() {
        let cmd =
            parse(&["--cutover-lsn", "0/16B3748", "--until-caught-up", "--timeout", "3"]).unwrap();
        assert_eq!(cmd.cdc.cutover_lsn.unwrap().to_string(), "0/16B3748");
        let job = format!("{:?}", cmd.job().unwrap());
        assert!(job.contains("Lsn"), "{job}");
        assert_eq!(cmd.interval(), super::DEFAULT_POLL_INTERVAL);
        for bad in [
            &["--cutover-lsn", "0/1", "--writes-stopped"][..],
            &["--cutover-lsn", "nope"],
            &["--timeout", "3"],
            &["--watch", "0"],
            &["--connector", "c"],
        ] {
            let e = parse(bad).map(|_| ()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        let no_fe = StatusCmd::try_parse_from(["status", "--state", "/x"]).map(|_| ());
        assert_eq!(no_fe.unwrap_err().exit_code(), 2);
        let e = parse(&["--password-env", "PGSNAP_TEST_UNSET_SR_PASSWORD_9Z"])
            .unwrap()
            .job()
            .unwrap_err();
        assert!(e.0.starts_with("--password-env"), "{e}");
    }

    #[test]
    fn no_password_reaches_debug() {
        // PATH is set wherever tests run: it stands for both passwords.
        let password = std::env::var("PATH").unwrap();
        let cmd = parse(&[
            "--password-env",
            "PATH",
            "--connect-url",
            "https://connect:8443",
            "--connect-user",
            "pgsnap",
            "--connect-password-env",
            "PATH",
        ])
        .unwrap();
        let job = format!("{:?}", cmd.job().unwrap());
        assert!(job.contains("https://connect:8443") && job.contains("pgsnap"), "{job}");
        assert!(!job.contains(&password), "{job}");
    }
}
