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
///
/// # Example
/// ```
/// use pgsnap_core::{Column, TypeKind};
/// let c = Column::new("mood", "mood", true).with_type_kind(TypeKind::Enum);
/// assert_eq!(c.type_kind, TypeKind::Enum);
/// // A base type's kind is left out of the manifest.
/// let json = serde_json::to_string(&Column::new("id", "bigint", false)).unwrap();
/// assert_eq!(json, r#"{"name":"id","type":"bigint","nullable":false}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Column {
    /// Column name as stored in the catalog.
    pub name: String,
    /// The type as PostgreSQL's `format_type()` prints it, e.g. `numeric(12,2)`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
    /// What kind of type `type_name` is (`pg_type.typtype`): a base type (the default, left
    /// out of the manifest), an enum, a domain, ... Sinks that map types by name need it to
    /// tell an enum `mood` from a composite type `mood`.
    #[serde(default, skip_serializing_if = "TypeKind::is_base")]
    pub type_kind: TypeKind,
}

impl Column {
    /// A column of a base type.
    pub fn new(name: impl Into<String>, type_name: impl Into<String>, nullable: bool) -> Self {
        Self { name: name.into(), type_name: type_name.into(), nullable, type_kind: TypeKind::Base }
    }

    /// Sets [`type_kind`](Self::type_kind).
    pub fn with_type_kind(mut self, kind: TypeKind) -> Self {
        self.type_kind = kind;
        self
    }
}

/// The kind of a column's type, PostgreSQL's `pg_type.typtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TypeKind {
    /// A base type (`b`), including arrays.
    #[default]
    Base,
    /// An enum (`e`).
    Enum,
    /// A domain (`d`).
    Domain,
    /// A composite (row) type (`c`).
    Composite,
    /// A range type (`r`).
    Range,
    /// A multirange type (`m`).
    Multirange,
    /// A pseudo-type (`p`) or anything else.
    Other,
}

impl TypeKind {
    /// The kind for a `pg_type.typtype` letter.
    ///
    /// ```
    /// use pgsnap_core::TypeKind;
    /// assert_eq!(TypeKind::from_typtype('e'), TypeKind::Enum);
    /// assert_eq!(TypeKind::from_typtype('b'), TypeKind::Base);
    /// ```
    pub fn from_typtype(typtype: char) -> Self {
        match typtype {
            'b' => TypeKind::Base,
            'e' => TypeKind::Enum,
            'd' => TypeKind::Domain,
            'c' => TypeKind::Composite,
            'r' => TypeKind::Range,
            'm' => TypeKind::Multirange,
            _ => TypeKind::Other,
        }
    }

    /// Whether this is [`TypeKind::Base`].
    pub fn is_base(&self) -> bool {
        *self == TypeKind::Base
    }
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
