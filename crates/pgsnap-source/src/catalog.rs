//! Table selection and catalog reads, inside the imported snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pattern::TablePattern;
use pgsnap_core::{Column, TableKind, TableName, TableSchema, TypeKind};

/// A selected table with what planning needs.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    /// Name, kind, columns, primary key.
    pub schema: TableSchema,
    /// The relations read (the table itself, or its leaf partitions).
    pub relations: Vec<Relation>,
    /// Whether it has row-level security enabled.
    pub row_security: bool,
    /// `relreplident` of the table: `d`efault, `n`othing, `f`ull, `i`ndex.
    pub replica_identity: char,
    /// The integer type of a single-column primary key (`int2`, `int4`, `int8`), if any.
    pub integer_pk: Option<String>,
}

/// A physical relation read by the copy.
#[derive(Debug, Clone)]
pub struct Relation {
    /// Its name.
    pub name: TableName,
    /// Its oid.
    pub oid: u32,
    /// Main fork size in bytes.
    pub heap_bytes: u64,
    /// TOAST table size in bytes.
    pub toast_bytes: u64,
    /// Replica identity of the relation.
    pub replica_identity: char,
    /// Whether the relation has a primary key (its own or inherited as a partition).
    pub has_pk: bool,
}

const SYSTEM_SCHEMAS: &str = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";

/// Selects tables by include/exclude patterns (see [`crate::pattern`] for the rules).
///
/// Without include patterns every ordinary and partitioned table outside the system schemas
/// is selected. A selected partitioned table covers all its partitions; a partition selected
/// on its own (its ancestors not selected) is copied on its own.
///
/// # Errors
/// An include pattern that matches no table; an exclude pattern that would cut a partition
/// out of a selected partitioned table.
pub async fn select(
    client: &Client,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<(u32, TableName, char, bool)>> {
    // Every candidate: oid, schema, name, relkind, relispartition.
    let rows = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relispartition \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind IN ('r', 'p') AND {SYSTEM_SCHEMAS}"
            ),
            &[],
        )
        .await
        .map_err(|e| Error::pg("cannot list tables", e))?;
    struct Cand {
        name: TableName,
        kind: char,
        is_partition: bool,
    }
    let cands: BTreeMap<u32, Cand> = rows
        .iter()
        .map(|r| {
            let kind: String = r.get(3);
            (
                r.get::<_, u32>(0),
                Cand {
                    name: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                    kind: kind.chars().next().unwrap_or('r'),
                    is_partition: r.get(4),
                },
            )
        })
        .collect();
    let mut selected = BTreeSet::new();
    if include.is_empty() {
        selected.extend(cands.iter().filter(|(_, c)| !c.is_partition).map(|(o, _)| *o));
    } else {
        for pat in include {
            let m = matching(client, pat).await?;
            if m.is_empty() {
                return Err(Error::Preflight(format!(
                    "table not found: include pattern {pat:?} matches no table (patterns follow psql rules: unquoted names are folded to lower case; quote \"MixedCase\" names)"
                )));
            }
            selected.extend(m);
        }
    }
    let mut excluded = BTreeSet::new();
    for pat in exclude {
        excluded.extend(matching(client, pat).await?);
    }
    // Ancestors of each partition, to fold partitions into a selected ancestor (read from
    // pg_inherits with SQL, so as of the snapshot, like everything else here).
    let anc_rows = client
        .query(
            "WITH RECURSIVE anc(child, parent) AS ( \
                 SELECT i.inhrelid, i.inhparent FROM pg_inherits i \
                   JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition \
                 UNION ALL \
                 SELECT a.child, i.inhparent FROM anc a JOIN pg_inherits i ON i.inhrelid = a.parent \
                   JOIN pg_class p ON p.oid = a.parent AND p.relispartition) \
             SELECT child, parent FROM anc",
            &[],
        )
        .await
        .map_err(|e| Error::pg("cannot read partition ancestors", e))?;
    let mut ancestors: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for r in &anc_rows {
        ancestors.entry(r.get(0)).or_default().push(r.get(1));
    }
    let mut out = Vec::new();
    for oid in &selected {
        let Some(c) = cands.get(oid) else { continue };
        let covered = ancestors
            .get(oid)
            .is_some_and(|a| a.iter().any(|x| selected.contains(x) && !excluded.contains(x)));
        if excluded.contains(oid) {
            if covered {
                return Err(Error::Config(format!(
                    "an exclude pattern matches {} but it is a partition of a selected partitioned table; exclude the partitioned table itself, or include only the partitions you want",
                    c.name
                )));
            }
            continue;
        }
        if covered {
            continue;
        }
        out.push((*oid, c.name.clone(), c.kind, c.is_partition));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

async fn matching(client: &Client, pat: &str) -> Result<BTreeSet<u32>> {
    let p = TablePattern::parse(pat)?;
    let rows = client
        .query(
            &format!(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind IN ('r', 'p') AND {SYSTEM_SCHEMAS} \
                    AND ($1::text IS NULL OR n.nspname::text ~ $1::text) AND c.relname::text ~ $2::text"
            ),
            &[&p.schema_regex(), &p.name_regex()],
        )
        .await
        .map_err(|e| Error::pg(format!("cannot match pattern {pat:?}"), e))?;
    Ok(rows.iter().map(|r| r.get::<_, u32>(0)).collect())
}

/// The recursive CTE `tree(root, ord, oid)` over the array of relation oids `$1`: each root
/// (with its position `ord` in the array) and, when it is partitioned, every partition below
/// it.
///
/// It reads `pg_inherits` with SQL, so it sees the partitions as of the imported snapshot
/// (`pg_partition_tree()` reads the latest catalog and locks every partition, which would
/// wait without a lock timeout behind a session holding an exclusive lock). Plain
/// inheritance children are not followed: they are tables of their own. One query covers
/// the whole selection, however many tables it holds.
pub(crate) const RELATION_TREES: &str = "tree(root, ord, oid) AS ( \
        SELECT r.oid, r.ord, r.oid FROM unnest($1::oid[]) WITH ORDINALITY AS r(oid, ord) \
        UNION ALL \
        SELECT t.root, t.ord, i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid \
          JOIN pg_class p ON p.oid = t.oid AND p.relkind = 'p')";

/// Reads the schema and sizes of selected tables.
///
/// The caller holds locks on the tables (`pg_relation_size` takes one and would wait). The
/// number of catalog queries does not depend on the number of tables: each reads the whole
/// selection at once.
///
/// # Errors
/// Catalog queries failing; [`Error::Preflight`] for a partitioned table with a partition
/// that is not a heap table (a foreign table), which the copy could not cover.
pub async fn describe(
    client: &Client,
    selected: &[(u32, TableName, char, bool)],
) -> Result<Vec<CatalogTable>> {
    let oids: Vec<u32> = selected.iter().map(|s| s.0).collect();
    let what = || match selected {
        [(_, name, ..)] => name.to_string(),
        _ => format!("{} tables", selected.len()),
    };
    let meta: HashMap<u32, (bool, char)> = client
        .query(
            "SELECT c.oid, c.relrowsecurity, c.relreplident::text FROM pg_class c WHERE c.oid = ANY($1::oid[])",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg(format!("cannot read {}", what()), e))?
        .iter()
        .map(|r| (r.get(0), (r.get(1), first_char(&r.get::<_, String>(2), 'd'))))
        .collect();
    let mut columns: HashMap<u32, (Vec<Column>, Vec<String>)> = HashMap::new();
    for r in client
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                    a.attgenerated <> '', t.typtype::text \
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
              WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped \
              ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg(format!("cannot read the columns of {}", what()), e))?
    {
        let (cols, generated) = columns.entry(r.get(0)).or_default();
        let col_name: String = r.get(1);
        if r.get::<_, bool>(4) {
            generated.push(col_name);
        } else {
            let kind = TypeKind::from_typtype(first_char(&r.get::<_, String>(5), 'b'));
            cols.push(Column::new(col_name, r.get::<_, String>(2), r.get(3)).with_type_kind(kind));
        }
    }
    let mut keys: HashMap<u32, Vec<(String, String)>> = HashMap::new();
    for r in client
        .query(
            "SELECT i.indrelid, a.attname::text, t.typname::text FROM pg_index i \
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
               JOIN pg_type t ON t.oid = a.atttypid \
              WHERE i.indrelid = ANY($1::oid[]) AND i.indisprimary ORDER BY i.indrelid, k.ord",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg(format!("cannot read the primary key of {}", what()), e))?
    {
        keys.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
    }
    // Every relation below each selected table: heap relations with their sizes, and any
    // other kind (a foreign table partition) to refuse below.
    let mut relations: HashMap<u32, Vec<Relation>> = HashMap::new();
    let mut foreign: HashMap<u32, Vec<String>> = HashMap::new();
    for r in client
        .query(
            &format!(
                "WITH RECURSIVE {RELATION_TREES} \
                 SELECT tree.root, c.oid, n.nspname::text, c.relname::text, c.relkind = 'r', \
                        CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid) ELSE 0 END::int8, \
                        CASE WHEN c.relkind = 'r' THEN coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0) ELSE 0 END::int8, \
                        c.relreplident::text, \
                        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
                   FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind <> 'p' \
                  ORDER BY tree.ord, n.nspname, c.relname"
            ),
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg(format!("cannot read the size of {}", what()), e))?
    {
        let root: u32 = r.get(0);
        let name = TableName::new(r.get::<_, String>(2), r.get::<_, String>(3));
        if !r.get::<_, bool>(4) {
            foreign.entry(root).or_default().push(name.to_string());
            continue;
        }
        relations.entry(root).or_default().push(Relation {
            oid: r.get(1),
            name,
            heap_bytes: r.get::<_, i64>(5) as u64,
            toast_bytes: r.get::<_, i64>(6) as u64,
            replica_identity: first_char(&r.get::<_, String>(7), 'd'),
            has_pk: r.get(8),
        });
    }
    let mut out = Vec::with_capacity(selected.len());
    for (oid, name, kind, is_partition) in selected {
        // Partitions that are not heap tables (foreign tables) hold rows the snapshot does
        // not cover and `FROM ONLY` cannot split: refuse rather than copy the table without
        // them.
        if let Some(list) = foreign.get(oid) {
            return Err(Error::Preflight(format!(
                "{name} has partitions that are not tables of this database ({}: foreign tables), whose rows no snapshot covers; \
                 exclude {name} and include its other partitions one by one",
                list.join(", ")
            )));
        }
        let Some(&(row_security, replica_identity)) = meta.get(oid) else {
            return Err(Error::Preflight(format!(
                "{name} was dropped while the snapshot was taken; run again"
            )));
        };
        let (columns, generated) = columns.remove(oid).unwrap_or_default();
        let pk = keys.remove(oid).unwrap_or_default();
        let integer_pk = match pk.as_slice() {
            [(_, t)] if matches!(t.as_str(), "int2" | "int4" | "int8") => Some(t.clone()),
            _ => None,
        };
        let kind = match (kind, is_partition) {
            ('p', _) => TableKind::Partitioned,
            (_, true) => TableKind::Partition,
            _ => TableKind::Table,
        };
        out.push(CatalogTable {
            schema: TableSchema {
                name: name.clone(),
                kind,
                columns,
                generated_columns: generated,
                primary_key: pk.into_iter().map(|(c, _)| c).collect(),
            },
            relations: relations.remove(oid).unwrap_or_default(),
            row_security,
            replica_identity,
            integer_pk,
        });
    }
    Ok(out)
}

fn first_char(s: &str, default: char) -> char {
    s.chars().next().unwrap_or(default)
}

/// The relations of selected tables that could not be published safely: no replica
/// identity usable for UPDATE and DELETE (no primary key under the default identity,
/// `REPLICA IDENTITY NOTHING`, or an identity index that no longer exists).
///
/// It takes no lock on the tables (unlike [`describe`], which reads their sizes), and reads
/// the whole selection in one query.
///
/// # Errors
/// The catalog query failing.
pub async fn without_replica_identity(
    client: &Client,
    selected: &[(u32, TableName, char, bool)],
) -> Result<Vec<TableName>> {
    let oids: Vec<u32> = selected.iter().map(|s| s.0).collect();
    let rows = client
        .query(
            &format!(
                "WITH RECURSIVE {RELATION_TREES} \
                 SELECT n.nspname::text, c.relname::text \
                   FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind = 'r' AND NOT CASE c.relreplident \
                        WHEN 'f' THEN true \
                        WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) \
                        WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
                        ELSE false END \
                  ORDER BY tree.ord, n.nspname, c.relname"
            ),
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg("cannot read the replica identity of the selected tables", e))?;
    Ok(rows.iter().map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1))).collect())
}

/// Refuses tables whose rows the current user could not all read: row-level security
/// enabled on a table the user neither owns nor may bypass (or that forces it on its owner
/// too, `FORCE ROW LEVEL SECURITY`), or no SELECT privilege. One query for the whole
/// selection.
///
/// # Errors
/// [`Error::Preflight`] naming the tables and the fix.
pub async fn check_access(client: &Client, tables: &[CatalogTable]) -> Result<()> {
    let oids: Vec<u32> = tables.iter().flat_map(|t| &t.relations).map(|r| r.oid).collect();
    let rows = client
        .query(
            "SELECT c.oid, has_table_privilege(c.oid, 'SELECT'), \
                    pg_has_role(c.relowner, 'USAGE') AND NOT c.relforcerowsecurity, c.relrowsecurity, \
                    (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) \
               FROM pg_class c WHERE c.oid = ANY($1::oid[])",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg("cannot check privileges on the selected tables", e))?;
    let access: HashMap<u32, (bool, bool, bool, bool)> = rows
        .iter()
        .map(|r| {
            (r.get(0), (r.get(1), r.get(2), r.get(3), r.get::<_, Option<bool>>(4) == Some(true)))
        })
        .collect();
    let mut rls = Vec::new();
    let mut no_select = Vec::new();
    for r in tables.iter().flat_map(|t| &t.relations) {
        let Some(&(select, owner, row_security, bypass)) = access.get(&r.oid) else { continue };
        if !select {
            no_select.push(r.name.to_string());
        }
        // Policies apply unless the role bypasses them, or owns the table and the table
        // does not force them on its owner.
        if !bypass && row_security && !owner {
            rls.push(r.name.to_string());
        }
    }
    if !no_select.is_empty() {
        return Err(Error::Preflight(format!(
            "the user has no SELECT privilege on {}; GRANT SELECT ON the tables (column-level grants are not enough: each table is locked in ACCESS SHARE mode, which needs table-level SELECT, as with pg_dump) or exclude them",
            no_select.join(", ")
        )));
    }
    if !rls.is_empty() {
        return Err(Error::Preflight(format!(
            "row-level security would filter rows of {}; connect as a role with BYPASSRLS (or as the owner, unless the table forces row-level security on its owner), or exclude them",
            rls.join(", ")
        )));
    }
    Ok(())
}
