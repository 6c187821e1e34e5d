//! [`StarRocksSink`]: the [`Sink`] that loads chunks with Stream Load.
//!
//! The sink prepares the target tables (over the FE's MySQL port, `fe_sql`) and hands each
//! chunk to a load path (`load`, or `txn_load` with transactions) with its Stream Load client
//! and load options. It is built by the builder, which it never imports.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use pgsnap_core::{
    Chunk, ChunkReceipt, ChunkStream, DataFormat, PrepareContext, Rewrite, Sink, SinkDescription,
    TableKind, TableName, TableSchema,
};
use tokio::sync::Semaphore;

use crate::client::{Secret, StreamLoadClient};
use crate::error::{Error, Result};
use crate::fe_sql::{ExistingColumn, FeSql};
use crate::load::{Input, LoadOptions, Loader};
use crate::mapping::{self, LoadFormat, MappingOptions, TargetTable, Unrepresentable};
use crate::transcode::Transcoder;

/// What [`StarRocksSink::prepare_tables`] decided for one source table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PreparedTable {
    /// The PostgreSQL table.
    pub source: TableName,
    /// The StarRocks table, its columns and their types.
    pub target: TargetTable,
    /// Whether the preparation created the table.
    pub created: bool,
    /// For a table that existed: its rows before the run (`SELECT COUNT(*)`), and whether it
    /// is a Primary Key table (where loading a row again replaces it). `None` when created
    /// or when SQL is disabled.
    pub existing: Option<ExistingTable>,
}

/// What an existing target table held before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExistingTable {
    /// `SELECT COUNT(*)` before loading.
    pub rows: u64,
    /// Whether it is a Primary Key table (rows with equal keys replace each other).
    pub primary_key: bool,
}

/// How source tables become StarRocks tables: their names and column types. The builder
/// collects it (and answers `target_name`/`map_table` from it); the sink applies it.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    pub(crate) format: LoadFormat,
    pub(crate) unrepresentable: Unrepresentable,
    pub(crate) table_mapping: BTreeMap<TableName, String>,
    pub(crate) column_types: BTreeMap<(TableName, String), String>,
}

impl Targets {
    /// The StarRocks table name for a source table: the mapping set for it, else
    /// `public.t` → `t` and `schema.t` → `schema_t`.
    pub(crate) fn target_name(&self, table: &TableName) -> String {
        if let Some(t) = self.table_mapping.get(table) {
            return t.clone();
        }
        if table.schema == "public" {
            table.name.clone()
        } else {
            format!("{}_{}", table.schema, table.name)
        }
    }

    /// Maps a source table (target name, body format, policy for unrepresentable types,
    /// column types).
    pub(crate) fn map_table(&self, schema: &TableSchema) -> Result<TargetTable> {
        let mut options = MappingOptions::default()
            .with_format(self.format)
            .with_unrepresentable(self.unrepresentable);
        for ((t, column), ty) in &self.column_types {
            if t == &schema.name {
                options = options.with_column_type(column.clone(), ty.clone());
            }
        }
        Ok(mapping::map_table(schema, &self.target_name(&schema.name), &options)?)
    }
}

/// Where and as whom the sink runs SQL through the FE's MySQL port.
#[derive(Debug, Clone)]
pub(crate) struct SqlLogin {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: Secret,
}

impl SqlLogin {
    pub(crate) async fn connect(&self) -> Result<FeSql> {
        FeSql::connect(&self.host, self.port, &self.user, &self.password.0).await
    }
}

/// The sink's own settings (the builder checks them).
#[derive(Debug)]
pub(crate) struct SinkConfig {
    /// The database loaded into.
    pub(crate) database: String,
    pub(crate) targets: Targets,
    /// [`Sink::identity`], fixed at build.
    pub(crate) identity: String,
    /// Whether each chunk is one transaction (`txn_load`) instead of a load per part.
    pub(crate) transactions: bool,
    pub(crate) max_concurrent_loads: usize,
    /// `None` when SQL through the FE is disabled.
    pub(crate) sql: Option<SqlLogin>,
    pub(crate) create_tables: bool,
    pub(crate) table_properties: Vec<(String, String)>,
    pub(crate) allow_existing_rows: bool,
}

/// Loads chunks into StarRocks with Stream Load (see the [crate docs](crate)).
///
/// Call [`prepare`](Self::prepare) with the run's tables before the run: it maps names and
/// types, checks or creates the target tables, and must succeed before any
/// [`write_chunk`](Sink::write_chunk).
pub struct StarRocksSink {
    client: StreamLoadClient,
    load: LoadOptions,
    config: SinkConfig,
    loads: Semaphore,
    tables: RwLock<HashMap<TableName, Arc<TargetTable>>>,
    prepared: std::sync::Mutex<Vec<PreparedTable>>,
}

impl std::fmt::Debug for StarRocksSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StarRocksSink")
            .field("fe", &self.client.fes())
            .field("be", &self.client.bes())
            .field("database", &self.config.database)
            .field("user", &self.client.user())
            .field("format", &self.load.format)
            .finish_non_exhaustive()
    }
}

impl StarRocksSink {
    pub(crate) fn new(client: StreamLoadClient, load: LoadOptions, config: SinkConfig) -> Self {
        let loads = Semaphore::new(config.max_concurrent_loads);
        Self {
            client,
            load,
            config,
            loads,
            tables: RwLock::new(HashMap::new()),
            prepared: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The StarRocks database loaded into.
    pub fn database(&self) -> &str {
        &self.config.database
    }

    /// The run id the labels carry: the one given to the builder, else the run's the sink
    /// was [prepared](Sink::prepare) for; `None` before that.
    pub fn run_id(&self) -> Option<&str> {
        self.client.labels().map(|l| l.run_id())
    }

    /// The body format.
    pub fn format(&self) -> LoadFormat {
        self.load.format
    }

    /// What the last preparation ([`Sink::prepare`] or [`prepare_tables`](Self::prepare_tables))
    /// decided, per source table.
    pub fn prepared(&self) -> Vec<PreparedTable> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The StarRocks table name for a source table (see
    /// [`StarRocksSinkBuilder::target_name`](crate::StarRocksSinkBuilder::target_name)).
    pub fn target_name(&self, table: &TableName) -> String {
        self.config.targets.target_name(table)
    }

    /// The label prefix shared by every load of `chunk` (`…-<chunk>-` followed by the part);
    /// `None` while the run id is unknown (see [`run_id`](Self::run_id)).
    pub fn chunk_label_prefix(&self, chunk: &Chunk) -> Option<String> {
        self.client.labels().map(|l| l.chunk_prefix(&chunk.table, chunk.id))
    }

    /// The prepared target of a source table.
    pub fn target(&self, table: &TableName) -> Option<Arc<TargetTable>> {
        self.tables.read().unwrap_or_else(|e| e.into_inner()).get(table).cloned()
    }

    /// Maps every table, refuses two source tables mapped onto one target, and (unless SQL
    /// is disabled) checks that the database exists, creates missing tables when asked, and
    /// checks existing tables' columns. Must succeed before the run.
    ///
    /// Partition leaves are reported under their parent already (`TableKind::Partitioned`),
    /// so a partitioned table loads into one StarRocks table.
    ///
    /// # Errors
    /// [`Error::Mapping`] for a type or name that cannot be mapped, [`Error::Config`] for a
    /// name collision, [`Error::UnknownDatabase`], [`Error::UnknownTable`] (missing and not
    /// created), [`Error::SchemaMismatch`], [`Error::Sql`], [`Error::Auth`].
    pub async fn prepare_tables(&self, tables: &[TableSchema]) -> Result<Vec<PreparedTable>> {
        let mut by_target: BTreeMap<String, &TableName> = BTreeMap::new();
        let mut mapped = Vec::with_capacity(tables.len());
        for schema in tables {
            let target_name = self.target_name(&schema.name);
            if let Some(other) = by_target.insert(target_name.to_ascii_lowercase(), &schema.name) {
                return Err(Error::TargetCollision {
                    first: other.to_string(),
                    second: schema.name.to_string(),
                    target: target_name,
                });
            }
            let target = self.config.targets.map_table(schema)?;
            mapped.push((schema, target));
        }
        for (t, column) in self.config.targets.column_types.keys() {
            if !tables.iter().any(|s| &s.name == t && s.columns.iter().any(|c| &c.name == column)) {
                return Err(Error::Config(format!(
                    "a column type is set for {t} column {column:?}, which is not among the \
                     selected tables' columns"
                )));
            }
        }
        let mut out = Vec::with_capacity(mapped.len());
        let mut sql = match &self.config.sql {
            Some(login) => Some(login.connect().await?),
            None => None,
        };
        if let Some(sql) = sql.as_mut()
            && !sql.database_exists(&self.config.database).await?
        {
            return Err(Error::UnknownDatabase {
                database: self.config.database.clone(),
                message: "not found in information_schema.schemata".into(),
            });
        }
        // What StarRocks has, for every target at once: one `information_schema.columns`
        // query per batch of names, and the existing tables' `COUNT(*)`s in batches. Then each
        // table in order, as one at a time would: create it, refuse it, or check it.
        let (mut existing, mut counts) = (HashMap::new(), HashMap::new());
        if let Some(sql) = sql.as_mut() {
            let names: Vec<&str> = mapped.iter().map(|(_, t)| t.name.as_str()).collect();
            existing = sql.columns_of(&self.config.database, &names).await?;
            let present: Vec<&str> =
                names.iter().copied().filter(|n| existing.contains_key(*n)).collect();
            let rows = sql.counts(&self.config.database, &present).await;
            counts = present.into_iter().map(str::to_owned).zip(rows).collect();
        }
        for (schema, target) in mapped {
            let mut created = false;
            let mut existing_table = None;
            if let Some(sql) = sql.as_mut() {
                match existing.remove(&target.name) {
                    None if self.config.create_tables => {
                        let ddl = target
                            .create_table_sql(&self.config.database, &self.config.table_properties);
                        tracing::debug!(table = %schema.name, target = %target.name, "creating StarRocks table");
                        sql.execute("CREATE TABLE", &ddl).await?;
                        created = true;
                    }
                    None => {
                        return Err(Error::UnknownTable {
                            database: self.config.database.clone(),
                            table: target.name.clone(),
                            message: format!("needed for {}", schema.name),
                        });
                    }
                    Some(cols) => {
                        let rows = counts.remove(&target.name).unwrap_or_else(|| {
                            Err(Error::Config(format!("no COUNT(*) of {}", target.name)))
                        })?;
                        existing_table = Some(ExistingTable {
                            rows,
                            primary_key: cols.iter().any(|c| c.key == "PRI"),
                        });
                        let problems = check_columns(&target, &cols);
                        if !problems.is_empty() {
                            return Err(Error::SchemaMismatch {
                                database: self.config.database.clone(),
                                table: target.name.clone(),
                                source_table: schema.name.to_string(),
                                problems,
                            });
                        }
                    }
                }
            }
            if schema.kind == TableKind::Partition {
                tracing::debug!(table = %schema.name, "a partition selected on its own loads into its own table");
            }
            self.tables
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(schema.name.clone(), Arc::new(target.clone()));
            out.push(PreparedTable {
                source: schema.name.clone(),
                target,
                created,
                existing: existing_table,
            });
        }
        if let Some(sql) = sql {
            sql.close().await;
        }
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = out.clone();
        Ok(out)
    }

    /// Checks that StarRocks can be reached and accepts the credentials, before anything
    /// else is done: the FE's HTTP port answers `get_load_state` for this database, and
    /// (unless SQL is disabled) the MySQL port accepts the login and knows the database.
    ///
    /// # Errors
    /// [`Error::Connect`] (unreachable), [`Error::Auth`], [`Error::UnknownDatabase`],
    /// [`Error::Sql`], [`Error::Protocol`].
    pub async fn check_connection(&self) -> Result<()> {
        self.client.probe().await?;
        if let Some(login) = &self.config.sql {
            let mut sql = login.connect().await?;
            let exists = sql.database_exists(&self.config.database).await;
            sql.close().await;
            if !exists? {
                return Err(Error::UnknownDatabase {
                    database: self.config.database.clone(),
                    message: "not found in information_schema.schemata".into(),
                });
            }
        }
        Ok(())
    }

    /// The StarRocks version, as `SELECT current_version()` prints it through the FE
    /// (e.g. `3.5.6-3ba6b8d`; parse it with
    /// [`StarRocksVersion`](crate::parity::StarRocksVersion)).
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Connect`], [`Error::Auth`],
    /// [`Error::Sql`].
    pub async fn server_version(&self) -> Result<String> {
        let Some(login) = &self.config.sql else {
            return Err(Error::Config("SQL through the FE is disabled".into()));
        };
        let mut sql = login.connect().await?;
        let v = sql.current_version().await;
        sql.close().await;
        v
    }

    /// How the sink logs in to the FE's MySQL port.
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled.
    pub(crate) fn sql_login(&self) -> Result<&SqlLogin> {
        self.config
            .sql
            .as_ref()
            .ok_or_else(|| Error::Config("SQL through the FE is disabled".into()))
    }

    /// Opens a [`TableReader`](crate::read::TableReader) on this sink's database: one
    /// connection to the FE's MySQL port, reading target tables in bounded key ranges.
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Connect`], [`Error::Auth`],
    /// [`Error::Sql`].
    pub async fn table_reader(&self) -> Result<crate::read::TableReader> {
        let Some(login) = &self.config.sql else {
            return Err(Error::Config("SQL through the FE is disabled".into()));
        };
        let sql = login.connect().await?;
        crate::read::TableReader::open(sql, self.config.database.clone()).await
    }

    /// `SELECT COUNT(*)` of a StarRocks table through the FE.
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Sql`] when the query fails.
    pub async fn count_rows(&self, target: &str) -> Result<u64> {
        let Some(login) = &self.config.sql else {
            return Err(Error::Config("SQL through the FE is disabled".into()));
        };
        let mut sql = login.connect().await?;
        let n = sql.count(&self.config.database, target).await;
        sql.close().await;
        n
    }

    /// `SELECT COUNT(*)` of many StarRocks tables through the FE, in the order given, over one
    /// connection and in few statements (a `UNION ALL` of counts per 200 tables); each
    /// result is what [`count_rows`](Self::count_rows) gives for that table, an error naming
    /// it included.
    ///
    /// # Errors
    /// [`Error::Config`] when SQL is disabled, [`Error::Connect`] or [`Error::Auth`] when the
    /// FE cannot be logged in to; per table, [`Error::Sql`] when its count fails.
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(sink: &pgsnap_sink_starrocks::StarRocksSink) -> pgsnap_sink_starrocks::Result<()> {
    /// for (table, n) in ["orders", "customers"].iter().zip(sink.count_rows_many(&["orders", "customers"]).await?) {
    ///     println!("{table}: {}", n?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn count_rows_many(&self, targets: &[&str]) -> Result<Vec<Result<u64>>> {
        let Some(login) = &self.config.sql else {
            return Err(Error::Config("SQL through the FE is disabled".into()));
        };
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = login.connect().await?;
        let n = sql.counts(&self.config.database, targets).await;
        sql.close().await;
        Ok(n)
    }
}

/// Compares a target table's columns with what StarRocks has; one message per difference.
///
/// Names match case-insensitively (StarRocks column names are). Nullability is not compared:
/// StarRocks' `information_schema.columns` does not report it reliably (the BE scanner of
/// several releases answers `IS_NULLABLE = 'NO'` for every column), so a NULL into a NOT NULL
/// column surfaces at load time as a filtered row, which fails the load (`max_filter_ratio`
/// 0 by default) with StarRocks' ErrorURL.
fn check_columns(target: &TargetTable, existing: &[ExistingColumn]) -> Vec<String> {
    let mut problems = Vec::new();
    for col in &target.columns {
        match existing.iter().find(|e| e.name.eq_ignore_ascii_case(&col.name)) {
            None => problems.push(format!("column {:?} is missing", col.name)),
            Some(e) => {
                if !crate::fe_sql::type_compatible(&col.sr_type, &e.data_type, &e.column_type) {
                    problems.push(format!(
                        "column {:?} is {} in StarRocks, but {} (from PostgreSQL {}) is needed",
                        e.name, e.column_type, col.sr_type, col.pg_type
                    ));
                }
            }
        }
    }
    problems
}

#[async_trait]
impl Sink for StarRocksSink {
    fn name(&self) -> &'static str {
        "starrocks"
    }

    fn description(&self) -> SinkDescription {
        SinkDescription::new(DataFormat::Text)
            .with_compression("none")
            .with_rewrite(Rewrite::KeepsFirst)
    }

    /// Prepares the run's tables ([`prepare_tables`](StarRocksSink::prepare_tables)) and, for
    /// a new run, refuses Duplicate Key targets that already hold rows (a new run has new
    /// labels, so it would add a second copy of anything loaded before) unless
    /// [`with_allow_existing_rows`](crate::StarRocksSinkBuilder::with_allow_existing_rows).
    /// Its failures are a failed [`Preflight`](pgsnap_core::ErrorKind::Preflight), or
    /// [`Config`](pgsnap_core::ErrorKind::Config) for the sink's own configuration.
    async fn prepare(&self, ctx: &PrepareContext<'_>) -> pgsnap_core::Result<()> {
        self.prepare_run(ctx).await.map_err(crate::error::preflight)
    }

    fn identity(&self) -> Option<String> {
        Some(self.config.identity.clone())
    }

    async fn write_chunk(
        &self,
        chunk: &Chunk,
        data: ChunkStream,
        ctx: &pgsnap_core::WriteContext,
    ) -> pgsnap_core::Result<ChunkReceipt> {
        let target = self.target(&chunk.table).ok_or_else(|| {
            pgsnap_core::Error::config(format!(
                "{} was not prepared for StarRocks (prepare the sink for the run first: Sink::prepare with the run's tables)",
                chunk.table
            ))
        })?;
        let _permit = self.loads.acquire().await.map_err(|_| pgsnap_core::Error::cancelled())?;
        let mut input = Input::new(data);
        let mut tc = Transcoder::new(&target);
        if !input.has_more().await? {
            // An empty chunk: nothing to load, no label used.
            tc.finish().map_err(|e| Error::transcode(chunk, e))?;
            return Ok(ChunkReceipt::new(None, 0).with_load(pgsnap_core::LoadReceipt::default()));
        }
        let loader = Loader { client: &self.client, options: &self.load, retry: ctx.retry() };
        if self.config.transactions {
            crate::txn_load::load_chunk(loader, &target, chunk, input, tc).await
        } else {
            crate::load::load_chunk(loader, &target, chunk, input, tc).await
        }
    }
}

impl StarRocksSink {
    /// Prepares the run's tables ([`prepare_tables`](StarRocksSink::prepare_tables)) and, for
    /// a new run, refuses Duplicate Key targets that already hold rows (a new run has new
    /// labels, so it would add a second copy of anything loaded before) unless
    /// [`with_allow_existing_rows`](crate::StarRocksSinkBuilder::with_allow_existing_rows).
    async fn prepare_run(&self, ctx: &PrepareContext<'_>) -> pgsnap_core::Result<()> {
        let labeler = self.client.labeler_for_run(ctx.run_id)?;
        if labeler.run_id() != ctx.run_id {
            return Err(Error::Config(format!(
                "the sink labels loads of run {} but was prepared for run {}: build one sink per run",
                labeler.run_id(),
                ctx.run_id
            ))
            .into());
        }
        let prepared = self.prepare_tables(ctx.tables).await?;
        if !ctx.resume && !self.config.allow_existing_rows {
            let occupied: Vec<String> = prepared
                .iter()
                .filter_map(|p| {
                    p.existing
                        .filter(|e| e.rows > 0 && !e.primary_key)
                        .map(|e| format!("{} ({} rows)", p.target.name, e.rows))
                })
                .collect();
            if !occupied.is_empty() {
                return Err(Error::OccupiedTargets { tables: occupied }.into());
            }
        }
        for p in &prepared {
            if let Some(e) = p.existing.filter(|e| e.rows > 0 && !ctx.resume) {
                tracing::warn!(
                    table = %p.source,
                    target = %p.target.name,
                    rows = e.rows,
                    "the target already holds rows{}",
                    if e.primary_key { "; rows with equal keys are replaced" } else { "" }
                );
            }
            let notes: Vec<_> = p
                .target
                .columns
                .iter()
                .filter_map(|c| c.note.as_ref().map(|n| format!("{}: {n}", c.name)))
                .collect();
            // One line per table only where there is something to say: thousands of
            // tables must not flood the log.
            if notes.is_empty() {
                tracing::debug!(table = %p.source, target = %p.target.name, created = p.created, "target ready");
            } else {
                tracing::info!(
                    table = %p.source,
                    target = %p.target.name,
                    created = p.created,
                    "{}",
                    notes.join("; ")
                );
            }
        }
        let created = prepared.iter().filter(|p| p.created).count();
        tracing::info!(
            targets = prepared.len(),
            created,
            "StarRocks targets ready ({created} created, {} existing)",
            prepared.len() - created
        );
        Ok(())
    }
}
