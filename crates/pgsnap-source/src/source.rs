//! `PgSource`: a consistent snapshot of a PostgreSQL database, read in parallel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::{self, CatalogTable};
use crate::conninfo::{self, ConnSpec};
use crate::copy::Pool;
use crate::error::{Error, Result};
use crate::pattern::quote_literal;
use crate::plan::{KeyBounds, RelationInput, SplitBy, effective_chunk_size, plan_table};
use crate::snapshot::{self, Holder, SlotRequest, Taken};
use pgsnap_core::{
    Chunk, ChunkSnapshot, ChunkStream, DataFormat, SnapshotInfo, SnapshotMode, SourceInfo,
    TableName, TablePlan,
};

/// The oldest server version supported (`server_version_num`).
pub const MIN_SERVER_VERSION: u32 = 120000;

/// Configures and opens a [`PgSource`].
///
/// # Example
/// ```no_run
/// # async fn f() -> pgsnap_source::Result<()> {
/// use pgsnap_source::PgSourceBuilder;
/// use pgsnap_core::SnapshotMode;
/// let source = PgSourceBuilder::new("host=db.internal dbname=shop user=migrator")
///     .with_snapshot_mode(SnapshotMode::Slot)
///     .with_slot(Some("pgsnap_shop".into()))
///     .with_include(vec!["public.*".into()])
///     .open()
///     .await?;
/// println!("handoff LSN: {:?}", source.snapshot_info().lsn);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgSourceBuilder {
    connection: conninfo::Connection,
    mode: SnapshotMode,
    slot: Option<String>,
    external: Option<String>,
    publication: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    slot_timeout: Duration,
    lock_timeout: Duration,
}

impl std::fmt::Debug for PgSourceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSourceBuilder")
            .field("connection", &self.connection)
            .field("mode", &self.mode)
            .field("slot", &self.slot)
            .field("external", &self.external)
            .field("publication", &self.publication)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .finish_non_exhaustive()
    }
}

impl PgSourceBuilder {
    /// A builder for a connection: a libpq connection string or `postgresql://` URL (unset
    /// parts take libpq's built-in defaults, not the process environment), or a
    /// [`Connection`](conninfo::Connection) (e.g.
    /// [`Connection::from_environment`](conninfo::Connection::from_environment) to complete
    /// it from the `PG*` variables and `~/.pgpass`, as libpq does).
    pub fn new(connection: impl Into<conninfo::Connection>) -> Self {
        Self {
            connection: connection.into(),
            mode: SnapshotMode::Slot,
            slot: None,
            external: None,
            publication: None,
            include: vec![],
            exclude: vec![],
            slot_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(60),
        }
    }
    /// How the snapshot is taken. Default [`SnapshotMode::Slot`].
    pub fn with_snapshot_mode(mut self, mode: SnapshotMode) -> Self {
        self.mode = mode;
        self
    }
    /// A permanent slot name (slot mode); `None` (default) creates a temporary slot.
    pub fn with_slot(mut self, slot: Option<String>) -> Self {
        self.slot = slot;
        self
    }
    /// The snapshot name for [`SnapshotMode::External`].
    pub fn with_external_snapshot(mut self, name: Option<String>) -> Self {
        self.external = name;
        self
    }
    /// Creates this publication for the selected tables (with
    /// `publish_via_partition_root = true`) before the slot, for a CDC handoff.
    pub fn with_publication(mut self, name: Option<String>) -> Self {
        self.publication = name;
        self
    }
    /// Include patterns (psql rules, see [`crate::pattern`]); empty selects every table.
    pub fn with_include(mut self, patterns: Vec<String>) -> Self {
        self.include = patterns;
        self
    }
    /// Exclude patterns.
    pub fn with_exclude(mut self, patterns: Vec<String>) -> Self {
        self.exclude = patterns;
        self
    }
    /// How long slot creation may wait for older transactions. Default 5 minutes.
    pub fn with_slot_timeout(mut self, d: Duration) -> Self {
        self.slot_timeout = d;
        self
    }
    /// How long to wait for each table's ACCESS SHARE lock. Default 60 s.
    pub fn with_lock_timeout(mut self, d: Duration) -> Self {
        self.lock_timeout = d;
        self
    }

    /// Connects, checks, takes (or imports) the snapshot, selects and locks the tables.
    ///
    /// Every lock wait, including those of the catalog reads, is bounded by the lock
    /// timeout. On failure nothing is left behind: a publication or a permanent slot this
    /// call created is dropped again.
    ///
    /// # Errors
    /// Connection and preflight failures ([`Error::Preflight`] says what to fix), and
    /// [`Error::SnapshotLost`] when an external snapshot cannot be imported.
    pub async fn open(self) -> Result<PgSource> {
        let spec = self.connection.resolve()?;
        crate::copy::check_spec(&spec)?;
        let control = crate::client::connect(&spec).await?;
        // No preflight statement may wait for a lock without bound (CREATE PUBLICATION
        // locks the tables it publishes).
        control
            .batch_execute(&format!(
                "SET lock_timeout = '{}ms'",
                self.lock_timeout.as_millis().max(1)
            ))
            .await
            .map_err(|e| Error::pg("cannot set lock_timeout", e))?;
        let version: i32 = control
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| Error::pg("cannot read the server version", e))?
            .get(0);
        if (version as u32) < MIN_SERVER_VERSION {
            return Err(Error::Preflight(format!(
                "server too old: version {version}; pgsnap needs PostgreSQL 12 or later"
            )));
        }
        let slot_req = match self.mode {
            SnapshotMode::Slot => {
                let (name, temporary) = match &self.slot {
                    Some(n) => (n.clone(), false),
                    None => (format!("pgsnap_{}", uuid_hex()), true),
                };
                preflight_slot(&control, &name).await?;
                Some(SlotRequest { name, temporary, timeout: self.slot_timeout })
            }
            _ => {
                if self.slot.is_some() {
                    return Err(Error::Config(
                        "a slot name (with_slot) only applies to the slot snapshot mode (SnapshotMode::Slot)"
                            .into(),
                    ));
                }
                None
            }
        };
        if self.mode != SnapshotMode::External && self.external.is_some() {
            return Err(Error::Config(
                "an external snapshot name (with_external_snapshot) needs the external snapshot mode (SnapshotMode::External)".into(),
            ));
        }
        // The publication must exist before the slot so decoding sees it from the start.
        if let Some(publication) = &self.publication {
            create_publication(&control, publication, &self.include, &self.exclude).await?;
        }
        let opened = self.open_snapshot(&spec, &control, slot_req.as_ref()).await;
        if opened.is_err() {
            // Leave nothing behind: a retry must be able to create the publication again.
            if let Some(publication) = &self.publication
                && let Err(e) = control
                    .batch_execute(&format!(
                        "DROP PUBLICATION IF EXISTS {}",
                        pgsnap_core::quote_ident(publication)
                    ))
                    .await
            {
                tracing::warn!(error = %e, "cannot drop publication {publication:?} after the failed start; drop it by hand");
            }
        }
        opened
    }

    /// Takes the snapshot and reads everything else inside it; on failure, gives the
    /// snapshot up again (dropping a permanent slot it created).
    async fn open_snapshot(
        &self,
        spec: &ConnSpec,
        control: &Client,
        slot_req: Option<&SlotRequest>,
    ) -> Result<PgSource> {
        let taken_at: String = control
            .query_one("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", &[])
            .await
            .map_err(|e| Error::pg("cannot read the server clock", e))?
            .get(0);
        let taken =
            snapshot::take(spec, control, self.mode, slot_req, self.external.as_deref()).await?;
        match self.inspect(spec, &taken, taken_at).await {
            Ok(parts) => Ok(PgSource {
                spec: spec.clone(),
                leader: Mutex::new(parts.leader),
                holder: Mutex::new(Some(taken.holder)),
                pool: Arc::new(Pool::new(spec.clone(), taken.name.clone())),
                snapshot: parts.snapshot,
                source: parts.source,
                session: parts.session,
                tables: parts.tables,
                warnings: parts.warnings,
            }),
            Err(e) => {
                snapshot::abandon(taken).await;
                Err(e)
            }
        }
    }

    /// Imports the snapshot into the leader, reads the source's identity, selects, locks
    /// and describes the tables.
    async fn inspect(&self, spec: &ConnSpec, taken: &Taken, taken_at: String) -> Result<Opened> {
        let leader = crate::client::connect(spec).await?;
        snapshot::import(&leader, &taken.name).await?;
        let ident = leader
            .query_one(
                "SELECT pg_current_snapshot()::text, current_database()::text, current_setting('server_version'), \
                        current_setting('server_version_num')::int, has_function_privilege('pg_control_system()', 'EXECUTE')",
                &[],
            )
            .await
            .map_err(|e| Error::pg("cannot read the snapshot identity", e))?;
        let system_identifier = if ident.get::<_, bool>(4) {
            leader
                .query_one("SELECT system_identifier::text FROM pg_control_system()", &[])
                .await
                .map_err(|e| Error::pg("cannot read the system identifier", e))?
                .get(0)
        } else {
            tracing::warn!(
                "no privilege to run pg_control_system(); the system identifier is not recorded and resume cannot check it"
            );
            String::from("unknown")
        };
        let mut session = BTreeMap::new();
        for (k, _) in crate::session::PINNED_SETTINGS {
            let v: String = leader
                .query_one("SELECT current_setting($1)", &[k])
                .await
                .map_err(|e| Error::pg(format!("cannot read setting {k}"), e))?
                .get(0);
            session.insert((*k).to_owned(), v);
        }
        let snapshot = SnapshotInfo {
            mode: self.mode,
            name: taken.name.clone(),
            lsn: taken.lsn,
            slot: taken.slot.clone(),
            slot_temporary: taken.slot_temporary,
            pg_snapshot: ident.get(0),
            taken_at,
        };
        let source = SourceInfo {
            system_identifier,
            server_version: ident.get(2),
            server_version_num: ident.get::<_, i32>(3) as u32,
            database: ident.get(1),
        };
        // As pg_dump does: select, lock, then read the details under the locks, so no
        // DDL changes a table between its description and its copy. Every lock wait,
        // including those of the catalog functions, is bounded by the lock timeout.
        leader
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '{}ms'",
                self.lock_timeout.as_millis().max(1)
            ))
            .await
            .map_err(|e| Error::pg("cannot set lock_timeout", e))?;
        let selected = catalog::select(&leader, &self.include, &self.exclude).await?;
        lock_tables(&leader, &selected, self.lock_timeout).await?;
        let tables = catalog::describe(&leader, &selected).await?;
        catalog::check_access(&leader, &tables).await?;
        leader
            .batch_execute("SET LOCAL lock_timeout = 0")
            .await
            .map_err(|e| Error::pg("cannot reset lock_timeout", e))?;
        let mut warnings = Vec::new();
        if taken.slot_temporary == Some(false) {
            warnings.push(format!(
                "replication slot {:?} is permanent: it retains WAL from {} until a consumer (Debezium) uses it or you drop it; watch pg_replication_slots.wal_status",
                taken.slot.as_deref().unwrap_or_default(),
                taken.lsn.map(|l| l.to_string()).unwrap_or_default()
            ));
        }
        Ok(Opened { leader, snapshot, source, session, tables, warnings })
    }
}

/// What [`PgSourceBuilder::inspect`] found.
struct Opened {
    leader: Client,
    snapshot: SnapshotInfo,
    source: SourceInfo,
    session: BTreeMap<String, String>,
    tables: Vec<CatalogTable>,
    warnings: Vec<String>,
}

fn uuid_hex() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{:x}_{}", t & 0xffff_ffff_ffff, std::process::id())
}

async fn preflight_slot(control: &Client, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 63
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::Config(format!(
            "invalid slot name {name:?}: use 1 to 63 lower-case letters, digits and underscores"
        )));
    }
    let row = control
        .query_one(
            "SELECT current_setting('wal_level'), \
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
                    (SELECT count(*) FROM pg_replication_slots)::int, current_setting('max_replication_slots')::int, \
                    EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1), \
                    (SELECT count(*) FROM pg_stat_replication)::int, current_setting('max_wal_senders')::int",
            &[&name],
        )
        .await
        .map_err(|e| Error::pg("cannot run the slot preflight", e))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(Error::Preflight(format!(
            "wal_level is {wal_level:?}, slot mode needs \"logical\": ALTER SYSTEM SET wal_level = logical and restart the server, or use the export snapshot mode (SnapshotMode::Export; no CDC handoff LSN)"
        )));
    }
    if !row.get::<_, bool>(1) {
        return Err(Error::Preflight(
            "the user has no REPLICATION privilege, needed to create a replication slot: ALTER ROLE <user> REPLICATION, or use the export snapshot mode (SnapshotMode::Export)".into(),
        ));
    }
    let (used, max): (i32, i32) = (row.get(2), row.get(3));
    if used >= max {
        return Err(Error::Preflight(format!(
            "no free replication slot ({used} of max_replication_slots = {max} in use): drop an unused slot or raise max_replication_slots"
        )));
    }
    if row.get::<_, bool>(4) {
        return Err(Error::Preflight(format!(
            "replication slot {name:?} already exists: choose another slot name, or drop it if nothing consumes it (SELECT pg_drop_replication_slot('{name}'))"
        )));
    }
    let (senders, max_senders): (i32, i32) = (row.get(5), row.get(6));
    if senders >= max_senders {
        return Err(Error::Preflight(format!(
            "no free WAL sender ({senders} of max_wal_senders = {max_senders} in use): raise max_wal_senders or stop an idle replication client"
        )));
    }
    Ok(())
}

async fn create_publication(
    control: &Client,
    name: &str,
    include: &[String],
    exclude: &[String],
) -> Result<()> {
    let selected = catalog::select(control, include, exclude).await?;
    let unsafe_tables = catalog::without_replica_identity(control, &selected).await?;
    if !unsafe_tables.is_empty() {
        return Err(Error::Preflight(format!(
            "cannot publish {}: no primary key and no usable replica identity, so UPDATE and DELETE on them would fail once they are in a publication. \
             Add a primary key or run ALTER TABLE ... REPLICA IDENTITY FULL on each, or exclude them",
            unsafe_tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    // ONLY: an inheritance child is published when it is selected itself, not through its
    // parent. A partitioned table is published with its partitions.
    let list = selected
        .iter()
        .map(
            |(_, name, kind, _)| {
                if *kind == 'p' { name.quoted() } else { format!("ONLY {}", name.quoted()) }
            },
        )
        .collect::<Vec<_>>()
        .join(", ");
    if list.is_empty() {
        return Err(Error::Preflight("no table selected for the publication".into()));
    }
    control
        .batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE {list} WITH (publish_via_partition_root = true)",
            pgsnap_core::quote_ident(name)
        ))
        .await
        .map_err(|e| match e.code().map(|c| c.code()) {
            Some("42710") => Error::Preflight(format!(
                "publication {name:?} already exists: choose another name or drop it"
            )),
            Some("55P03") => Error::Preflight(format!(
                "cannot create publication {name:?}: a selected table stays locked by another session (see pg_locks / pg_blocking_pids); retry when it is done or raise the lock timeout"
            )),
            _ => Error::pg(format!("cannot create publication {name:?}"), e),
        })
}

/// Takes ACCESS SHARE on every selected table, as pg_dump does, under the lock timeout the
/// caller set: a partitioned table with all its partitions (`LOCK` recurses), any other
/// table on its own (`ONLY`: inheritance children are tables of their own).
async fn lock_tables(
    leader: &Client,
    selected: &[(u32, TableName, char, bool)],
    timeout: Duration,
) -> Result<()> {
    for (_, name, kind, _) in selected {
        let (only, what) =
            if *kind == 'p' { ("", " (or one of its partitions)") } else { ("ONLY ", "") };
        leader
            .batch_execute(&format!("LOCK TABLE {only}{} IN ACCESS SHARE MODE", name.quoted()))
            .await
            .map_err(|e| match e.code().map(|c| c.code()) {
                Some("55P03") => Error::Preflight(format!(
                    "could not lock {name}{what} in ACCESS SHARE mode within {timeout:?}: a session holds or waits for an exclusive lock on it (see pg_locks / pg_blocking_pids); retry when it is done or raise the lock timeout"
                )),
                // Same words as `catalog::check_access`, which cannot run before the locks.
                Some("42501") => Error::Preflight(format!(
                    "the user has no SELECT privilege on {name}{what}; GRANT SELECT or exclude them ({})",
                    e.as_db_error().map(|d| d.message()).unwrap_or("permission denied")
                )),
                _ => Error::pg(format!("cannot lock {name}"), e),
            })?;
    }
    Ok(())
}

/// A consistent snapshot of a PostgreSQL database, held open, with its selected tables locked.
///
/// It implements [`pgsnap_core::Source`]: chunks are read by worker connections that import
/// the snapshot (`REPEATABLE READ, READ ONLY` + `SET TRANSACTION SNAPSHOT`) and stream
/// `COPY (SELECT <columns> FROM ONLY <relation> WHERE <range>) TO STDOUT`.
///
/// Call [`close`](Self::close) when every chunk is durably written: it ends the snapshot
/// (and drops a temporary slot).
pub struct PgSource {
    spec: ConnSpec,
    leader: Mutex<Client>,
    holder: Mutex<Option<Holder>>,
    snapshot: SnapshotInfo,
    source: SourceInfo,
    session: BTreeMap<String, String>,
    tables: Vec<CatalogTable>,
    pool: Arc<Pool>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSource")
            .field("snapshot", &self.snapshot)
            .field("source", &self.source)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

/// Health of a held snapshot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotHealth {
    /// Transactions since the snapshot's xmin (`age(backend_xmin)` of the leader).
    pub xmin_age: Option<i64>,
    /// The slot's `wal_status` (permanent or temporary slot in slot mode).
    pub slot_wal_status: Option<String>,
    /// WAL bytes from the slot's `confirmed_flush_lsn` to `pg_current_wal_insert_lsn()`:
    /// what the slot retains (slot mode).
    pub slot_lag_bytes: Option<i64>,
    /// Warnings to show the user.
    pub warnings: Vec<String>,
}

impl PgSource {
    /// The snapshot taken or imported.
    pub fn snapshot_info(&self) -> &SnapshotInfo {
        &self.snapshot
    }
    /// The source cluster's identity.
    pub fn source_info(&self) -> &SourceInfo {
        &self.source
    }
    /// The pinned session settings, as the server reports them.
    pub fn session(&self) -> &BTreeMap<String, String> {
        &self.session
    }
    /// The selected tables.
    pub fn tables(&self) -> &[CatalogTable] {
        &self.tables
    }
    /// Warnings for the report (a permanent slot retaining WAL, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    /// This snapshot as a per-chunk record (for a resume under a new snapshot).
    pub fn chunk_snapshot(&self) -> ChunkSnapshot {
        ChunkSnapshot {
            name: self.snapshot.name.clone(),
            pg_snapshot: self.snapshot.pg_snapshot.clone(),
            taken_at: self.snapshot.taken_at.clone(),
        }
    }

    /// Plans chunks for every selected table.
    ///
    /// # Errors
    /// Catalog queries failing.
    pub async fn plan(
        &self,
        split: SplitBy,
        chunk_size: u64,
        jobs: usize,
    ) -> Result<Vec<TablePlan>> {
        let leader = self.leader.lock().await;
        let block_size: i64 = leader
            .query_one("SELECT current_setting('block_size')::int8", &[])
            .await
            .map_err(|e| Error::pg("cannot read block_size", e))?
            .get(0);
        let total: u64 = self
            .tables
            .iter()
            .flat_map(|t| &t.relations)
            .map(|r| r.heap_bytes + r.toast_bytes)
            .sum();
        let target = effective_chunk_size(chunk_size, total, jobs);
        let tid_range_scans = self.source.server_version_num >= 140000;
        let mut plans = Vec::new();
        for t in &self.tables {
            let use_key = match split {
                SplitBy::Pk => t.integer_pk.is_some(),
                SplitBy::Auto => !tid_range_scans && t.integer_pk.is_some(),
                // Ctid, and whatever later ways a newer core knows and this source does not.
                _ => false,
            };
            if matches!(split, SplitBy::Pk) && !use_key {
                tracing::warn!(table = %t.schema.name, "no single-column integer primary key; split by {}", if tid_range_scans { "ctid" } else { "nothing (one chunk per relation)" });
            }
            let key = use_key.then(|| t.schema.primary_key[0].clone());
            let by_ctid = !use_key && (tid_range_scans || split == SplitBy::Ctid);
            let mut inputs = Vec::new();
            for r in &t.relations {
                let bytes = r.heap_bytes + r.toast_bytes;
                let key_bounds = match &key {
                    Some(k) => {
                        let row = leader
                            .query_one(
                                &format!(
                                    "SELECT min({c})::int8, max({c})::int8 FROM ONLY {}",
                                    r.name.quoted(),
                                    c = pgsnap_core::quote_ident(k)
                                ),
                                &[],
                            )
                            .await
                            .map_err(|e| {
                                Error::pg(format!("cannot read key bounds of {}", r.name), e)
                            })?;
                        match (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) {
                            (Some(min), Some(max)) => Some(KeyBounds { min, max }),
                            _ => None,
                        }
                    }
                    None => None,
                };
                // The relation's own statistics (`NOT inherited`: a partition's, or a table's
                // without its inheritance children, as `FROM ONLY` reads it).
                let histogram = match (&key, key_bounds) {
                    (Some(k), Some(_)) => leader
                        .query_opt(
                            "SELECT histogram_bounds::text::int8[] FROM pg_stats \
                              WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND NOT inherited",
                            &[&r.name.schema, &r.name.name, k],
                        )
                        .await
                        .map_err(|e| {
                            Error::pg(format!("cannot read the key statistics of {}", r.name), e)
                        })?
                        .and_then(|row| row.get::<_, Option<Vec<i64>>>(0))
                        .unwrap_or_default(),
                    _ => vec![],
                };
                let blocks =
                    if by_ctid || key.is_some() { r.heap_bytes / block_size as u64 } else { 0 };
                inputs.push(RelationInput { blocks, bytes, key: key_bounds, histogram });
            }
            plans.push(plan_table(t, &inputs, key.as_deref(), target, jobs));
        }
        Ok(plans)
    }

    /// Checks how costly holding the snapshot has become: the age of its xmin, and the slot's
    /// WAL status.
    ///
    /// # Errors
    /// The monitoring query failing.
    pub async fn health(&self) -> Result<SnapshotHealth> {
        self.health_inner().await
    }

    /// Whether a replication slot exists on the source (for example the permanent slot of a
    /// run resumed under a new snapshot: without it, CDC cannot replay from the handoff LSN).
    ///
    /// # Errors
    /// The catalog query failing.
    pub async fn slot_exists(&self, slot: &str) -> Result<bool> {
        let leader = self.leader.lock().await;
        let row = leader
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                &[&slot],
            )
            .await
            .map_err(|e| Error::pg("cannot look up the replication slot", e))?;
        Ok(row.get(0))
    }

    async fn health_inner(&self) -> Result<SnapshotHealth> {
        let leader = self.leader.lock().await;
        let row = leader
            .query_one(
                "SELECT age(backend_xmin)::int8 FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| Error::pg("cannot read the snapshot's xmin age", e))?;
        let xmin_age: Option<i64> = row.get(0);
        let mut warnings = Vec::new();
        if let Some(age) = xmin_age.filter(|a| *a > 50_000_000) {
            warnings.push(format!(
                "the snapshot's xmin is {age} transactions old: VACUUM cannot clean up behind it and the database bloats; finish or throttle less"
            ));
        }
        let mut slot_wal_status = None;
        let mut slot_lag_bytes = None;
        if let Some(slot) = &self.snapshot.slot
            && let Some(row) = leader
                .query_opt(
                    "SELECT wal_status, (pg_current_wal_insert_lsn() - confirmed_flush_lsn)::int8 \
                     FROM pg_replication_slots WHERE slot_name = $1",
                    &[slot],
                )
                .await
                .map_err(|e| Error::pg("cannot read the slot's WAL status", e))?
        {
            let s: Option<String> = row.get(0);
            if let Some(s) = &s
                && s != "reserved"
            {
                warnings.push(format!(
                            "replication slot {slot:?} has wal_status {s:?}: WAL it needs may be removed (max_slot_wal_keep_size)"
                        ));
            }
            slot_wal_status = s;
            slot_lag_bytes = row.get(1);
        }
        Ok(SnapshotHealth { xmin_age, slot_wal_status, slot_lag_bytes, warnings })
    }

    /// Ends the snapshot: commits the leader (releasing the table locks), closes workers and
    /// the snapshot holder (a temporary slot is dropped with it; a permanent slot stays).
    ///
    /// # Errors
    /// Closing the replication connection failing.
    pub async fn close(&self) -> Result<()> {
        self.pool.clear();
        let _ = self.leader.lock().await.batch_execute("COMMIT").await;
        match self.holder.lock().await.take() {
            Some(Holder::Slot(conn)) => conn.close().await.map_err(|e| Error::Replication {
                context: "cannot close the replication connection".into(),
                source: e,
            })?,
            Some(Holder::Export(client)) => {
                let _ = client.batch_execute("COMMIT").await;
            }
            Some(Holder::External) | None => {}
        }
        Ok(())
    }

    /// The resolved connection settings (password redacted in `Debug`).
    pub fn conn_spec(&self) -> &ConnSpec {
        &self.spec
    }
}

#[async_trait]
impl pgsnap_core::Source for PgSource {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn read_chunk(
        &self,
        chunk: &Chunk,
        format: DataFormat,
    ) -> pgsnap_core::Result<ChunkStream> {
        Ok(crate::copy::read(&self.pool, chunk, format).await?.boxed())
    }
}

/// Drops a permanent replication slot and, optionally, a publication, once nothing needs them.
///
/// # Errors
/// The slot is in use by a consumer (SQLSTATE 55006), or the statements fail.
pub async fn drop_slot(
    connection: impl Into<conninfo::Connection>,
    slot: &str,
    publication: Option<&str>,
) -> Result<()> {
    let spec = connection.into().resolve()?;
    let client = crate::client::connect(&spec).await?;
    client
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {}",
            quote_literal(slot)
        ))
        .await
        .map_err(|e| match e.code().map(|c| c.code()) {
            Some("55006") => Error::Preflight(format!("replication slot {slot:?} is in use by a consumer; stop it first")),
            _ => Error::pg(format!("cannot drop replication slot {slot:?}"), e),
        })?;
    if let Some(p) = publication {
        client
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", pgsnap_core::quote_ident(p)))
            .await
            .map_err(|e| Error::pg(format!("cannot drop publication {p:?}"), e))?;
    }
    Ok(())
}

/// Checks that a resumed run sees the snapshot its manifest records, or decides that a new
/// one may be used.
///
/// Returns `None` when the snapshot is the same (same system identifier and
/// `pg_current_snapshot()`), or `Some(chunk snapshot)` when `allow_snapshot_change` permits a
/// new one.
///
/// # Errors
/// [`Error::SnapshotLost`] when the snapshot differs and a change is not allowed (or not
/// safe: only slot mode with a permanent slot may change, since CDC replay from the slot's
/// consistent point then converges for primary-key tables); [`Error::Preflight`] when the
/// source is another cluster.
pub fn check_resume(
    manifest: &pgsnap_core::Manifest,
    source: &PgSource,
    allow_snapshot_change: bool,
) -> Result<Option<ChunkSnapshot>> {
    let m = &manifest.source;
    if m.system_identifier != source.source.system_identifier
        || m.database != source.source.database
    {
        return Err(Error::Preflight(format!(
            "the manifest was written from another database (system identifier {} database {:?}, now {} {:?}); use a new output directory",
            m.system_identifier,
            m.database,
            source.source.system_identifier,
            source.source.database
        )));
    }
    if manifest.snapshot.pg_snapshot == source.snapshot.pg_snapshot {
        return Ok(None);
    }
    let permanent_slot = manifest.snapshot.mode == SnapshotMode::Slot
        && manifest.snapshot.slot_temporary == Some(false);
    if allow_snapshot_change && permanent_slot {
        return Ok(Some(source.chunk_snapshot()));
    }
    let why = if allow_snapshot_change {
        "allowing a snapshot change (allow_snapshot_change) is only safe for a run in slot mode with a permanent slot (a slot name set with PgSourceBuilder::with_slot): CDC replays from the slot's consistent point".to_owned()
    } else {
        format!(
            "the run's snapshot ({}) is gone: its holder ended with the interrupted run; start a new run in a new output directory{}",
            manifest.snapshot.pg_snapshot,
            if permanent_slot {
                ", or resume and allow a snapshot change (allow_snapshot_change; CDC replay from the slot converges for primary-key tables)"
            } else {
                ""
            }
        )
    };
    Err(Error::SnapshotLost { snapshot: manifest.snapshot.name.clone(), reason: why })
}
