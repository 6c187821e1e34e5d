//! [`StarRocksSinkBuilder`]: the sink's configuration, checked, and the top layer: `build`
//! makes the Stream Load client, the load options and the sink's own settings from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pgsnap_core::{TableName, TableSchema};

use crate::client::{ClientConfig, Secret, StreamLoadClient};
use crate::error::{Error, Result};
use crate::http::{self, Endpoint};
use crate::label::Labeler;
use crate::load::LoadOptions;
use crate::mapping::{LoadFormat, TargetTable, Unrepresentable};
use crate::sink::{SinkConfig, SqlLogin, StarRocksSink, Targets};

/// Configuration of a [`StarRocksSink`]. `Debug` never shows the password.
///
/// # Example
/// ```
/// use pgsnap_core::TableName;
/// use pgsnap_sink_starrocks::{LoadFormat, StarRocksSinkBuilder};
///
/// let sink = StarRocksSinkBuilder::new("http://fe1:8030", "analytics")
///     .with_user("loader")
///     .with_password("s3cret")
///     .with_run_id("0b3f1c52-7d7e-4bb2-9d65-2d3b1b0a9c11")
///     .with_format(LoadFormat::Json)
///     .with_table_mapping(TableName::new("sales", "orders"), "orders_2024")
///     .build()
///     .unwrap();
/// assert!(!format!("{sink:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
pub struct StarRocksSinkBuilder {
    fe_urls: Vec<String>,
    be_urls: Vec<String>,
    fe_sql: Option<String>,
    sql_enabled: bool,
    user: String,
    password: Secret,
    database: String,
    /// Target names and column types (with the body format).
    targets: Targets,
    max_concurrent_loads: usize,
    max_load_bytes: Option<u64>,
    transactions: bool,
    connect_timeout: Duration,
    io_timeout: Duration,
    continue_timeout: Duration,
    load_timeout: Duration,
    transaction_timeout: Duration,
    max_filter_ratio: f64,
    strict_mode: bool,
    label_prefix: String,
    run_id: Option<String>,
    label_wait: Duration,
    allow_insecure_redirect: bool,
    ca_file: Option<PathBuf>,
    create_tables: bool,
    table_properties: Vec<(String, String)>,
    allow_existing_rows: bool,
}

impl StarRocksSinkBuilder {
    /// A configuration loading into `database` through the FE at `fe_url`
    /// (`http://host:8030` or `https://…`). User `root` with an empty password until set.
    pub fn new(fe_url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            fe_urls: vec![fe_url.into()],
            be_urls: Vec::new(),
            fe_sql: None,
            sql_enabled: true,
            user: "root".into(),
            password: Secret::default(),
            database: database.into(),
            targets: Targets {
                format: LoadFormat::Csv,
                unrepresentable: Unrepresentable::Varchar,
                table_mapping: BTreeMap::new(),
                column_types: BTreeMap::new(),
            },
            max_concurrent_loads: 8,
            max_load_bytes: None,
            transactions: false,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(300),
            continue_timeout: Duration::from_secs(30),
            load_timeout: Duration::from_secs(600),
            transaction_timeout: Duration::from_secs(3600),
            max_filter_ratio: 0.0,
            strict_mode: true,
            label_prefix: "pgsnap".into(),
            run_id: None,
            label_wait: Duration::from_secs(60),
            allow_insecure_redirect: false,
            ca_file: None,
            create_tables: false,
            table_properties: Vec::new(),
            allow_existing_rows: false,
        }
    }

    /// The FE addresses, in the order they are tried.
    pub fn fe_urls(&self) -> &[String] {
        &self.fe_urls
    }

    /// The StarRocks database loaded into.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Loads into `database` instead of the one given to [`new`](Self::new).
    ///
    /// ```
    /// use pgsnap_sink_starrocks::StarRocksSinkBuilder;
    /// let b = StarRocksSinkBuilder::new("http://fe1:8030", "").with_database("analytics");
    /// assert_eq!(b.database(), "analytics");
    /// ```
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Lets a new run load into Duplicate Key tables that already hold rows (refused by
    /// default: a new run has new labels, so it would add a second copy of anything loaded
    /// before). Resumed runs are never refused. Default `false`.
    pub fn with_allow_existing_rows(mut self, allow: bool) -> Self {
        self.allow_existing_rows = allow;
        self
    }

    /// What this configuration writes where, as one line: everything that decides the
    /// target tables, the labels and the body bytes (so the part boundaries). A run's manifest
    /// records it ([`Sink::identity`](pgsnap_core::Sink::identity)); a resume with another
    /// would load into other places or under other labels, and is refused.
    ///
    /// ```
    /// use pgsnap_sink_starrocks::StarRocksSinkBuilder;
    /// let b = StarRocksSinkBuilder::new("http://fe:8030", "analytics");
    /// assert_eq!(
    ///     b.identity(),
    ///     "starrocks format=csv transactions=false max_load_bytes=default database=analytics \
    ///      label_prefix=pgsnap unrepresentable=varchar table_map=[] column_type=[]"
    /// );
    /// ```
    pub fn identity(&self) -> String {
        let mut maps: Vec<String> =
            self.targets.table_mapping.iter().map(|(t, target)| format!("{t}={target}")).collect();
        maps.sort();
        let mut types: Vec<String> =
            self.targets.column_types.iter().map(|((t, c), ty)| format!("{t}.{c}={ty}")).collect();
        types.sort();
        format!(
            "starrocks format={} transactions={} max_load_bytes={} database={} label_prefix={} \
             unrepresentable={} table_map=[{}] column_type=[{}]",
            self.targets.format,
            self.transactions,
            self.max_load_bytes.map(|n| n.to_string()).unwrap_or_else(|| "default".into()),
            self.database,
            self.label_prefix,
            self.targets.unrepresentable,
            maps.join(","),
            types.join(","),
        )
    }

    /// The StarRocks table name for a source table: the mapping set with
    /// [`with_table_mapping`](Self::with_table_mapping), else `public.t` → `t` and
    /// `schema.t` → `schema_t`.
    ///
    /// ```
    /// use pgsnap_core::TableName;
    /// use pgsnap_sink_starrocks::StarRocksSinkBuilder;
    /// let b = StarRocksSinkBuilder::new("http://fe:8030", "db")
    ///     .with_table_mapping(TableName::new("sales", "orders"), "orders_2024");
    /// assert_eq!(b.target_name(&TableName::new("sales", "orders")), "orders_2024");
    /// assert_eq!(b.target_name(&TableName::new("sales", "items")), "sales_items");
    /// assert_eq!(b.target_name(&TableName::new("public", "items")), "items");
    /// ```
    pub fn target_name(&self, table: &TableName) -> String {
        self.targets.target_name(table)
    }

    /// Maps a source table the way the sink will load it (target name, body format, policy
    /// for unrepresentable types, column types), without connecting to StarRocks: what
    /// [`StarRocksSink::prepare_tables`](crate::StarRocksSink::prepare_tables) checks or creates, and what
    /// the CDC leg's parity table ([`crate::parity`]) is applied to.
    ///
    /// # Errors
    /// [`Error::Mapping`] for a type, override or name that cannot be mapped.
    pub fn map_table(&self, schema: &TableSchema) -> Result<TargetTable> {
        self.targets.map_table(schema)
    }

    /// Adds another FE address; loads start at the FEs in turn, and move to the next one
    /// when one cannot be reached.
    pub fn with_fe_url(mut self, url: impl Into<String>) -> Self {
        self.fe_urls.push(url.into());
        self
    }

    /// Sends loads straight to these BE HTTP addresses (`http://be:8040`) in turn, skipping
    /// the FE redirect (StarRocks accepts Stream Load on a BE directly). Useful when the BE
    /// addresses the FE hands out are not reachable from here, or to keep HTTPS end to end.
    pub fn with_be_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.be_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The FE's MySQL-protocol address (`host:port`) for DDL, column checks and counts.
    /// Default: the first FE's host, port 9030.
    pub fn with_fe_sql(mut self, address: impl Into<String>) -> Self {
        self.fe_sql = Some(address.into());
        self
    }

    /// Skips every SQL statement (no table creation, no column check): loads only.
    pub fn without_sql(mut self) -> Self {
        self.sql_enabled = false;
        self
    }

    /// The StarRocks user (default `root`).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// The password (never logged, never in `Debug`).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Secret(password.into());
        self
    }

    /// The body format (default CSV; see [`LoadFormat`] for what each carries).
    pub fn with_format(mut self, format: LoadFormat) -> Self {
        self.targets.format = format;
        self
    }

    /// What to do with PostgreSQL types StarRocks cannot hold exactly (default: keep them
    /// as VARCHAR text; see [`crate::mapping`]).
    pub fn with_unrepresentable(mut self, policy: Unrepresentable) -> Self {
        self.targets.unrepresentable = policy;
        self
    }

    /// Loads `table` into the StarRocks table `target` instead of the default name
    /// (`public.t` → `t`, `s.t` → `s_t`).
    pub fn with_table_mapping(mut self, table: TableName, target: impl Into<String>) -> Self {
        self.targets.table_mapping.insert(table, target.into());
        self
    }

    /// Forces the StarRocks type of one column, e.g. `VARCHAR(64)` for a numeric column
    /// that holds `NaN`.
    pub fn with_column_type(
        mut self,
        table: TableName,
        column: impl Into<String>,
        sr_type: impl Into<String>,
    ) -> Self {
        self.targets.column_types.insert((table, column.into()), sr_type.into());
        self
    }

    /// Loads in flight at once, over all tables (default 8).
    pub fn with_max_concurrent_loads(mut self, n: usize) -> Self {
        self.max_concurrent_loads = n;
        self
    }

    /// Splits a chunk into several loads once a body reaches this many bytes (at a row
    /// boundary, deterministically). Default: 96 MiB for JSON (StarRocks buffers JSON
    /// bodies whole and caps them at 100 MB), 4 GiB for CSV (streamed). With
    /// [`with_transactions`](Self::with_transactions) the parts are the `load` calls of the
    /// chunk's one transaction.
    pub fn with_max_load_bytes(mut self, bytes: u64) -> Self {
        self.max_load_bytes = Some(bytes);
        self
    }

    /// Loads each chunk in one transaction of StarRocks' Stream Load transaction interface
    /// (`/api/transaction/{begin,load,prepare,commit,rollback}`, StarRocks 2.4+) instead of
    /// one Stream Load per part (default off).
    ///
    /// A chunk split into several parts (see [`with_max_load_bytes`](Self::with_max_load_bytes))
    /// then becomes visible atomically: `begin`, one `load` per part, `prepare`, a check that
    /// StarRocks counted every row sent, then `commit`. Any failure before the commit rolls
    /// the transaction back, so nothing of the chunk is visible until it is committed whole.
    /// The transaction's label is `<prefix>-<run id>-<table>-<chunk>-t`, so a resumed run
    /// skips a committed chunk and rolls back a transaction of this run left prepared but
    /// uncommitted (a killed process) before loading the chunk again.
    ///
    /// Each part's body is streamed with chunked transfer encoding after the BE's
    /// `100 Continue`, as with Stream Load, so memory stays bounded by the 1 MiB write buffer
    /// whatever the part size; the part sizes are the same as without transactions.
    ///
    /// Keep the mode for the whole run: a chunk's transaction label never equals a Stream
    /// Load part label, so a chunk loaded (but not yet recorded) in one mode would be loaded
    /// again in the other. `migrate_to_starrocks` refuses to resume in the other mode.
    pub fn with_transactions(mut self, enabled: bool) -> Self {
        self.transactions = enabled;
        self
    }

    /// TCP and TLS connect timeout (default 10 s).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The longest wait for progress on an open connection (default 300 s).
    pub fn with_io_timeout(mut self, d: Duration) -> Self {
        self.io_timeout = d;
        self
    }

    /// How long to wait for the BE's `100 Continue` (default 30 s).
    pub fn with_continue_timeout(mut self, d: Duration) -> Self {
        self.continue_timeout = d;
        self
    }

    /// The Stream Load `timeout` header (default 600 s; StarRocks accepts 1–259200).
    pub fn with_load_timeout(mut self, d: Duration) -> Self {
        self.load_timeout = d;
        self
    }

    /// With [`with_transactions`](Self::with_transactions): the `timeout` sent on `begin`,
    /// which covers the whole chunk (every part and the reads between them; default
    /// 3600 s; StarRocks accepts 1–259200). Each `load` call keeps the load timeout.
    pub fn with_transaction_timeout(mut self, d: Duration) -> Self {
        self.transaction_timeout = d;
        self
    }

    /// Fraction of rows StarRocks may filter out before failing the load (default 0: every
    /// row must load).
    pub fn with_max_filter_ratio(mut self, ratio: f64) -> Self {
        self.max_filter_ratio = ratio;
        self
    }

    /// StarRocks `strict_mode` (default `true`: a value that does not convert fails the row
    /// instead of becoming NULL).
    pub fn with_strict_mode(mut self, strict: bool) -> Self {
        self.strict_mode = strict;
        self
    }

    /// The label prefix (default `pgsnap`; 1–32 of `A-Z a-z 0-9 _ -`).
    pub fn with_label_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.label_prefix = prefix.into();
        self
    }

    /// The run id that makes labels unique per run and stable across retries and resume:
    /// the manifest's `run_id`. Optional: without it the sink takes the run id of the run it
    /// is [prepared](pgsnap_core::Sink::prepare) for (and a sink serves one run).
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// How long to poll `get_load_state` for an earlier load holding a chunk's label before
    /// giving up on the chunk (default 60 s, as the Flink SDK). Retries themselves follow
    /// the run's [`RetryPolicy`](pgsnap_core::RetryPolicy): the sink retries on its own only
    /// what it can replay without the chunk's data, taking attempts from the chunk's budget
    /// ([`WriteContext`](pgsnap_core::WriteContext)).
    pub fn with_label_wait(mut self, wait: Duration) -> Self {
        self.label_wait = wait;
        self
    }

    /// Allows an HTTPS FE to redirect to a plain-HTTP BE (off by default: the password
    /// would travel in clear; StarRocks' FE always redirects to `http://`).
    pub fn with_allow_insecure_redirect(mut self, allow: bool) -> Self {
        self.allow_insecure_redirect = allow;
        self
    }

    /// Trusts the CA certificates in this PEM file for HTTPS (in addition to the web PKI).
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Creates missing target tables in [`StarRocksSink::prepare_tables`](crate::StarRocksSink::prepare_tables) (default off: a
    /// missing table is an error).
    pub fn with_create_tables(mut self, create: bool) -> Self {
        self.create_tables = create;
        self
    }

    /// A `PROPERTIES` entry for created tables, e.g. `("replication_num", "1")`.
    pub fn with_table_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.table_properties.push((key.into(), value.into()));
        self
    }

    /// Checks the configuration and builds the sink. Nothing is contacted yet.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad setting.
    pub fn build(self) -> Result<StarRocksSink> {
        let fes = self
            .fe_urls
            .iter()
            .map(|u| Endpoint::parse(u).map_err(|e| Error::Config(format!("FE address: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let bes = self
            .be_urls
            .iter()
            .map(|u| Endpoint::parse(u).map_err(|e| Error::Config(format!("BE address: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        if self.database.is_empty() {
            return Err(Error::Config("the database name is empty".into()));
        }
        // The prefix is checked now even when the run id comes later (from `prepare`).
        Labeler::new(&self.label_prefix, "run").map_err(Error::Config)?;
        let labeler = match self.run_id.as_deref() {
            Some(run_id) => Some(Labeler::new(&self.label_prefix, run_id).map_err(Error::Config)?),
            None => None,
        };
        if !(0.0..=1.0).contains(&self.max_filter_ratio) {
            return Err(Error::Config(format!(
                "max_filter_ratio {} is outside 0..=1",
                self.max_filter_ratio
            )));
        }
        let timeout = self.load_timeout.as_secs();
        if !(1..=259_200).contains(&timeout) {
            return Err(Error::Config(format!(
                "load timeout {timeout} s is outside StarRocks' 1..=259200 s"
            )));
        }
        let txn_timeout = self.transaction_timeout.as_secs();
        if !(1..=259_200).contains(&txn_timeout) {
            return Err(Error::Config(format!(
                "transaction timeout {txn_timeout} s is outside StarRocks' 1..=259200 s"
            )));
        }
        if self.max_concurrent_loads == 0 {
            return Err(Error::Config("max_concurrent_loads must be at least 1".into()));
        }
        if self.max_load_bytes == Some(0) {
            return Err(Error::Config("max_load_bytes must be at least 1".into()));
        }
        let needs_tls = fes.iter().chain(&bes).any(|e| e.https);
        let tls = if needs_tls || self.ca_file.is_some() {
            Some(http::tls_config(self.ca_file.as_deref())?)
        } else {
            None
        };
        let sql = if self.sql_enabled {
            let addr = match &self.fe_sql {
                Some(a) => a.clone(),
                None => format!("{}:9030", fes[0].host),
            };
            Some(parse_host_port(&addr)?)
        } else {
            None
        };
        let identity = self.identity();
        let client = StreamLoadClient::new(ClientConfig {
            fes,
            bes,
            tls,
            database: self.database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            label_prefix: self.label_prefix,
            labeler,
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
            allow_insecure_redirect: self.allow_insecure_redirect,
            label_wait: self.label_wait,
        });
        let load = LoadOptions {
            format: self.targets.format,
            max_load_bytes: self.max_load_bytes,
            continue_timeout: self.continue_timeout,
            load_timeout: self.load_timeout,
            transaction_timeout: self.transaction_timeout,
            max_filter_ratio: self.max_filter_ratio,
            strict_mode: self.strict_mode,
        };
        let config = SinkConfig {
            database: self.database,
            targets: self.targets,
            identity,
            transactions: self.transactions,
            max_concurrent_loads: self.max_concurrent_loads,
            sql: sql.map(|(host, port)| SqlLogin {
                host,
                port,
                user: self.user,
                password: self.password,
            }),
            create_tables: self.create_tables,
            table_properties: self.table_properties,
            allow_existing_rows: self.allow_existing_rows,
        };
        Ok(StarRocksSink::new(client, load, config))
    }
}

fn parse_host_port(addr: &str) -> Result<(String, u16)> {
    let bad = || Error::Config(format!("FE SQL address {addr:?}: expected host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> StarRocksSinkBuilder {
        StarRocksSinkBuilder::new("http://fe:8030", "db").with_run_id("r1")
    }

    #[test]
    fn bad_settings_are_named() {
        let msg = |b: StarRocksSinkBuilder| b.build().unwrap_err().to_string();
        assert!(
            msg(StarRocksSinkBuilder::new("fe:8030", "db").with_run_id("r")).contains("FE address")
        );
        assert!(msg(base().with_run_id("not a label")).contains("run id"));
        // Without a run id the sink takes the run's when it is prepared.
        assert!(StarRocksSinkBuilder::new("http://fe:8030", "db").build().is_ok());
        assert!(msg(base().with_label_prefix("no spaces")).contains("label prefix"));
        assert!(msg(base().with_max_filter_ratio(2.0)).contains("max_filter_ratio"));
        assert!(msg(base().with_load_timeout(Duration::from_secs(0))).contains("timeout"));
        assert!(msg(base().with_fe_sql("nohost")).contains("FE SQL"));
        assert!(base().build().is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let b = base().with_password("hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
        assert!(!format!("{:?}", b.build().unwrap()).contains("hunter2"));
    }

    #[test]
    fn default_target_names() {
        let sink = StarRocksSinkBuilder::new("http://fe:8030", "db")
            .with_run_id("r")
            .with_table_mapping(TableName::new("s", "x"), "y")
            .build()
            .unwrap();
        assert_eq!(sink.target_name(&TableName::new("public", "t")), "t");
        assert_eq!(sink.target_name(&TableName::new("sales", "t")), "sales_t");
        assert_eq!(sink.target_name(&TableName::new("s", "x")), "y");
    }
}
