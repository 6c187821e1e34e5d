//! Table identity and schema.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Quotes an SQL identifier the way PostgreSQL's `quote_ident` does when quoting is needed,
/// but always: the name is wrapped in double quotes and embedded double quotes are doubled.
///
/// # Example
/// ```
/// assert_eq!(pgsnap_core::quote_ident(r#"Weird "name""#), r#""Weird ""name""""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A schema-qualified relation name, exactly as stored in the catalog (no case folding).
///
/// `Display` prints the quoted, qualified form that is safe to paste into SQL.
///
/// # Example
/// ```
/// use pgsnap_core::TableName;
/// let t = TableName::new("public", "Order Items");
/// assert_eq!(t.to_string(), r#""public"."Order Items""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    /// The schema (namespace) name.
    pub schema: String,
    /// The relation name.
    pub name: String,
}

impl TableName {
    /// Creates a table name from its unquoted parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self { schema: schema.into(), name: name.into() }
    }

    /// The quoted, qualified SQL form (`"schema"."name"`); same as `Display`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// What kind of relation a selected table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TableKind {
    /// An ordinary heap table (possibly an inheritance parent or child, each copied on its own).
    Table,
    /// A partitioned table: copied as its leaf partitions, reported under the parent.
    Partitioned,
    /// A leaf partition selected on its own (its parent is not selected).
    Partition,
}

/// One column of a table as copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name as stored in the catalog.
    pub name: String,
    /// The type as PostgreSQL's `format_type()` prints it, e.g. `numeric(12,2)`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// The shape of a selected table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The reported table (for a partitioned table, the parent).
    #[serde(flatten)]
    pub name: TableName,
    /// The relation kind.
    pub kind: TableKind,
    /// The copied columns, in the order chunk files hold them (the order `COPY <table> TO STDOUT` prints).
    pub columns: Vec<Column>,
    /// Generated columns, which chunk files do not hold.
    pub generated_columns: Vec<String>,
    /// Primary key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
}

impl TableSchema {
    /// The quoted, comma-separated column list for a `SELECT`.
    pub fn select_list(&self) -> String {
        self.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ")
    }
}
