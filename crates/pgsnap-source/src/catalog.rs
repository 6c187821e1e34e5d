//! Table selection and catalog reads, inside the imported snapshot.

use std::collections::{BTreeMap, BTreeSet};

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

/// A recursive CTE `tree(oid)`: the relation `$1` and, when it is partitioned, every
/// partition below it.
///
/// It reads `pg_inherits` with SQL, so it sees the partitions as of the imported snapshot
/// (`pg_partition_tree()` reads the latest catalog and locks every partition, which would
/// wait without a lock timeout behind a session holding an exclusive lock). Plain
/// inheritance children are not followed: they are tables of their own.
const RELATION_TREE: &str = "tree(oid) AS ( \
        SELECT $1::oid \
        UNION ALL \
        SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid \
          JOIN pg_class p ON p.oid = t.oid AND p.relkind = 'p')";

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

/// Reads the schema and sizes of selected tables.
///
/// The caller holds locks on the tables (`pg_relation_size` takes one and would wait).
///
/// # Errors
/// Catalog queries failing; [`Error::Preflight`] for a partitioned table with a partition
/// that is not a heap table (a foreign table), which the copy could not cover.
pub async fn describe(
    client: &Client,
    selected: &[(u32, TableName, char, bool)],
) -> Result<Vec<CatalogTable>> {
    let mut out = Vec::with_capacity(selected.len());
    for (oid, name, kind, is_partition) in selected {
        let cols = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.attgenerated <> '', \
                        t.typtype::text \
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[oid],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read the columns of {name}"), e))?;
        let mut columns = Vec::new();
        let mut generated = Vec::new();
        for r in &cols {
            let col_name: String = r.get(0);
            if r.get::<_, bool>(3) {
                generated.push(col_name);
            } else {
                let typtype: String = r.get(4);
                let kind = TypeKind::from_typtype(typtype.chars().next().unwrap_or('b'));
                columns.push(
                    Column::new(col_name, r.get::<_, String>(1), r.get(2)).with_type_kind(kind),
                );
            }
        }
        let pk_rows = client
            .query(
                "SELECT a.attname::text, t.typname::text FROM pg_index i \
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                   JOIN pg_type t ON t.oid = a.atttypid \
                  WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
                &[oid],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read the primary key of {name}"), e))?;
        let primary_key: Vec<String> = pk_rows.iter().map(|r| r.get(0)).collect();
        let integer_pk = (pk_rows.len() == 1)
            .then(|| pk_rows[0].get::<_, String>(1))
            .filter(|t| matches!(t.as_str(), "int2" | "int4" | "int8"));
        let meta = client
            .query_one(
                "SELECT c.relrowsecurity, c.relreplident::text FROM pg_class c WHERE c.oid = $1",
                &[oid],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read {name}"), e))?;
        let rel_rows = client
            .query(
                &format!(
                    "WITH RECURSIVE {RELATION_TREE} \
                     SELECT c.oid, n.nspname::text, c.relname::text, pg_relation_size(c.oid)::int8, \
                            coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0)::int8, c.relreplident::text, \
                            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
                       FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE c.relkind = 'r' \
                      ORDER BY n.nspname, c.relname"
                ),
                &[oid],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read the size of {name}"), e))?;
        // Partitions that are not heap tables (foreign tables) hold rows the snapshot does
        // not cover and `FROM ONLY` cannot split: refuse rather than copy the table without
        // them.
        let foreign = client
            .query(
                &format!(
                    "WITH RECURSIVE {RELATION_TREE} \
                     SELECT n.nspname::text, c.relname::text \
                       FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE c.relkind NOT IN ('r', 'p') \
                      ORDER BY n.nspname, c.relname"
                ),
                &[oid],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read the partitions of {name}"), e))?;
        if !foreign.is_empty() {
            let list: Vec<String> = foreign
                .iter()
                .map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)).to_string())
                .collect();
            return Err(Error::Preflight(format!(
                "{name} has partitions that are not tables of this database ({}: foreign tables), whose rows no snapshot covers; \
                 exclude {name} and include its other partitions one by one",
                list.join(", ")
            )));
        }
        let relations = rel_rows
            .iter()
            .map(|r| Relation {
                oid: r.get(0),
                name: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                heap_bytes: r.get::<_, i64>(3) as u64,
                toast_bytes: r.get::<_, i64>(4) as u64,
                replica_identity: r.get::<_, String>(5).chars().next().unwrap_or('d'),
                has_pk: r.get(6),
            })
            .collect();
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
                primary_key,
            },
            relations,
            row_security: meta.get(0),
            replica_identity: meta.get::<_, String>(1).chars().next().unwrap_or('d'),
            integer_pk,
        });
    }
    Ok(out)
}

/// The relations of selected tables that could not be published safely: no replica
/// identity usable for UPDATE and DELETE (no primary key under the default identity,
/// `REPLICA IDENTITY NOTHING`, or an identity index that no longer exists).
///
/// It takes no lock on the tables (unlike [`describe`], which reads their sizes).
///
/// # Errors
/// The catalog query failing.
pub async fn without_replica_identity(
    client: &Client,
    selected: &[(u32, TableName, char, bool)],
) -> Result<Vec<TableName>> {
    let mut out = Vec::new();
    for (oid, name, _, _) in selected {
        let rows = client
            .query(
                &format!(
                    "WITH RECURSIVE {RELATION_TREE} \
                     SELECT n.nspname::text, c.relname::text \
                       FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE c.relkind = 'r' AND NOT CASE c.relreplident \
                            WHEN 'f' THEN true \
                            WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) \
                            WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
                            ELSE false END \
                      ORDER BY n.nspname, c.relname"
                ),
                &[oid],
            )
            .await
            .map_err(|e| Error::pg(format!("cannot read the replica identity of {name}"), e))?;
        out.extend(
            rows.iter().map(|r| TableName::new(r.get::<_, String>(0), r.get::<_, String>(1))),
        );
    }
    Ok(out)
}

/// Refuses tables whose rows the current user could not all read: row-level security
/// enabled on a table the user neither owns nor may bypass (or that forces it on its owner
/// too, `FORCE ROW LEVEL SECURITY`), or no SELECT privilege.
///
/// # Errors
/// [`Error::Preflight`] naming the tables and the fix.
pub async fn check_access(client: &Client, tables: &[CatalogTable]) -> Result<()> {
    let row = client
        .query_one(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::pg("cannot read the current role", e))?;
    let bypass: bool = row.get(0);
    let mut rls = Vec::new();
    let mut no_select = Vec::new();
    for t in tables {
        for r in &t.relations {
            let row = client
                .query_one(
                    "SELECT has_table_privilege($1::oid, 'SELECT'), \
                            pg_has_role(c.relowner, 'USAGE') AND NOT c.relforcerowsecurity, c.relrowsecurity \
                       FROM pg_class c WHERE c.oid = $1::oid",
                    &[&r.oid],
                )
                .await
                .map_err(|e| Error::pg(format!("cannot check privileges on {}", r.name), e))?;
            if !row.get::<_, bool>(0) {
                no_select.push(r.name.to_string());
            }
            // Policies apply unless the role bypasses them, or owns the table and the table
            // does not force them on its owner.
            if !bypass && row.get::<_, bool>(2) && !row.get::<_, bool>(1) {
                rls.push(r.name.to_string());
            }
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
