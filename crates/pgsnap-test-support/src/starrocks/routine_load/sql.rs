//! Parsing of the Routine Load statements (spec §4): `CREATE ROUTINE LOAD`, `PAUSE` /
//! `RESUME` / `STOP ROUTINE LOAD FOR`, `SHOW [ALL] ROUTINE LOAD`.

use std::collections::BTreeMap;

use super::super::ddl::{Cursor, ER_NOT_SUPPORTED_YET, SqlError};
use super::expr;
use super::{ColumnItem, KafkaOffset, RoutineLoadDef, StarRocksVersion, not_modelled};

/// A parsed Routine Load statement.
#[derive(Debug, Clone)]
pub(crate) enum RlStatement {
    /// `CREATE ROUTINE LOAD`.
    Create(Box<RoutineLoadDef>),
    /// `PAUSE ROUTINE LOAD FOR [db.]name`.
    Pause(Option<String>, String),
    /// `RESUME ROUTINE LOAD FOR [db.]name`.
    Resume(Option<String>, String),
    /// `STOP ROUTINE LOAD FOR [db.]name`.
    Stop(Option<String>, String),
    /// `SHOW [ALL] ROUTINE LOAD [FOR [db.]name] [FROM db]`.
    Show {
        /// `ALL` was given (STOPPED and CANCELLED jobs too).
        all: bool,
        /// `FOR [db.]name`.
        name: Option<(Option<String>, String)>,
        /// `FROM db`.
        from: Option<String>,
    },
}

/// Parses a Routine Load statement; `version` decides which job properties exist.
pub(crate) fn parse_statement(
    sql: &str,
    version: &StarRocksVersion,
) -> Result<RlStatement, SqlError> {
    let mut c = Cursor::new(sql)?;
    let stmt = if c.eat_kws(&["CREATE", "ROUTINE", "LOAD"]) {
        RlStatement::Create(Box::new(parse_create(&mut c, sql, version)?))
    } else if c.eat_kws(&["PAUSE", "ROUTINE", "LOAD", "FOR"]) {
        let (db, name) = c.qualified_name()?;
        RlStatement::Pause(db, name)
    } else if c.eat_kws(&["RESUME", "ROUTINE", "LOAD", "FOR"]) {
        let (db, name) = c.qualified_name()?;
        RlStatement::Resume(db, name)
    } else if c.eat_kws(&["STOP", "ROUTINE", "LOAD", "FOR"]) {
        let (db, name) = c.qualified_name()?;
        RlStatement::Stop(db, name)
    } else if c.eat_kw("SHOW") {
        let all = c.eat_kw("ALL");
        if !c.eat_kws(&["ROUTINE", "LOAD"]) {
            return Err(SqlError::unsupported(sql));
        }
        let name = if c.eat_kw("FOR") { Some(c.qualified_name()?) } else { None };
        let from = if c.eat_kw("FROM") || c.eat_kw("IN") { Some(c.ident()?) } else { None };
        if c.is_kw("WHERE") || c.is_kw("ORDER") || c.is_kw("LIMIT") {
            return Err(not_modelled(format!("SHOW ROUTINE LOAD ... {}", c.describe_next())));
        }
        RlStatement::Show { all, name, from }
    } else {
        return Err(SqlError::unsupported(sql));
    };
    c.expect_end()?;
    Ok(stmt)
}

/// `( "k" = "v", ... )`; keys and values are string literals.
fn parse_properties(c: &mut Cursor<'_>, what: &str) -> Result<Vec<(String, String)>, SqlError> {
    c.expect_punct('(')?;
    let mut out: Vec<(String, String)> = Vec::new();
    if c.eat_punct(')') {
        return Ok(out);
    }
    loop {
        let key = c.string()?;
        c.expect_punct('=')?;
        let value = c.string()?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(not_modelled(format!("the {what} property \"{key}\" given twice")));
        }
        out.push((key, value));
        if c.eat_punct(')') {
            return Ok(out);
        }
        c.expect_punct(',')?;
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, SqlError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(SqlError::analysis(format!("{key} must be true or false, got '{v}'")))
    }
}

fn parse_int(key: &str, v: &str, min: i64, rule: &str) -> Result<i64, SqlError> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(SqlError::analysis(format!("{key} {rule}, got '{v}'"))),
    }
}

fn parse_create(
    c: &mut Cursor<'_>,
    sql: &str,
    version: &StarRocksVersion,
) -> Result<RoutineLoadDef, SqlError> {
    let (db, name) = c.qualified_name()?;
    if !c.eat_kw("ON") {
        return Err(SqlError::syntax(format!(
            "Unexpected input {}, expected 'ON'",
            c.describe_next()
        )));
    }
    let table = c.ident()?;

    // Load properties: COLUMNS (...), and the ones the double refuses by name.
    let mut items: Option<Vec<ColumnItem>> = None;
    let mut columns_text = String::new();
    loop {
        if c.is_kw("PROPERTIES") || c.is_kw("FROM") {
            break;
        }
        if c.eat_kws(&["COLUMNS", "TERMINATED"]) || c.eat_kws(&["ROWS", "TERMINATED"]) {
            return Err(not_modelled("COLUMNS/ROWS TERMINATED BY (CSV Routine Load)"));
        }
        if c.is_kw("WHERE") {
            return Err(not_modelled("WHERE in CREATE ROUTINE LOAD"));
        }
        if c.is_kw("PARTITION") || c.is_kw("TEMPORARY") {
            return Err(not_modelled("PARTITION in CREATE ROUTINE LOAD"));
        }
        if c.is_kw("WITH") {
            return Err(not_modelled("WITH MERGE/APPEND/DELETE in CREATE ROUTINE LOAD"));
        }
        if !c.eat_kw("COLUMNS") {
            return Err(SqlError::syntax(format!(
                "Unexpected input {}, expected COLUMNS, PROPERTIES or FROM",
                c.describe_next()
            )));
        }
        if items.is_some() {
            return Err(SqlError::analysis("repeat setting of column list"));
        }
        let start = c.offset();
        c.expect_punct('(')?;
        let mut list = Vec::new();
        loop {
            let col = c.ident()?;
            if c.eat_punct('=') {
                let e = expr::parse_expr(c)?;
                e.ty()?;
                list.push(ColumnItem::Derived(col, e));
            } else {
                list.push(ColumnItem::Source(col));
            }
            if c.eat_punct(')') {
                break;
            }
            c.expect_punct(',')?;
        }
        columns_text = c.sql[start..c.prev_end()].to_owned();
        items = Some(list);
        if !c.eat_punct(',') {
            break;
        }
    }
    let Some(items) = items else {
        return Err(not_modelled("CREATE ROUTINE LOAD without COLUMNS"));
    };
    let mut names: Vec<String> = Vec::new();
    for item in &items {
        let n = item.name().to_lowercase();
        if names.contains(&n) {
            return Err(SqlError::analysis(format!("Duplicate column: {}", item.name())));
        }
        names.push(n);
    }

    let job_props = if c.eat_kw("PROPERTIES") { parse_properties(c, "job")? } else { Vec::new() };
    if !c.eat_kws(&["FROM", "KAFKA"]) {
        return Err(if c.is_kw("FROM") {
            not_modelled(format!("the data source {}", {
                c.pos += 1;
                c.describe_next()
            }))
        } else {
            SqlError::syntax(format!("Unexpected input {}, expected FROM", c.describe_next()))
        });
    }
    let kafka_props = parse_properties(c, "kafka")?;

    let mut def = RoutineLoadDef {
        sql: sql.trim().to_owned(),
        db,
        name,
        table,
        items,
        columns_text,
        jsonpaths: Vec::new(),
        paths: Vec::new(),
        strict_mode: false,
        timezone: None,
        max_error_number: 0,
        max_filter_ratio: 1.0,
        max_batch_rows: 200_000,
        pause_on_fatal_parse_error: false,
        job_properties: BTreeMap::new(),
        broker_list: String::new(),
        topic: String::new(),
        partitions: Vec::new(),
        offsets: Vec::new(),
        custom_properties: BTreeMap::new(),
    };
    apply_job_properties(&mut def, &job_props, version)?;
    apply_kafka_properties(&mut def, &kafka_props)?;
    let sources = def.items.iter().filter(|i| matches!(i, ColumnItem::Source(_))).count();
    if sources != def.paths.len() {
        return Err(SqlError::new(
            ER_NOT_SUPPORTED_YET,
            format!(
                "test double: jsonpaths has {} paths but COLUMNS has {sources} source columns \
                 (names without an expression)",
                def.paths.len()
            ),
        ));
    }
    Ok(def)
}

/// The job properties StarRocks knows (CREATE_ROUTINE_LOAD.md, `CreateRoutineLoadStmt`), except
/// `pause_on_fatal_parse_error`, which depends on the version.
const KNOWN_JOB_PROPERTIES: &[&str] = &[
    "format",
    "jsonpaths",
    "strip_outer_array",
    "json_root",
    "strict_mode",
    "timezone",
    "max_error_number",
    "max_filter_ratio",
    "desired_concurrent_number",
    "max_batch_interval",
    "max_batch_rows",
    "task_consume_second",
    "task_timeout_second",
    "partial_update",
    "partial_update_mode",
    "merge_condition",
    "log_rejected_record_num",
];

fn apply_job_properties(
    def: &mut RoutineLoadDef,
    props: &[(String, String)],
    version: &StarRocksVersion,
) -> Result<(), SqlError> {
    // StarRocks checks the names first (`<name> is invalid property`).
    for (k, _) in props {
        let known = KNOWN_JOB_PROPERTIES.contains(&k.as_str())
            || (k == "pause_on_fatal_parse_error" && version.has_pause_on_fatal_parse_error());
        if !known {
            return Err(SqlError::analysis(format!("{k} is invalid property")));
        }
    }
    let mut format = None;
    for (k, v) in props {
        def.job_properties.insert(k.clone(), v.clone());
        match k.as_str() {
            "format" => format = Some(v.to_ascii_lowercase()),
            "jsonpaths" => {
                let list: Vec<String> = serde_json::from_str(v).map_err(|e| {
                    SqlError::analysis(format!("jsonpaths must be a JSON array of strings: {e}"))
                })?;
                def.paths =
                    list.iter().map(|p| parse_jsonpath(p)).collect::<Result<Vec<_>, _>>()?;
                def.jsonpaths = list;
            }
            "strip_outer_array" => {
                if parse_bool(k, v)? {
                    return Err(not_modelled("strip_outer_array=true"));
                }
            }
            "json_root" => {
                if !v.is_empty() {
                    return Err(not_modelled("json_root"));
                }
            }
            "strict_mode" => def.strict_mode = parse_bool(k, v)?,
            "timezone" => def.timezone = Some(v.clone()),
            "max_error_number" => {
                def.max_error_number = parse_int(k, v, 0, "should >= 0")? as u64;
            }
            "max_filter_ratio" => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => def.max_filter_ratio = r,
                _ => {
                    return Err(SqlError::analysis(format!(
                        "max_filter_ratio should between 0 and 1, got '{v}'"
                    )));
                }
            },
            "desired_concurrent_number" => {
                parse_int(k, v, 1, "should > 0")?;
            }
            "max_batch_interval" => {
                parse_int(k, v, 5, "should >= 5")?;
            }
            "max_batch_rows" => {
                def.max_batch_rows = parse_int(k, v, 200_000, "should >= 200000")? as u64;
            }
            "task_consume_second" | "task_timeout_second" => {
                parse_int(k, v, 1, "should > 0")?;
            }
            "log_rejected_record_num" => {
                parse_int(k, v, -1, "should >= -1")?;
            }
            "partial_update" => {
                if parse_bool(k, v)? {
                    return Err(not_modelled("partial_update=true"));
                }
            }
            "partial_update_mode" => return Err(not_modelled("partial_update_mode")),
            "merge_condition" => return Err(not_modelled("merge_condition")),
            "pause_on_fatal_parse_error" => def.pause_on_fatal_parse_error = parse_bool(k, v)?,
            _ => unreachable!("checked above"),
        }
    }
    match format.as_deref() {
        Some("json") => {}
        None | Some("csv") => return Err(not_modelled("CSV Routine Load (format csv)")),
        Some(other) => return Err(not_modelled(format!("format '{other}'"))),
    }
    if def.jsonpaths.is_empty() {
        return Err(not_modelled("JSON Routine Load without jsonpaths"));
    }
    Ok(())
}

/// A `jsonpaths` entry: `$.a.b` (keys of nested objects). Anything else is refused.
fn parse_jsonpath(path: &str) -> Result<Vec<String>, SqlError> {
    let refuse = || not_modelled(format!("the jsonpath '{path}' (only $.a.b)"));
    let rest = path.trim().strip_prefix("$.").ok_or_else(refuse)?;
    rest.split('.')
        .map(|k| {
            if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                Ok(k.to_owned())
            } else {
                Err(refuse())
            }
        })
        .collect()
}

/// `property.<name>` keys the double accepts (and ignores: no commits, no security).
const KNOWN_CUSTOM: &[&str] = &["group.id", "client.id", "kafka_default_offsets"];

fn parse_offset(v: &str) -> Result<KafkaOffset, SqlError> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("OFFSET_BEGINNING") {
        Ok(KafkaOffset::Beginning)
    } else if t.eq_ignore_ascii_case("OFFSET_END") {
        Ok(KafkaOffset::End)
    } else {
        match t.parse::<i64>() {
            Ok(n) if n >= 0 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(KafkaOffset::Offset(n)),
            _ => Err(SqlError::analysis(format!(
                "Invalid kafka offset '{t}': must be a non-negative integer, OFFSET_BEGINNING or \
                 OFFSET_END"
            ))),
        }
    }
}

fn apply_kafka_properties(
    def: &mut RoutineLoadDef,
    props: &[(String, String)],
) -> Result<(), SqlError> {
    let mut offsets_text = None;
    let mut partitions_text = None;
    for (k, v) in props {
        match k.as_str() {
            "kafka_broker_list" => def.broker_list = v.trim().to_owned(),
            "kafka_topic" => def.topic = v.trim().to_owned(),
            "kafka_partitions" => partitions_text = Some(v.clone()),
            "kafka_offsets" => offsets_text = Some(v.clone()),
            "confluent.schema.registry.url" => {
                return Err(not_modelled("confluent.schema.registry.url (Avro)"));
            }
            _ => match k.strip_prefix("property.") {
                Some(p) if KNOWN_CUSTOM.contains(&p) => {
                    if p == "kafka_default_offsets" {
                        parse_offset(v)?;
                    }
                    def.custom_properties.insert(p.to_owned(), v.clone());
                }
                Some(p) => return Err(not_modelled(format!("the kafka property property.{p}"))),
                None => return Err(SqlError::analysis(format!("{k} is invalid kafka property"))),
            },
        }
    }
    if def.broker_list.is_empty() {
        return Err(SqlError::analysis("kafka_broker_list is required"));
    }
    if def.topic.is_empty() {
        return Err(SqlError::analysis("kafka_topic is required"));
    }
    let Some(partitions_text) = partitions_text else {
        return Err(not_modelled("Routine Load without kafka_partitions (all partitions)"));
    };
    for p in partitions_text.split(',') {
        let p = p.trim();
        let n = p
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0 && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| SqlError::analysis(format!("Invalid kafka partition '{p}'")))?;
        if def.partitions.contains(&n) {
            return Err(SqlError::analysis(format!("Duplicated partition {n}")));
        }
        def.partitions.push(n);
    }
    def.offsets = match offsets_text {
        Some(text) => {
            let offsets =
                text.split(',').map(parse_offset).collect::<Result<Vec<KafkaOffset>, _>>()?;
            if offsets.len() != def.partitions.len() {
                return Err(SqlError::analysis(
                    "Partitions number should be equals to offsets number",
                ));
            }
            offsets
        }
        None => {
            let default = match def.custom_properties.get("kafka_default_offsets") {
                Some(v) => parse_offset(v)?,
                None => KafkaOffset::End,
            };
            vec![default; def.partitions.len()]
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let v = StarRocksVersion::parse("3.4.2").unwrap();
        assert!(matches!(
            parse_statement("PAUSE ROUTINE LOAD FOR db.j", &v).unwrap(),
            RlStatement::Pause(Some(d), n) if d == "db" && n == "j"
        ));
        assert!(matches!(
            parse_statement("SHOW ALL ROUTINE LOAD FOR `j` FROM db", &v).unwrap(),
            RlStatement::Show { all: true, name: Some((None, n)), from: Some(f) } if n == "j" && f == "db"
        ));
        assert!(parse_statement("SHOW ROUTINE LOAD WHERE State = 'RUNNING'", &v).is_err());
    }
}
