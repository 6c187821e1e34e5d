//! Preflight for a snapshot → CDC handoff (Debezium on a pgoutput slot).
//!
//! A snapshot followed by a change log stays exact downstream only when every change can
//! be applied by key and carries the values it changes. Per selected table this checks:
//!
//! - **a primary key**: without one, updates and deletes cannot be applied by key
//!   downstream (and under `REPLICA IDENTITY DEFAULT` the source even refuses `UPDATE` and
//!   `DELETE` on a published table), so the table *cannot be kept exact*;
//! - **`REPLICA IDENTITY`** (`pg_class.relreplident`: `d` default, `n` nothing, `f` full,
//!   `i` index);
//! - **TOAST risk**: an `UPDATE` that leaves an out-of-line (TOASTed) value unchanged is
//!   decoded without that value; Debezium then writes `__debezium_unavailable_value` in
//!   `after`, which a blind upsert would store over the real value. Tables at risk have a
//!   replica identity other than `FULL` and at least one toastable column
//!   (`attstorage` `x` or `e`, not dropped, not generated) outside the replica identity key.
//!   The fix is `ALTER TABLE … REPLICA IDENTITY FULL`;
//! - **partitioned tables**: pgsnap's publication sets `publish_via_partition_root = true`,
//!   so there is one topic per parent; the old tuple (and so the TOAST risk) is decided by
//!   each *leaf partition's* replica identity, which is checked per leaf.
//!
//! ```no_run
//! # async fn demo() -> pgsnap_source::Result<()> {
//! use pgsnap_core::TableName;
//! let pre = pgsnap_source::handoff::handoff_preflight(
//!     "host=db dbname=app",
//!     &[TableName::new("public", "orders")],
//! )
//! .await?;
//! for e in pre.strict_errors() {
//!     eprintln!("{e}");
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use pgsnap_core::{TableName, quote_ident};
use serde::Serialize;

use crate::{Error, Result, conninfo};

/// The placeholder Debezium writes for an unchanged TOASTed value.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// What the handoff preflight found for one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableHandoff {
    /// The table as selected.
    pub table: TableName,
    /// Primary key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// `pg_class.relreplident` of the table: `d` default, `n` nothing, `f` full, `i` index.
    /// For a partitioned table, the weakest of its leaf partitions (any non-`f` leaf wins).
    pub replica_identity: char,
    /// Whether the table is a partitioned parent (published via its root).
    pub partitioned: bool,
    /// Toastable columns (`attstorage` `x`/`e`, not dropped, not generated).
    pub toastable: Vec<String>,
    /// Toastable columns outside the replica identity key of a table whose replica identity
    /// is not `FULL`: an update that leaves them unchanged arrives as
    /// `__debezium_unavailable_value`.
    pub toast_at_risk: Vec<String>,
    /// Statements that remove the TOAST risk (`ALTER TABLE … REPLICA IDENTITY FULL`, per
    /// leaf partition for a partitioned table).
    pub fixes: Vec<String>,
    /// Why the table cannot be kept exact; empty when it can.
    pub problems: Vec<String>,
    /// Facts worth reporting that are not problems (e.g. one topic per partitioned parent).
    pub notes: Vec<String>,
}

impl TableHandoff {
    /// Whether nothing stands in the way of an exact handoff.
    pub fn is_exact(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether the table has toastable columns at risk of `__debezium_unavailable_value`.
    pub fn toast_risk(&self) -> bool {
        !self.toast_at_risk.is_empty()
    }
}

/// The handoff preflight of the selected tables, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HandoffPreflight {
    /// One entry per selected table.
    pub tables: Vec<TableHandoff>,
}

impl HandoffPreflight {
    /// Every problem as `<table>: <problem>`, for a strict run to refuse on. Empty when every
    /// table can be kept exact.
    pub fn strict_errors(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(|t| t.problems.iter().map(move |p| format!("{}: {p}", t.table)))
            .collect()
    }

    /// The tables at TOAST risk.
    pub fn toast_at_risk(&self) -> impl Iterator<Item = &TableHandoff> {
        self.tables.iter().filter(|t| t.toast_risk())
    }

    /// The tables without a primary key.
    pub fn without_primary_key(&self) -> impl Iterator<Item = &TableHandoff> {
        self.tables.iter().filter(|t| t.primary_key.is_empty())
    }

    /// The table named `table`, if it was checked.
    pub fn table(&self, table: &TableName) -> Option<&TableHandoff> {
        self.tables.iter().find(|t| &t.table == table)
    }
}

/// Runs the handoff preflight over a new connection (what
/// [`PgSourceBuilder::new`](crate::PgSourceBuilder::new) takes).
///
/// # Errors
/// A bad connection string, no connection, or a failed catalog query.
pub async fn handoff_preflight(
    connection: impl Into<conninfo::Connection>,
    tables: &[TableName],
) -> Result<HandoffPreflight> {
    let spec = connection.into().resolve()?;
    let client = crate::client::connect(&spec).await?;
    handoff_preflight_with(&client, tables).await
}

/// Selects tables by `include`/`exclude` patterns (the rules of
/// [`PgSourceBuilder::with_include`](crate::PgSourceBuilder::with_include), same selection as
/// the snapshot will make) and runs the handoff preflight on them, over a new connection.
/// It reads the catalog only: no snapshot, slot or lock.
///
/// # Errors
/// As [`handoff_preflight`]; an include pattern that matches nothing.
pub async fn handoff_preflight_selected(
    connection: impl Into<conninfo::Connection>,
    include: &[String],
    exclude: &[String],
) -> Result<HandoffPreflight> {
    let spec = connection.into().resolve()?;
    let client = crate::client::connect(&spec).await?;
    let selected = crate::catalog::select(&client, include, exclude).await?;
    let names: Vec<TableName> = selected.into_iter().map(|(_, n, _, _)| n).collect();
    handoff_preflight_with(&client, &names).await
}

/// Runs the handoff preflight on an open connection.
///
/// # Errors
/// A failed catalog query.
pub async fn handoff_preflight_with(
    client: &tokio_postgres::Client,
    tables: &[TableName],
) -> Result<HandoffPreflight> {
    // Three catalog queries for the whole list, however long it is: the tables, the leaf
    // partitions of the partitioned ones, and the facts of every relation involved.
    let schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut found: HashMap<usize, TableRow> = HashMap::new();
    for r in client
        .query(REL_SQL, &[&schemas, &names])
        .await
        .map_err(|e| Error::pg("cannot read the catalog of the selected tables", e))?
    {
        let ord: i64 = r.get(0);
        found.insert(
            (ord - 1) as usize,
            TableRow {
                oid: r.get(1),
                relkind: first_char(&r.get::<_, String>(2)),
                replident: first_char(&r.get::<_, String>(3)),
                primary_key: r.get(4),
            },
        );
    }
    let parents: Vec<u32> = found.values().filter(|t| t.relkind == 'p').map(|t| t.oid).collect();
    let mut leaves: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in client
        .query(LEAVES_SQL, &[&parents])
        .await
        .map_err(|e| Error::pg("cannot list the partitions of the selected tables", e))?
    {
        leaves.entry(r.get(0)).or_default().push(r.get(1));
    }
    let mut oids: Vec<u32> = found.values().map(|t| t.oid).collect();
    oids.extend(leaves.values().flatten());
    let mut facts: HashMap<u32, RelFacts> = HashMap::new();
    for row in client
        .query(FACTS_SQL, &[&oids])
        .await
        .map_err(|e| Error::pg("cannot read the catalog of the selected tables' relations", e))?
    {
        facts.insert(
            row.get(0),
            RelFacts {
                name: TableName::new(row.get::<_, String>(1), row.get::<_, String>(2)),
                replident: first_char(&row.get::<_, String>(3)),
                identity_key: row.get(4),
                toastable: row.get(5),
            },
        );
    }
    let mut out = HandoffPreflight::default();
    for (i, t) in tables.iter().enumerate() {
        out.tables.push(assess(t, found.get(&i), &leaves, &facts)?);
    }
    Ok(out)
}

/// A selected table's own catalog row.
struct TableRow {
    oid: u32,
    relkind: char,
    replident: char,
    primary_key: Vec<String>,
}

/// One relation's facts: (relreplident, key columns of its replica identity, toastable
/// columns).
struct RelFacts {
    name: TableName,
    replident: char,
    identity_key: Vec<String>,
    toastable: Vec<String>,
}

const REL_SQL: &str = "
SELECT w.ord, c.oid, c.relkind::text, c.relreplident::text,
       COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS pk
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(schema, name, ord)
  JOIN pg_namespace n ON n.nspname = w.schema
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name";

const FACTS_SQL: &str = "
SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text,
       COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                  WHERE i.indrelid = c.oid
                    AND CASE c.relreplident WHEN 'i' THEN i.indisreplident
                                            WHEN 'd' THEN i.indisprimary
                                            ELSE false END), '{}') AS identity_key,
       COALESCE((SELECT array_agg(a.attname::text ORDER BY a.attnum)
                   FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attgenerated = '' AND a.attstorage IN ('x', 'e')), '{}') AS toastable
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = ANY($1::oid[])";

/// The leaf partitions of partitioned tables (PostgreSQL 12+), per parent.
const LEAVES_SQL: &str = "SELECT p.oid, t.relid::oid FROM unnest($1::oid[]) AS p(oid) \
    CROSS JOIN LATERAL pg_partition_tree(p.oid::regclass) AS t WHERE t.isleaf ORDER BY p.oid, t.level, t.relid";

fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or('?')
}

/// `ALTER TABLE <quoted> REPLICA IDENTITY FULL`.
pub fn replica_identity_full_sql(table: &TableName) -> String {
    format!("ALTER TABLE {} REPLICA IDENTITY FULL", table.quoted())
}

fn identity_name(c: char) -> &'static str {
    match c {
        'd' => "DEFAULT",
        'n' => "NOTHING",
        'f' => "FULL",
        'i' => "USING INDEX",
        _ => "unknown",
    }
}

/// The handoff verdict for one table, from its catalog rows.
fn assess(
    table: &TableName,
    row: Option<&TableRow>,
    leaves: &HashMap<u32, Vec<u32>>,
    facts: &HashMap<u32, RelFacts>,
) -> Result<TableHandoff> {
    let mut th = TableHandoff {
        table: table.clone(),
        primary_key: Vec::new(),
        replica_identity: '?',
        partitioned: false,
        toastable: Vec::new(),
        toast_at_risk: Vec::new(),
        fixes: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let Some(row) = row else {
        th.problems.push("table does not exist".into());
        return Ok(th);
    };
    let oid = row.oid;
    th.primary_key = row.primary_key.clone();
    th.partitioned = row.relkind == 'p';
    let fact = |oid: u32| {
        facts.get(&oid).ok_or_else(|| {
            Error::Preflight(format!(
                "{table} changed while its catalog was read (relation {oid} is gone); run again"
            ))
        })
    };
    th.toastable = fact(oid)?.toastable.clone();
    // The relations whose replica identity decides the old tuple: the table itself, or the
    // leaf partitions of a partitioned parent (changes are decoded on the leaves).
    let rels: Vec<&RelFacts> = if th.partitioned {
        th.notes.push(
            "partitioned: published via its root (publish_via_partition_root = true), so its \
             changes go to one topic named after this parent; replica identity is checked on \
             each leaf partition"
                .into(),
        );
        leaves.get(&oid).into_iter().flatten().map(|l| fact(*l)).collect::<Result<_>>()?
    } else {
        vec![fact(oid)?]
    };
    // The weakest identity among the relations: anything but FULL wins, NOTHING first.
    th.replica_identity = rels
        .iter()
        .map(|r| r.replident)
        .min_by_key(|c| match c {
            'n' => 0,
            'd' => 1,
            'i' => 2,
            'f' => 4,
            _ => 3,
        })
        .unwrap_or(row.replident);

    if th.primary_key.is_empty() {
        th.problems.push(
            "no primary key: updates and deletes cannot be applied by key downstream, so this \
             table cannot be kept exact"
                .into(),
        );
    }
    for r in &rels {
        let who = if th.partitioned { format!("partition {}", r.name) } else { "table".into() };
        match r.replident {
            'n' => th.problems.push(format!(
                "{who} has REPLICA IDENTITY NOTHING: updates and deletes of a published table \
                 fail on the source, and deletes carry no key; fix: {}",
                replica_identity_full_sql(&r.name)
            )),
            'd' if r.identity_key.is_empty() && !th.primary_key.is_empty() => {
                // A leaf without its own primary key under a parent that has one cannot
                // happen (partitioned primary keys cascade); nothing to add.
            }
            'd' if r.identity_key.is_empty() => th.problems.push(format!(
                "{who} has REPLICA IDENTITY DEFAULT and no primary key: UPDATE and DELETE on it \
                 fail once it is published; fix: add a primary key (or {})",
                replica_identity_full_sql(&r.name)
            )),
            _ => {}
        }
        if r.replident == 'f' {
            continue;
        }
        let at_risk: Vec<&String> =
            r.toastable.iter().filter(|c| !r.identity_key.contains(c)).collect();
        if at_risk.is_empty() {
            continue;
        }
        for c in at_risk {
            if !th.toast_at_risk.contains(c) {
                th.toast_at_risk.push(c.clone());
            }
        }
        th.fixes.push(replica_identity_full_sql(&r.name));
    }
    if !th.toast_at_risk.is_empty() {
        th.problems.push(format!(
            "REPLICA IDENTITY {} with TOASTable non-key column(s) {}: an UPDATE that leaves a \
             large out-of-line value unchanged reaches Debezium as {UNAVAILABLE_VALUE:?} and \
             would overwrite the real value downstream; fix: {}",
            identity_name(th.replica_identity),
            th.toast_at_risk.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
            th.fixes.join("; ")
        ));
    }
    Ok(th)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_text_quotes_identifiers() {
        assert_eq!(
            replica_identity_full_sql(&TableName::new("public", "Or\"ders")),
            r#"ALTER TABLE "public"."Or""ders" REPLICA IDENTITY FULL"#
        );
    }

    #[test]
    fn strict_errors_name_the_table() {
        let pre = HandoffPreflight {
            tables: vec![TableHandoff {
                table: TableName::new("public", "t"),
                primary_key: vec![],
                replica_identity: 'd',
                partitioned: false,
                toastable: vec![],
                toast_at_risk: vec![],
                fixes: vec![],
                problems: vec!["no primary key".into()],
                notes: vec![],
            }],
        };
        assert_eq!(pre.strict_errors(), [r#""public"."t": no primary key"#]);
        assert_eq!(pre.without_primary_key().count(), 1);
        assert_eq!(pre.toast_at_risk().count(), 0);
    }
}
