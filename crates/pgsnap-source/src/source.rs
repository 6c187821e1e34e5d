//! `PgSource`: a consistent snapshot of a PostgreSQL database, read in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::catalog::{self, CatalogTable, Relation};
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
    let list = only_list(&selected);
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

/// Selected tables as a `LOCK TABLE` / `CREATE PUBLICATION` list: a partitioned table with
/// its partitions, any other table `ONLY` (inheritance children are tables of their own).
fn only_list(selected: &[(u32, TableName, char, bool)]) -> String {
    selected
        .iter()
        .map(
            |(_, name, kind, _)| {
                if *kind == 'p' { name.quoted() } else { format!("ONLY {}", name.quoted()) }
            },
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tables locked by one `LOCK TABLE` statement: the statement count grows by one per this
/// many tables, not by one per table.
const LOCK_BATCH: usize = 1000;

/// Takes ACCESS SHARE on every selected table, as pg_dump does, under the lock timeout the
/// caller set: a partitioned table with all its partitions (`LOCK` recurses), any other
/// table on its own (`ONLY`: inheritance children are tables of their own).
///
/// Tables are locked in batches of [`LOCK_BATCH`], each statement behind a savepoint. When a
/// lock cannot be had, the savepoint is rolled back (the leader's transaction, and so the
/// snapshot, stays usable) and `pg_locks` tells which relation of the batch is held or
/// queued for, and by which session.
async fn lock_tables(
    leader: &Client,
    selected: &[(u32, TableName, char, bool)],
    timeout: Duration,
) -> Result<()> {
    for batch in selected.chunks(LOCK_BATCH) {
        let list = only_list(batch);
        let Err(e) = leader
            .batch_execute(&format!(
                "SAVEPOINT pgsnap_lock; LOCK TABLE {list} IN ACCESS SHARE MODE; RELEASE SAVEPOINT pgsnap_lock"
            ))
            .await
        else {
            continue;
        };
        let code = e.code().map(|c| c.code().to_owned());
        let message = e.as_db_error().map(|d| d.message().to_owned());
        leader
            .batch_execute("ROLLBACK TO SAVEPOINT pgsnap_lock")
            .await
            .map_err(|e| Error::pg("cannot roll back after a failed lock", e))?;
        return Err(match code.as_deref() {
            Some("55P03") => lock_conflict(leader, batch, timeout).await,
            // Same words as `catalog::check_access`, which cannot run before the locks.
            Some("42501") => {
                let denied = denied_relation(leader, batch).await;
                Error::Preflight(format!(
                    "the user has no SELECT privilege on {denied}; GRANT SELECT or exclude them ({})",
                    message.as_deref().unwrap_or("permission denied")
                ))
            }
            Some("53200") => Error::Preflight(format!(
                "the server's lock table is full while locking {} tables ({}): every selected relation is locked until the copy ends, as pg_dump does; \
                 raise max_locks_per_transaction (it needs a restart), or select fewer tables per run",
                selected.len(),
                message.as_deref().unwrap_or("out of shared memory")
            )),
            _ => Error::pg(
                format!(
                    "cannot lock {}",
                    batch.iter().map(|b| b.1.to_string()).collect::<Vec<_>>().join(", ")
                ),
                e,
            ),
        });
    }
    Ok(())
}

/// The error for a batch whose lock timed out: the first relation of the batch (in lock
/// order) that another session holds or waits for in ACCESS EXCLUSIVE mode, and that
/// session.
async fn lock_conflict(
    leader: &Client,
    batch: &[(u32, TableName, char, bool)],
    timeout: Duration,
) -> Error {
    let oids: Vec<u32> = batch.iter().map(|b| b.0).collect();
    let found = leader
        .query(
            &format!(
                "WITH RECURSIVE {} \
             SELECT tree.root, n.nspname::text, c.relname::text, l.pid, l.granted, \
                    coalesce(a.usename::text, ''), coalesce(a.application_name, ''), coalesce(a.state, ''), \
                    coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') \
               FROM tree JOIN pg_locks l ON l.locktype = 'relation' AND l.relation = tree.oid \
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
               LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
              WHERE l.mode = 'AccessExclusiveLock' AND l.pid IS DISTINCT FROM pg_backend_pid() \
              ORDER BY tree.ord, l.granted DESC, n.nspname, c.relname \
              LIMIT 1",
                catalog::RELATION_TREES
            ),
            &[&oids],
        )
        .await;
    let tables = || {
        let names: Vec<String> = batch.iter().map(|b| b.1.to_string()).collect();
        summarize_names(&names)
    };
    match found.as_deref() {
        Ok([row, ..]) => {
            let root: u32 = row.get(0);
            let relation = TableName::new(row.get::<_, String>(1), row.get::<_, String>(2));
            let table = batch.iter().find(|b| b.0 == root).map(|b| &b.1);
            let what = match table {
                Some(t) if *t != relation => format!("{t} (its partition {relation})"),
                Some(t) => t.to_string(),
                None => relation.to_string(),
            };
            let pid: Option<i32> = row.get(3);
            let granted: bool = row.get(4);
            let (user, app, state, since): (String, String, String, String) =
                (row.get(5), row.get(6), row.get(7), row.get(8));
            let mut who = format!(
                "session pid {}",
                pid.map(|p| p.to_string()).unwrap_or_else(|| "(prepared transaction)".into())
            );
            let details: Vec<String> = [
                (!user.is_empty()).then(|| format!("user {user:?}")),
                (!app.is_empty()).then(|| format!("application {app:?}")),
                (!state.is_empty()).then(|| format!("state {state:?}")),
                (!since.is_empty()).then(|| format!("transaction since {since}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !details.is_empty() {
                who.push_str(&format!(" ({})", details.join(", ")));
            }
            let does = if granted { "holds" } else { "waits for (queued ahead of pgsnap)" };
            Error::Preflight(format!(
                "could not lock {what} in ACCESS SHARE mode within {timeout:?}: {who} {does} an ACCESS EXCLUSIVE lock on it; \
                 retry when it is done (or end it: SELECT pg_terminate_backend(pid)) or raise the lock timeout"
            ))
        }
        Ok([]) => Error::Preflight(format!(
            "could not lock one of {} in ACCESS SHARE mode within {timeout:?}: a session held or waited for an exclusive lock on it and has released it since (see pg_locks / pg_blocking_pids); retry, or raise the lock timeout",
            tables()
        )),
        Err(e) => Error::Preflight(format!(
            "could not lock one of {} in ACCESS SHARE mode within {timeout:?}: a session holds or waits for an exclusive lock on it (see pg_locks / pg_blocking_pids; looking it up failed: {e}); retry when it is done or raise the lock timeout",
            tables()
        )),
    }
}

/// The first relation of a batch the user may not read (for the privilege error of a
/// failed lock), or the batch's names when the lookup fails.
async fn denied_relation(leader: &Client, batch: &[(u32, TableName, char, bool)]) -> String {
    let oids: Vec<u32> = batch.iter().map(|b| b.0).collect();
    let what = |name: &TableName, kind: char| {
        format!("{name}{}", if kind == 'p' { " (or one of its partitions)" } else { "" })
    };
    match leader
        .query(
            "SELECT r.oid FROM unnest($1::oid[]) WITH ORDINALITY AS r(oid, ord) \
              WHERE NOT has_table_privilege(r.oid, 'SELECT') ORDER BY r.ord LIMIT 1",
            &[&oids],
        )
        .await
        .as_deref()
    {
        Ok([row, ..]) => {
            let oid: u32 = row.get(0);
            batch.iter().find(|b| b.0 == oid).map(|b| what(&b.1, b.2)).unwrap_or_default()
        }
        _ => {
            let names: Vec<String> = batch.iter().map(|b| what(&b.1, b.2)).collect();
            summarize_names(&names)
        }
    }
}

/// A consistent snapshot of a PostgreSQL database, held open, with its selected tables locked.
///
/// It implements [`pgsnap_core::Source`]: chunks are read by worker connections that import
/// the snapshot (`REPEATABLE READ, READ ONLY` + `SET TRANSACTION SNAPSHOT`) and stream
/// `COPY (SELECT <columns> FROM ONLY <relation> WHERE <range>) TO STDOUT`, or
/// `COPY <relation> (<columns>) TO STDOUT` for a whole relation.
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
        // How each table is split.
        let ways: Vec<(Option<&str>, bool)> = self
            .tables
            .iter()
            .map(|t| {
                let use_key = match split {
                    SplitBy::Pk => t.integer_pk.is_some(),
                    SplitBy::Auto => !tid_range_scans && t.integer_pk.is_some(),
                    // Ctid, and whatever later ways a newer core knows and this source does not.
                    _ => false,
                };
                if matches!(split, SplitBy::Pk) && !use_key {
                    tracing::warn!(table = %t.schema.name, "no single-column integer primary key; split by {}", if tid_range_scans { "ctid" } else { "nothing (one chunk per relation)" });
                }
                let key = use_key.then(|| t.schema.primary_key[0].as_str());
                (key, !use_key && (tid_range_scans || split == SplitBy::Ctid))
            })
            .collect();
        // Key bounds and statistics only for relations split by key into more than one
        // chunk (a relation of one chunk is read whole whatever its keys), read in a few
        // statements for all of them.
        let keyed: Vec<(&Relation, &str)> = self
            .tables
            .iter()
            .zip(&ways)
            .filter_map(|(t, (key, _))| key.map(|k| (t, k)))
            .flat_map(|(t, k)| t.relations.iter().map(move |r| (r, k)))
            .filter(|(r, _)| (r.heap_bytes + r.toast_bytes).div_ceil(target.max(1)) > 1)
            .collect();
        let bounds = key_bounds(&leader, &keyed).await?;
        let histograms = key_histograms(&leader, &keyed).await?;
        let mut plans = Vec::with_capacity(self.tables.len());
        for (t, (key, by_ctid)) in self.tables.iter().zip(ways) {
            let inputs = t
                .relations
                .iter()
                .map(|r| {
                    let blocks =
                        if by_ctid || key.is_some() { r.heap_bytes / block_size as u64 } else { 0 };
                    let key_bounds = bounds.get(&r.oid).copied();
                    let histogram = match key_bounds {
                        Some(_) => histograms.get(&r.oid).cloned().unwrap_or_default(),
                        None => vec![],
                    };
                    RelationInput {
                        blocks,
                        bytes: r.heap_bytes + r.toast_bytes,
                        key: key_bounds,
                        histogram,
                    }
                })
                .collect::<Vec<_>>();
            plans.push(plan_table(t, &inputs, key, target, jobs));
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

/// Relations whose key bounds are read by one statement (a `UNION ALL` of as many
/// `min`/`max` scans): the statement count grows by one per this many keyed relations, not
/// by one per relation.
const KEY_BOUNDS_PER_STATEMENT: usize = 200;

/// The key bounds of relations split by key, under the snapshot: `None` for an empty one.
async fn key_bounds(
    leader: &Client,
    keyed: &[(&Relation, &str)],
) -> Result<HashMap<u32, KeyBounds>> {
    let mut out = HashMap::new();
    for batch in keyed.chunks(KEY_BOUNDS_PER_STATEMENT) {
        let sql = batch
            .iter()
            .map(|(r, k)| {
                format!(
                    "SELECT {}::oid, min({c})::int8, max({c})::int8 FROM ONLY {}",
                    r.oid,
                    r.name.quoted(),
                    c = pgsnap_core::quote_ident(k)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = leader.query(&sql, &[]).await.map_err(|e| {
            let names = batch.iter().map(|(r, _)| r.name.to_string()).collect::<Vec<_>>();
            Error::pg(format!("cannot read key bounds of {}", summarize_names(&names)), e)
        })?;
        for row in rows {
            if let (Some(min), Some(max)) =
                (row.get::<_, Option<i64>>(1), row.get::<_, Option<i64>>(2))
            {
                out.insert(row.get(0), KeyBounds { min, max });
            }
        }
    }
    Ok(out)
}

/// The key column's own statistics of each relation split by key (`NOT inherited`: a
/// partition's, or a table's without its inheritance children, as `FROM ONLY` reads it), in
/// one query.
async fn key_histograms(
    leader: &Client,
    keyed: &[(&Relation, &str)],
) -> Result<HashMap<u32, Vec<i64>>> {
    if keyed.is_empty() {
        return Ok(HashMap::new());
    }
    let oids: Vec<u32> = keyed.iter().map(|(r, _)| r.oid).collect();
    let schemas: Vec<&str> = keyed.iter().map(|(r, _)| r.name.schema.as_str()).collect();
    let names: Vec<&str> = keyed.iter().map(|(r, _)| r.name.name.as_str()).collect();
    let keys: Vec<&str> = keyed.iter().map(|(_, k)| *k).collect();
    let rows = leader
        .query(
            "SELECT w.oid, s.histogram_bounds::text::int8[] \
               FROM unnest($1::oid[], $2::text[], $3::text[], $4::text[]) AS w(oid, schema, name, key) \
               JOIN pg_stats s ON s.schemaname = w.schema AND s.tablename = w.name AND s.attname = w.key \
              WHERE NOT s.inherited",
            &[&oids, &schemas, &names, &keys],
        )
        .await
        .map_err(|e| Error::pg("cannot read the key statistics of the selected tables", e))?;
    Ok(rows.iter().filter_map(|r| r.get::<_, Option<Vec<i64>>>(1).map(|h| (r.get(0), h))).collect())
}

/// `a, b, c` for a few names, `a, b, … (N relations)` for many: an error stays one line.
fn summarize_names(names: &[String]) -> String {
    const SHOWN: usize = 3;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!("{}, … ({} relations)", names[..SHOWN].join(", "), names.len())
    }
}
