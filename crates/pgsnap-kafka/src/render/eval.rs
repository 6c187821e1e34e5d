//! A small evaluator of the Routine Load mapping subset that
//! [`render_routine_load`](super::render_routine_load) emits, used to check the rendered
//! statement against real Debezium events.
//!
//! It parses the *rendered SQL text*: the `"jsonpaths"` property (a JSON array of
//! dot-notation paths `$.a.b`) and the `COLUMNS (…)` clause, whose items are either a plain
//! column (filled positionally from `jsonpaths`) or `col = expr` with `expr` one of: a column
//! reference, a `'string'`, an integer, `coalesce(e, …)`, `ifnull(a, b)`, or
//! `if(a = b, x, y)`.
//!
//! Semantics (what we expect StarRocks to do; **not verified against StarRocks**): a missing
//! path or a JSON `null` is SQL `NULL`; `coalesce` returns its first non-`NULL` argument;
//! `a = b` is `NULL` if either side is `NULL`, and `if` takes the else branch on `NULL`.
//! Anything outside this subset is an [`EvalError`].

use std::collections::BTreeMap;

use serde_json::Value;

/// Why the statement could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routine load mapping: {0}")]
pub struct EvalError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Ident(String),
    DStr(String),
    SStr(String),
    Int(i64),
    Punct(char),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, EvalError> {
    let mut out = Vec::new();
    let mut it = sql.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() => {}
            '`' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some('`') if it.peek() == Some(&'`') => {
                            it.next();
                            s.push('`');
                        }
                        Some('`') => break,
                        Some(c) => s.push(c),
                        None => return err("unterminated `identifier`"),
                    }
                }
                out.push(Tok::Ident(s));
            }
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some('\\') => match it.next() {
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some('0') => s.push('\0'),
                            Some(e) => s.push(e),
                            None => return err("unterminated string"),
                        },
                        Some(q) if q == c => break,
                        Some(ch) => s.push(ch),
                        None => return err("unterminated string"),
                    }
                }
                out.push(if c == '"' { Tok::DStr(s) } else { Tok::SStr(s) });
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut s = String::from(c);
                while let Some(d) = it.peek().copied().filter(char::is_ascii_digit) {
                    s.push(d);
                    it.next();
                }
                out.push(Tok::Int(s.parse().map_err(|_| EvalError(format!("bad number {s}")))?));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(d) = it.peek().copied().filter(|d| d.is_alphanumeric() || *d == '_')
                {
                    s.push(d);
                    it.next();
                }
                out.push(Tok::Word(s));
            }
            '(' | ')' | ',' | '=' | '.' | ';' => out.push(Tok::Punct(c)),
            other => return err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

/// An expression of the supported subset.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Col(String),
    Lit(Value),
    Eq(Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

/// One item of the `COLUMNS` clause.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Source(String),
    Derived(String, Expr),
}

/// The parsed mapping of one rendered `CREATE ROUTINE LOAD` statement.
///
/// ```
/// use std::collections::BTreeMap;
/// use pgsnap_kafka::render::{eval::Mapping, render_routine_load, RoutineLoadSpec};
///
/// let spec = RoutineLoadSpec::new("db", "t", "j", "p.public.t", ["k:9092"],
///     ["id", "v"], ["id"], BTreeMap::from([(0, 0)]));
/// let sql = render_routine_load(&spec).unwrap().sql;
/// let mapping = Mapping::parse(&sql).unwrap();
/// let row = mapping
///     .evaluate(&serde_json::json!({"before": {"id": 7}, "after": null, "op": "d"}))
///     .unwrap();
/// assert_eq!(row.op, Some(1));
/// assert_eq!(row.columns["id"], serde_json::json!(7));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    jsonpaths: Vec<Vec<String>>,
    items: Vec<Item>,
}

/// The row a mapping produces for one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    /// Target (derived) columns and their values; `Value::Null` is SQL `NULL`. Excludes
    /// `__op`.
    pub columns: BTreeMap<String, Value>,
    /// The value of `__op` (0 = upsert, 1 = delete), `None` if the mapping has no `__op`.
    pub op: Option<i64>,
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<&Tok> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }
    fn expect(&mut self, c: char) -> Result<(), EvalError> {
        match self.next() {
            Some(Tok::Punct(p)) if *p == c => Ok(()),
            other => err(format!("expected {c:?}, found {other:?}")),
        }
    }
    fn name(&mut self) -> Result<String, EvalError> {
        match self.next() {
            Some(Tok::Ident(s)) | Some(Tok::Word(s)) => Ok(s.clone()),
            other => err(format!("expected a column name, found {other:?}")),
        }
    }
    fn primary(&mut self) -> Result<Expr, EvalError> {
        match self.next().cloned() {
            Some(Tok::Ident(s)) => Ok(Expr::Col(s)),
            Some(Tok::SStr(s)) => Ok(Expr::Lit(Value::String(s))),
            Some(Tok::Int(i)) => Ok(Expr::Lit(Value::from(i))),
            Some(Tok::Word(w)) => {
                if self.peek() == Some(&Tok::Punct('(')) {
                    self.pos += 1;
                    let mut args = vec![self.expr()?];
                    while self.peek() == Some(&Tok::Punct(',')) {
                        self.pos += 1;
                        args.push(self.expr()?);
                    }
                    self.expect(')')?;
                    Ok(Expr::Call(w.to_ascii_lowercase(), args))
                } else {
                    Ok(Expr::Col(w))
                }
            }
            other => err(format!("unsupported expression token {other:?}")),
        }
    }
    fn expr(&mut self) -> Result<Expr, EvalError> {
        let lhs = self.primary()?;
        if self.peek() == Some(&Tok::Punct('=')) {
            self.pos += 1;
            let rhs = self.primary()?;
            return Ok(Expr::Eq(Box::new(lhs), Box::new(rhs)));
        }
        Ok(lhs)
    }
}

fn parse_path(path: &str) -> Result<Vec<String>, EvalError> {
    let Some(rest) = path.strip_prefix('$') else {
        return err(format!("jsonpath {path:?} does not start with $"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = rest.strip_prefix('.') else {
        return err(format!("jsonpath {path:?}: only dot notation is supported"));
    };
    rest.split('.')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(seg.to_owned())
            } else {
                err(format!("jsonpath {path:?}: unsupported segment {seg:?}"))
            }
        })
        .collect()
}

impl Mapping {
    /// Parse the `jsonpaths` property and the `COLUMNS` clause of a rendered statement.
    ///
    /// ```
    /// use pgsnap_kafka::render::eval::Mapping;
    /// assert!(Mapping::parse("CREATE ROUTINE LOAD x").is_err());
    /// ```
    pub fn parse(sql: &str) -> Result<Self, EvalError> {
        let toks = tokenize(sql)?;
        // COLUMNS ( … )
        let start = toks
            .windows(2)
            .position(|w| {
                matches!(&w[0], Tok::Word(x) if x.eq_ignore_ascii_case("COLUMNS"))
                    && w[1] == Tok::Punct('(')
            })
            .ok_or_else(|| EvalError("no COLUMNS clause".into()))?;
        let mut p = Parser { toks: &toks, pos: start + 2 };
        let mut items = Vec::new();
        loop {
            let name = p.name()?;
            if p.peek() == Some(&Tok::Punct('=')) {
                p.pos += 1;
                items.push(Item::Derived(name, p.expr()?));
            } else {
                items.push(Item::Source(name));
            }
            match p.next() {
                Some(Tok::Punct(',')) => continue,
                Some(Tok::Punct(')')) => break,
                other => return err(format!("expected ',' or ')' in COLUMNS, found {other:?}")),
            }
        }
        // "jsonpaths" = "[…]"
        let jp = toks
            .windows(3)
            .find_map(|w| match w {
                [Tok::DStr(k), Tok::Punct('='), Tok::DStr(v)] if k == "jsonpaths" => Some(v),
                _ => None,
            })
            .ok_or_else(|| EvalError("no \"jsonpaths\" property".into()))?;
        let paths: Vec<String> = serde_json::from_str(jp)
            .map_err(|e| EvalError(format!("jsonpaths is not a JSON string array: {e}")))?;
        let jsonpaths = paths.iter().map(|p| parse_path(p)).collect::<Result<Vec<_>, _>>()?;
        let sources = items.iter().filter(|i| matches!(i, Item::Source(_))).count();
        if sources != jsonpaths.len() {
            return err(format!(
                "{} jsonpaths but {sources} source columns in COLUMNS",
                jsonpaths.len()
            ));
        }
        Ok(Self { jsonpaths, items })
    }

    /// Apply the mapping to one Debezium message value (the whole JSON document, with or
    /// without the `{"schema","payload"}` wrapper, as the mapping expects).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use pgsnap_kafka::render::{eval::Mapping, render_routine_load, RoutineLoadSpec};
    ///
    /// let spec = RoutineLoadSpec::new("db", "t", "j", "p.public.t", ["k:9092"],
    ///     ["id"], ["id"], BTreeMap::from([(0, 0)]));
    /// let mapping = Mapping::parse(&render_routine_load(&spec).unwrap().sql).unwrap();
    /// let row = mapping
    ///     .evaluate(&serde_json::json!({"before": null, "after": {"id": 1}, "op": "c"}))
    ///     .unwrap();
    /// assert_eq!(row.op, Some(0));
    /// ```
    pub fn evaluate(&self, event: &Value) -> Result<EvalRow, EvalError> {
        let mut env: BTreeMap<String, Value> = BTreeMap::new();
        let mut paths = self.jsonpaths.iter();
        for item in &self.items {
            if let Item::Source(name) = item {
                let path = paths.next().expect("counts checked in parse");
                let mut v = event;
                for seg in path {
                    v = v.get(seg).unwrap_or(&Value::Null);
                }
                env.insert(name.clone(), v.clone());
            }
        }
        let mut columns = BTreeMap::new();
        let mut op = None;
        for item in &self.items {
            if let Item::Derived(name, expr) = item {
                let v = eval(expr, &env)?;
                if name == "__op" {
                    op = Some(
                        v.as_i64().ok_or_else(|| EvalError(format!("__op evaluated to {v}")))?,
                    );
                } else {
                    columns.insert(name.clone(), v.clone());
                }
                // Later expressions may refer to earlier derived columns.
                env.insert(name.clone(), v);
            }
        }
        Ok(EvalRow { columns, op })
    }
}

fn eval(expr: &Expr, env: &BTreeMap<String, Value>) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Col(c) => {
            env.get(c).cloned().ok_or_else(|| EvalError(format!("unknown column {c:?}")))?
        }
        Expr::Lit(v) => v.clone(),
        Expr::Eq(a, b) => {
            let (a, b) = (eval(a, env)?, eval(b, env)?);
            if a.is_null() || b.is_null() { Value::Null } else { Value::Bool(a == b) }
        }
        Expr::Call(f, args) => match (f.as_str(), args.as_slice()) {
            ("coalesce", args) | ("ifnull", args @ [_, _]) => {
                for a in args {
                    let v = eval(a, env)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Value::Null
            }
            ("if", [c, t, e]) => {
                if eval(c, env)? == Value::Bool(true) {
                    eval(t, env)?
                } else {
                    eval(e, env)?
                }
            }
            (f, args) => return err(format!("unsupported function {f}/{}", args.len())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{RoutineLoadSpec, render_routine_load};
    use serde_json::json;

    // Verbatim from debezium-handoff.md §6 (apache/flink
    // debezium-postgres-data-schema-exclude.txt, Debezium 1.2.1, REPLICA IDENTITY FULL).
    const UPDATE: &str = r#"{"before":{"id":106,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0},"after":{"id":106,"name":"hammer","description":"18oz carpenter hammer","weight":1.0},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010889629,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":602,"lsn":34131104,"xmin":null},"op":"u","ts_ms":1596010890411,"transaction":null}"#;
    const INSERT: &str = r#"{"before":null,"after":{"id":110,"name":"jacket","description":"water resistent white wind breaker","weight":0.2},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010946488,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":604,"lsn":34132560,"xmin":null},"op":"c","ts_ms":1596010946870,"transaction":null}"#;
    const DELETE: &str = r#"{"before":{"id":111,"name":"scooter","description":"Big 2-wheel scooter ","weight":5.17},"after":null,"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596010988168,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":608,"lsn":34133800,"xmin":null},"op":"d","ts_ms":1596010988596,"transaction":null}"#;

    fn spec(schemas: bool, pk: bool) -> RoutineLoadSpec {
        RoutineLoadSpec::new(
            "inventory",
            "products",
            "products_cdc",
            "fullfillment.inventory.products",
            ["k:9092"],
            ["id", "name", "description", "weight"],
            if pk { vec!["id"] } else { vec![] },
            BTreeMap::from([(0, 0)]),
        )
        .with_schemas_enabled(schemas)
        .with_primary_key_table(pk)
    }

    // First line of apache/flink debezium-postgres-data-schema-include.txt (verbatim): a
    // snapshot read (`op` = "r") wrapped in {"schema","payload"}.
    const READ_WITH_SCHEMA: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":true,"field":"description"},{"type":"double","optional":true,"field":"weight"}],"optional":true,"name":"fullfillment.inventory.products.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":true,"field":"description"},{"type":"double","optional":true,"field":"weight"}],"optional":true,"name":"fullfillment.inventory.products.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"field":"transaction"}],"optional":false,"name":"fullfillment.inventory.products.Envelope"},"payload":{"before":null,"after":{"id":101,"name":"scooter","description":"Small 2-wheel scooter","weight":3.14},"source":{"version":"1.2.1.Final","connector":"postgresql","name":"fullfillment","ts_ms":1596001099434,"snapshot":"true","db":"postgres","schema":"inventory","table":"products","txId":601,"lsn":34078720,"xmin":null},"op":"r","ts_ms":1596001099434,"transaction":null}}"#;

    /// Wrap a bare payload as the JSON converter does with `schemas.enable=true`, using the
    /// real envelope schema of the same table (from `READ_WITH_SCHEMA`); the sibling fixture
    /// file holds these same events wrapped this way.
    fn wrap(payload: &str) -> Value {
        let read: Value = serde_json::from_str(READ_WITH_SCHEMA).unwrap();
        json!({
            "schema": read["schema"].clone(),
            "payload": serde_json::from_str::<Value>(payload).unwrap(),
        })
    }

    #[test]
    fn snapshot_read_with_schema_is_an_upsert() {
        let m = Mapping::parse(&render_routine_load(&spec(true, true)).unwrap().sql).unwrap();
        let r = row(&m, &serde_json::from_str(READ_WITH_SCHEMA).unwrap());
        assert_eq!(r.op, Some(0));
        assert_eq!(r.columns["id"], json!(101));
        assert_eq!(r.columns["name"], json!("scooter"));
    }

    fn row(m: &Mapping, v: &Value) -> EvalRow {
        m.evaluate(v).unwrap()
    }

    #[test]
    fn fixtures_with_and_without_schemas() {
        for schemas in [false, true] {
            let sql = render_routine_load(&spec(schemas, true)).unwrap().sql;
            let m = Mapping::parse(&sql).unwrap();
            let ev = |s: &str| {
                if schemas { wrap(s) } else { serde_json::from_str(s).unwrap() }
            };

            let r = row(&m, &ev(INSERT));
            assert_eq!(r.op, Some(0));
            assert_eq!(
                r.columns,
                BTreeMap::from([
                    ("id".to_string(), json!(110)),
                    ("name".to_string(), json!("jacket")),
                    ("description".to_string(), json!("water resistent white wind breaker")),
                    ("weight".to_string(), json!(0.2)),
                ])
            );

            let r = row(&m, &ev(UPDATE));
            assert_eq!(r.op, Some(0), "update is an upsert of after");
            assert_eq!(r.columns["id"], json!(106));
            assert_eq!(r.columns["description"], json!("18oz carpenter hammer"));

            let r = row(&m, &ev(DELETE));
            assert_eq!(r.op, Some(1), "delete");
            assert_eq!(r.columns["id"], json!(111), "key comes from before");
            assert_eq!(r.columns["name"], Value::Null);

            // The wrong envelope shape yields no key at all: the mapping is shape-specific.
            let wrong = if schemas { serde_json::from_str(INSERT).unwrap() } else { wrap(INSERT) };
            let r = row(&m, &wrong);
            assert_eq!(r.columns["id"], Value::Null);
        }
    }

    #[test]
    fn replica_identity_nothing_delete_has_no_key() {
        // A delete under REPLICA IDENTITY NOTHING has before = null: the row has a NULL key
        // (StarRocks would reject it); pgsnap's preflight requires a primary key.
        let m = Mapping::parse(&render_routine_load(&spec(false, true)).unwrap().sql).unwrap();
        let r = row(&m, &json!({"before": null, "after": null, "op": "d"}));
        assert_eq!(r.op, Some(1));
        assert_eq!(r.columns["id"], Value::Null);
    }

    #[test]
    fn duplicate_key_mapping_loads_after_only() {
        let m = Mapping::parse(&render_routine_load(&spec(false, false)).unwrap().sql).unwrap();
        let r = row(&m, &serde_json::from_str(UPDATE).unwrap());
        assert_eq!(r.op, None);
        assert_eq!(r.columns["description"], json!("18oz carpenter hammer"));
        let r = row(&m, &serde_json::from_str(DELETE).unwrap());
        assert!(r.columns.values().all(Value::is_null), "delete loads NULLs");
    }

    #[test]
    fn parse_errors() {
        assert!(Mapping::parse("COLUMNS (a) PROPERTIES (\"jsonpaths\" = \"[]\")").is_err());
        assert!(
            Mapping::parse("COLUMNS (a) PROPERTIES (\"jsonpaths\" = \"[\\\"$['a']\\\"]\")")
                .is_err()
        );
        let m = Mapping::parse(
            "COLUMNS (x, y = upper(x)) PROPERTIES (\"jsonpaths\" = \"[\\\"$.a\\\"]\")",
        )
        .unwrap();
        assert!(m.evaluate(&json!({"a": "b"})).is_err());
    }
}
