//! Stream Load request parameters (spec §1.2), CSV and JSON parsing (§5.5, §5.6) and typed
//! value conversion into canonical [`Cell`]s.
//!
//! The rule throughout: the double must never accept what real StarRocks would reject. Where
//! StarRocks' behaviour is unconfirmed, the row is filtered (or the load fails) with a reason
//! that starts with `test double:`. The sourced conversion rules themselves live in `value.rs`
//! (shared with Routine Load); this file adds the Stream Load path's extra strictness (see the
//! `starrocks` module doc).

use std::borrow::Cow;

use super::catalog::{Cell, ColumnDef, KeysType, PendingRow, SrType, TableDef};
use super::http::Request;
use super::json::{J, JV, parse_json};
use super::value;

/// The default `timeout` of a load, FE `stream_load_default_timeout_second` (spec §1.2).
pub(crate) const DEFAULT_TIMEOUT_SECS: u32 = 600;
/// The largest `timeout` the double accepts (spec §1.2: 1–259200).
const MAX_TIMEOUT_SECS: u32 = 259_200;

/// The data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// CSV (possibly compressed).
    Csv,
    /// JSON.
    Json,
}

/// How the body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Plain.
    None,
    /// gzip (`format: gzip` for CSV, `compression: gzip` for JSON).
    Gzip,
    /// zstd.
    Zstd,
}

/// Parses the `format` header (SL `parse_format`, spec §1.2).
pub(crate) fn parse_format(value: Option<&str>) -> Result<(Format, Compression), String> {
    let Some(v) = value else { return Ok((Format::Csv, Compression::None)) };
    match v.to_ascii_lowercase().as_str() {
        "csv" => Ok((Format::Csv, Compression::None)),
        "json" => Ok((Format::Json, Compression::None)),
        "gzip" => Ok((Format::Csv, Compression::Gzip)),
        "zstd" => Ok((Format::Csv, Compression::Zstd)),
        "bzip2" | "lz4" | "deflate" => Err(format!(
            "test double: compressed CSV format '{v}' is not modelled (only gzip and zstd)"
        )),
        _ => Err(format!("unknown data format, format={v}")),
    }
}

/// Parses a `timeout` header: an unsigned integer of seconds, 1–259200 (spec §1.2), else
/// `Invalid timeout format`.
pub(crate) fn parse_timeout(value: Option<&str>) -> Result<u32, String> {
    let Some(v) = value else { return Ok(DEFAULT_TIMEOUT_SECS) };
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_TIMEOUT_SECS).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err("Invalid timeout format".to_owned()),
    }
}

/// Parses a `true`/`false` header (case-insensitive), with StarRocks' error message.
fn parse_bool(value: Option<&str>, error: &str) -> Result<Option<bool>, String> {
    match value {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(error.to_owned()),
    }
}

/// Decodes a separator header: `\xHH...` (or `\\xHH...`) hex forms, else the UTF-8 bytes
/// (spec §1.2, §5.5; at most 50 bytes).
fn parse_separator(value: &str, what: &str) -> Result<Vec<u8>, String> {
    let hex = value.strip_prefix("\\\\x").or_else(|| value.strip_prefix("\\x"));
    let bytes = match hex {
        Some(h) if !h.is_empty() && h.len() % 2 == 0 => (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("test double: invalid hex {what} '{value}'"))?,
        Some(_) => return Err(format!("test double: invalid hex {what} '{value}'")),
        None => value.as_bytes().to_vec(),
    };
    if bytes.is_empty() || bytes.len() > 50 {
        return Err(format!("test double: {what} must be 1 to 50 bytes, got '{value}'"));
    }
    Ok(bytes)
}

/// One item of the `columns` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnItem {
    /// A plain name: a field of the source data.
    Source(String),
    /// `__op = <name>`: the operation comes from the source field `<name>`.
    OpFrom(String),
    /// `__op = 'delete'` / `'upsert'` / `0` / `1`: a constant operation (`true` = delete).
    OpConst(bool),
}

/// Parses the `columns` header: comma-separated names, optionally backtick-quoted, plus the
/// documented `__op = <name>` / `__op = <constant>` mappings (spec §1.2). Any other expression
/// fails with a `test double:` message.
pub(crate) fn parse_columns(value: &str) -> Result<Vec<ColumnItem>, String> {
    fn unquote(s: &str) -> Option<String> {
        let s = s.trim();
        let name = match s.strip_prefix('`') {
            Some(rest) => rest.strip_suffix('`')?,
            None => s,
        };
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '-');
        ok.then(|| name.to_owned())
    }
    let mut items = Vec::new();
    for raw in value.split(',') {
        let item = raw.trim();
        if let Some((lhs, rhs)) = item.split_once('=') {
            let lhs_name = unquote(lhs);
            if !lhs_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("__op")) {
                return Err(format!(
                    "test double: expressions in the columns header are not modelled: '{item}'"
                ));
            }
            let rhs = rhs.trim();
            let constant = match rhs.to_ascii_lowercase().as_str() {
                "'delete'" | "\"delete\"" | "1" => Some(true),
                "'upsert'" | "\"upsert\"" | "0" => Some(false),
                _ => None,
            };
            match (constant, unquote(rhs)) {
                (Some(c), _) => items.push(ColumnItem::OpConst(c)),
                (None, Some(name)) => items.push(ColumnItem::OpFrom(name)),
                (None, None) => {
                    return Err(format!(
                        "test double: expressions in the columns header are not modelled: '{item}'"
                    ));
                }
            }
        } else {
            match unquote(item) {
                Some(name) => items.push(ColumnItem::Source(name)),
                None => {
                    return Err(format!(
                        "test double: cannot parse columns header item '{item}' in '{value}'"
                    ));
                }
            }
        }
    }
    Ok(items)
}

/// CSV options (spec §1.2, §5.5).
#[derive(Debug, Clone)]
pub(crate) struct CsvOptions {
    /// `column_separator`, default `\t`.
    pub(crate) column_separator: Vec<u8>,
    /// `row_delimiter`, default `\n`.
    pub(crate) row_delimiter: Vec<u8>,
    /// `enclose` (first byte).
    pub(crate) enclose: Option<u8>,
    /// `skip_header`.
    pub(crate) skip_header: u64,
    /// `trim_space`.
    pub(crate) trim_space: bool,
}

/// JSON options (spec §1.2, §5.6).
#[derive(Debug, Clone, Default)]
pub(crate) struct JsonOptions {
    /// `strip_outer_array`.
    pub(crate) strip_outer_array: bool,
    /// `jsonpaths`, each a list of object keys.
    pub(crate) jsonpaths: Option<Vec<Vec<String>>>,
    /// `json_root`.
    pub(crate) json_root: Option<Vec<String>>,
}

/// The parameters of one load, from its headers (the checks StarRocks' BE makes in
/// `_process_put`, after begin; spec §1.2).
#[derive(Debug, Clone)]
pub(crate) struct LoadParams {
    /// The format.
    pub(crate) format: Format,
    /// The body compression.
    pub(crate) compression: Compression,
    /// CSV options.
    pub(crate) csv: CsvOptions,
    /// JSON options.
    pub(crate) json: JsonOptions,
    /// The `columns` header.
    pub(crate) columns: Option<Vec<ColumnItem>>,
    /// `max_filter_ratio`, default 0.
    pub(crate) max_filter_ratio: f64,
}

/// Parses a JSON path of the simple form `$`, `$.a`, `$.a.b` (keys of nested objects).
fn parse_json_path(path: &str) -> Result<Vec<String>, String> {
    let path = path.trim();
    let rest = path.strip_prefix('$').ok_or_else(|| {
        format!("test double: only simple JSON paths like $.a.b are modelled: '{path}'")
    })?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_prefix('.').ok_or_else(|| {
        format!("test double: only simple JSON paths like $.a.b are modelled: '{path}'")
    })?;
    rest.split('.')
        .map(|k| {
            let ok = !k.is_empty() && !k.contains(['[', ']', '*', '"', '\'', ' ']);
            if ok {
                Ok(k.to_owned())
            } else {
                Err(format!(
                    "test double: only simple JSON paths like $.a.b are modelled: '{path}'"
                ))
            }
        })
        .collect()
}

impl LoadParams {
    /// Reads and validates the load headers that StarRocks checks after begin (`_process_put`),
    /// plus the headers the double refuses because it does not model them.
    pub(crate) fn from_request(
        req: &Request,
        format: Format,
        compression: Compression,
    ) -> Result<LoadParams, String> {
        let h = |name: &str| req.header_nonempty(name);
        let columns = h("columns").map(parse_columns).transpose()?;
        if h("where").is_some() {
            return Err("test double: the where header is not modelled".into());
        }
        let column_separator = match h("column_separator") {
            Some(v) => parse_separator(v, "column_separator")?,
            None => b"\t".to_vec(),
        };
        let row_delimiter = match h("row_delimiter") {
            Some(v) => parse_separator(v, "row_delimiter")?,
            None => b"\n".to_vec(),
        };
        let skip_header = match h("skip_header") {
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n < 0 => {
                    return Err("skip_header must be equal or greater than 0".into());
                }
                Ok(n) => n as u64,
                Err(_) => return Err("Invalid csv load skip_header format".into()),
            },
            None => 0,
        };
        let trim_space =
            parse_bool(h("trim_space"), "Invalid trim space format. Must be bool type")?
                .unwrap_or(false);
        let enclose = h("enclose").map(|v| v.as_bytes()[0]);
        if h("escape").is_some() {
            return Err("test double: the escape header is not modelled, because StarRocks' \
                        escape semantics are not confirmed"
                .into());
        }
        if h("partitions").is_some() && h("temporary_partitions").is_some() {
            return Err("Can not specify both partitions and temporary partitions".into());
        }
        if h("partitions").is_some() || h("temporary_partitions").is_some() {
            return Err("test double: partitions / temporary_partitions are not modelled".into());
        }
        if h("negative").is_some_and(|v| v == "true") {
            return Err("test double: negative loads are not modelled".into());
        }
        // Validated, then ignored: the double filters conversion failures in both modes (the
        // NULL-in-non-strict-mode detail is UNCONFIRMED, §5.5).
        parse_bool(h("strict_mode"), "Invalid strict mode format. Must be bool type")?;
        if let Some(v) = h("load_mem_limit") {
            match v.parse::<i64>() {
                Ok(n) if n < 0 => {
                    return Err("load_mem_limit must be equal or greater than 0".into());
                }
                Ok(_) => {}
                Err(_) => return Err("Invalid load mem limit format".into()),
            }
        }
        let jsonpaths = match h("jsonpaths") {
            Some(v) => {
                let list: Vec<String> = serde_json::from_str(v).map_err(|e| {
                    format!("test double: jsonpaths must be a JSON array of strings: {e}")
                })?;
                Some(list.iter().map(|p| parse_json_path(p)).collect::<Result<Vec<_>, _>>()?)
            }
            None => None,
        };
        let json_root = h("json_root").map(parse_json_path).transpose()?;
        let strip_outer_array =
            h("strip_outer_array").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if parse_bool(h("partial_update"), "Invalid partial update flag format. Must be bool type")?
            == Some(true)
        {
            return Err("test double: partial_update is not modelled".into());
        }
        if h("merge_condition").is_some() {
            return Err("test double: merge_condition is not modelled".into());
        }
        if h("load_dop").is_some_and(|v| v.parse::<i64>().is_err()) {
            return Err("Invalid load_dop format".into());
        }
        if h("enable_merge_commit").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err("test double: merge commit (enable_merge_commit) is not modelled".into());
        }
        if h("envelope").is_some() {
            return Err("test double: the envelope header is not modelled".into());
        }
        let max_filter_ratio = match h("max_filter_ratio") {
            Some(v) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    return Err(format!(
                        "test double: max_filter_ratio must be a number from 0 to 1, got '{v}'"
                    ));
                }
            },
            None => 0.0,
        };
        let compression = match (h("compression"), h("content-encoding")) {
            (Some(_), Some(_)) => {
                return Err(
                    "Only one of http header content-encoding and compression can be set".into()
                );
            }
            (Some(v), None) | (None, Some(v)) => {
                if format != Format::Json {
                    return Err(format!(
                        "test double: the compression / Content-Encoding header is only modelled \
                         for format json (got '{v}'); use format gzip or zstd for CSV"
                    ));
                }
                match v.to_ascii_lowercase().as_str() {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    _ => {
                        return Err(format!(
                            "test double: compression '{v}' is not modelled (only gzip and zstd)"
                        ));
                    }
                }
            }
            (None, None) => compression,
        };
        Ok(LoadParams {
            format,
            compression,
            csv: CsvOptions { column_separator, row_delimiter, enclose, skip_header, trim_space },
            json: JsonOptions { strip_outer_array, jsonpaths, json_root },
            columns,
            max_filter_ratio,
        })
    }
}

/// Decompresses a body.
pub(crate) fn decompress(compression: Compression, data: Vec<u8>) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    match compression {
        Compression::None => Ok(data),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&data[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("test double: gzip body does not decompress: {e}"))?;
            Ok(out)
        }
        Compression::Zstd => zstd::stream::decode_all(&data[..])
            .map_err(|e| format!("test double: zstd body does not decompress: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The plan: how source fields map onto table columns.

/// Where a source field goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Column(usize),
    Op,
    Temp,
}

/// Where a row's `__op` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpPlan {
    None,
    Const(bool),
    Source(usize),
    /// JSON without a `columns` header on a Primary Key table: an `__op` key (spec §1.2).
    JsonKey,
}

/// The mapping of one load onto its table (what StarRocks' FE plans in `streamLoadPut`).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    columns: Vec<ColumnDef>,
    /// Per source field (CSV field, JSON key or jsonpath): its name and where it goes.
    sources: Vec<(String, Target)>,
    op: OpPlan,
    params: LoadParams,
}

impl Plan {
    /// Builds the plan; `Err` is a load failure message.
    pub(crate) fn new(table: &TableDef, params: &LoadParams) -> Result<Plan, String> {
        let primary = table.keys_type == KeysType::Primary;
        let find =
            |name: &str| table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
        let mut sources: Vec<(String, Target)> = Vec::new();
        let mut op = OpPlan::None;
        match &params.columns {
            Some(items) => {
                let source_names: Vec<&String> = items
                    .iter()
                    .filter_map(|i| if let ColumnItem::Source(n) = i { Some(n) } else { None })
                    .collect();
                for item in items {
                    match item {
                        ColumnItem::Source(name) => {
                            let target = if name.eq_ignore_ascii_case("__op") {
                                Target::Op
                            } else if let Some(idx) = find(name) {
                                if sources.iter().any(|(_, t)| *t == Target::Column(idx)) {
                                    return Err(format!(
                                        "test double: column '{name}' appears twice in the columns header"
                                    ));
                                }
                                Target::Column(idx)
                            } else {
                                Target::Temp
                            };
                            sources.push((name.clone(), target));
                        }
                        ColumnItem::OpFrom(_) | ColumnItem::OpConst(_) => {}
                    }
                }
                for item in items {
                    let new_op = match item {
                        ColumnItem::Source(_) => continue,
                        ColumnItem::OpConst(c) => OpPlan::Const(*c),
                        ColumnItem::OpFrom(name) => {
                            let Some(idx) =
                                source_names.iter().position(|n| n.eq_ignore_ascii_case(name))
                            else {
                                return Err(format!(
                                    "test double: __op = {name} does not name a column of the columns header"
                                ));
                            };
                            OpPlan::Source(idx)
                        }
                    };
                    if op != OpPlan::None {
                        return Err(
                            "test double: __op is mapped twice in the columns header".into()
                        );
                    }
                    op = new_op;
                }
                if let Some(idx) = sources.iter().position(|(_, t)| *t == Target::Op) {
                    if op != OpPlan::None {
                        return Err(
                            "test double: __op is mapped twice in the columns header".into()
                        );
                    }
                    op = OpPlan::Source(idx);
                }
                for (i, (name, target)) in sources.iter().enumerate() {
                    if *target == Target::Temp && op != OpPlan::Source(i) {
                        return Err(format!(
                            "test double: '{name}' in the columns header is not a column of table \
                             '{}' (unused source columns are not modelled)",
                            table.name
                        ));
                    }
                }
                if op != OpPlan::None && !primary {
                    return Err(format!(
                        "test double: __op is only modelled for Primary Key tables; '{}' is not one",
                        table.name
                    ));
                }
                for (idx, col) in table.columns.iter().enumerate() {
                    let covered = sources.iter().any(|(_, t)| *t == Target::Column(idx));
                    if !covered && !col.nullable {
                        return Err(format!(
                            "test double: NOT NULL column '{}' is missing from the columns header \
                             (column defaults are not modelled)",
                            col.name
                        ));
                    }
                }
            }
            None => {
                sources = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name.clone(), Target::Column(i)))
                    .collect();
                if primary && params.format == Format::Json && params.json.jsonpaths.is_none() {
                    op = OpPlan::JsonKey;
                }
            }
        }
        if let Some(paths) = &params.json.jsonpaths
            && params.format == Format::Json
            && paths.len() != sources.len()
        {
            {
                return Err(format!(
                    "test double: jsonpaths has {} paths but {} columns are mapped",
                    paths.len(),
                    sources.len()
                ));
            }
        }
        Ok(Plan { columns: table.columns.clone(), sources, op, params: params.clone() })
    }

    /// The parameters this plan was built from.
    pub(crate) fn params(&self) -> &LoadParams {
        &self.params
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing a body into rows.

/// A row the load filtered out, for the error log.
#[derive(Debug, Clone)]
pub(crate) struct FilteredRow {
    /// Why.
    pub(crate) reason: String,
    /// The row as received (lossy UTF-8).
    pub(crate) raw: String,
}

/// The result of parsing one body.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Accepted rows.
    pub(crate) rows: Vec<PendingRow>,
    /// Filtered rows.
    pub(crate) filtered: Vec<FilteredRow>,
}

impl Parsed {
    /// `NumberTotalRows` (no `where`, so nothing is unselected).
    pub(crate) fn total(&self) -> u64 {
        (self.rows.len() + self.filtered.len()) as u64
    }
}

/// A source value before conversion.
#[derive(Debug)]
enum Val<'a> {
    Null,
    Text(Cow<'a, str>),
    Json(&'a J<'a>),
}

/// Parses a (decompressed) body according to the plan. `Err` fails the whole load.
pub(crate) fn parse_body(plan: &Plan, body: &[u8], txn_load: bool) -> Result<Parsed, String> {
    if body.is_empty() {
        return Err(
            "test double: empty body (StarRocks' answer to an empty load is unconfirmed)".into()
        );
    }
    match plan.params.format {
        Format::Csv => {
            if txn_load && !body.ends_with(&plan.params.csv.row_delimiter) {
                // Spec §2.1: CSV bodies of transaction `load` calls must end with the delimiter.
                return Err("test double: a CSV body of a transaction load must end with the row \
                            delimiter"
                    .into());
            }
            Ok(parse_csv(plan, body))
        }
        Format::Json => parse_json_body(plan, body),
    }
}

/// One CSV field.
#[derive(Debug)]
enum CsvField<'a> {
    /// Unenclosed `\N`.
    Null,
    /// A value.
    Value(Cow<'a, [u8]>),
    /// An enclosed `"\N"`: unconfirmed in StarRocks.
    EnclosedNull,
}

/// One CSV record.
#[derive(Debug)]
struct CsvRecord<'a> {
    fields: Vec<CsvField<'a>>,
    raw: &'a [u8],
    error: Option<String>,
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

fn find_from(data: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    data[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Splits CSV data into records (spec §5.5): row delimiter, column separator, optional
/// enclose byte with doubled enclose = literal, `trim_space` around (not inside) enclosures.
fn tokenize_csv<'a>(data: &'a [u8], o: &CsvOptions) -> Vec<CsvRecord<'a>> {
    let (sep, delim) = (&o.column_separator[..], &o.row_delimiter[..]);
    let len = data.len();
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = pos;
        if data[pos..].starts_with(delim) {
            pos += delim.len();
            records.push(CsvRecord {
                fields: Vec::new(),
                raw: &data[start..start],
                error: Some(
                    "test double: blank line (StarRocks skips blank rows; the double refuses them)"
                        .into(),
                ),
            });
            continue;
        }
        let mut fields = Vec::new();
        let mut error = None;
        let row_end;
        loop {
            let mut p = pos;
            if o.trim_space {
                while p < len && data[p] == b' ' {
                    p += 1;
                }
            }
            if let Some(q) = o.enclose.filter(|q| p < len && data[p] == *q) {
                p += 1;
                let mut value = Vec::new();
                let mut closed = false;
                while p < len {
                    if data[p] == q {
                        if p + 1 < len && data[p + 1] == q {
                            value.push(q);
                            p += 2;
                        } else {
                            p += 1;
                            closed = true;
                            break;
                        }
                    } else {
                        value.push(data[p]);
                        p += 1;
                    }
                }
                let field = if value == b"\\N" {
                    CsvField::EnclosedNull
                } else {
                    CsvField::Value(Cow::Owned(value))
                };
                fields.push(field);
                if !closed {
                    error = Some("test double: unterminated enclosed field".into());
                    row_end = len;
                    pos = len;
                    break;
                }
                if o.trim_space {
                    while p < len && data[p] == b' ' {
                        p += 1;
                    }
                }
                if p == len {
                    row_end = len;
                    pos = len;
                    break;
                }
                if data[p..].starts_with(delim) {
                    row_end = p;
                    pos = p + delim.len();
                    break;
                }
                if data[p..].starts_with(sep) {
                    pos = p + sep.len();
                    continue;
                }
                error = Some("test double: data after a closing enclose character".into());
                let end = find_from(data, p, delim);
                row_end = end.unwrap_or(len);
                pos = end.map_or(len, |e| e + delim.len());
                break;
            }
            // Unenclosed: up to the next row delimiter or column separator.
            let mut e = pos;
            let mut ended = None;
            while e < len {
                if data[e..].starts_with(delim) {
                    ended = Some(true);
                    break;
                }
                if data[e..].starts_with(sep) {
                    ended = Some(false);
                    break;
                }
                e += 1;
            }
            let mut value = &data[pos..e];
            if o.trim_space {
                value = trim_spaces(value);
            }
            fields.push(if value == b"\\N" {
                CsvField::Null
            } else {
                CsvField::Value(Cow::Borrowed(value))
            });
            match ended {
                Some(false) => pos = e + sep.len(),
                Some(true) => {
                    row_end = e;
                    pos = e + delim.len();
                    break;
                }
                None => {
                    row_end = len;
                    pos = len;
                    break;
                }
            }
        }
        records.push(CsvRecord { fields, raw: &data[start..row_end], error });
    }
    records
}

fn parse_csv(plan: &Plan, body: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let records = tokenize_csv(body, &plan.params.csv);
    for record in records.into_iter().skip(plan.params.csv.skip_header as usize) {
        let raw = String::from_utf8_lossy(record.raw).into_owned();
        let result = (|| {
            if let Some(e) = record.error {
                return Err(e);
            }
            if record.fields.len() != plan.sources.len() {
                return Err(format!(
                    "Value count does not match column count. Expect {}, but got {}",
                    plan.sources.len(),
                    record.fields.len()
                ));
            }
            let mut vals = Vec::with_capacity(record.fields.len());
            for (field, (name, _)) in record.fields.into_iter().zip(&plan.sources) {
                vals.push(match field {
                    CsvField::Null => Val::Null,
                    CsvField::EnclosedNull => {
                        return Err(format!(
                            "test double: enclosed \\N is unconfirmed (column '{name}')"
                        ));
                    }
                    CsvField::Value(bytes) => match bytes {
                        Cow::Borrowed(b) => Val::Text(Cow::Borrowed(
                            std::str::from_utf8(b)
                                .map_err(|_| format!("column '{name}': invalid UTF-8"))?,
                        )),
                        Cow::Owned(b) => Val::Text(Cow::Owned(
                            String::from_utf8(b)
                                .map_err(|_| format!("column '{name}': invalid UTF-8"))?,
                        )),
                    },
                });
            }
            finish_row(plan, vals, None)
        })();
        match result {
            Ok(row) => parsed.rows.push(row),
            Err(reason) => parsed.filtered.push(FilteredRow { reason, raw }),
        }
    }
    parsed
}

fn parse_json_body(plan: &Plan, body: &[u8]) -> Result<Parsed, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "test double: the JSON body is not valid UTF-8".to_owned())?;
    let doc =
        parse_json(text).map_err(|e| format!("test double: the JSON body does not parse: {e}"))?;
    let opts = &plan.params.json;
    let root = match &opts.json_root {
        Some(path) => {
            doc.navigate(path).ok_or_else(|| "test double: json_root not found".to_owned())?
        }
        None => &doc,
    };
    let items: Vec<&J<'_>> = match (&root.v, opts.strip_outer_array) {
        (JV::Arr(items), true) => items.iter().collect(),
        (_, true) => {
            return Err(
                "test double: strip_outer_array is true but the JSON root is not an array".into()
            );
        }
        (JV::Arr(_), false) => {
            return Err("test double: a JSON array body needs strip_outer_array: true".into());
        }
        (_, false) => vec![root],
    };
    let mut parsed = Parsed::default();
    for item in items {
        let raw = item.raw.to_owned();
        let result = (|| {
            let JV::Obj(_) = &item.v else {
                return Err("JSON row is not an object".to_owned());
            };
            let vals: Vec<Val<'_>> = match &opts.jsonpaths {
                Some(paths) => {
                    paths.iter().map(|p| item.navigate(p).map_or(Val::Null, json_val)).collect()
                }
                None => plan
                    .sources
                    .iter()
                    .map(|(name, _)| item.get_key_ci(name).map_or(Val::Null, json_val))
                    .collect(),
            };
            let op_key = if plan.op == OpPlan::JsonKey { item.get_key_ci("__op") } else { None };
            finish_row(plan, vals, op_key)
        })();
        match result {
            Ok(row) => parsed.rows.push(row),
            Err(reason) => parsed.filtered.push(FilteredRow { reason, raw }),
        }
    }
    Ok(parsed)
}

fn json_val<'a>(j: &'a J<'a>) -> Val<'a> {
    match j.v {
        JV::Null => Val::Null,
        _ => Val::Json(j),
    }
}

/// Parses an `__op` value: 0 (upsert) or 1 (delete).
fn op_value(val: &Val<'_>) -> Result<bool, String> {
    let text = match val {
        Val::Text(t) => t.as_ref(),
        Val::Json(J { v: JV::Num, raw }) => raw,
        Val::Null => return Err("test double: __op is NULL".into()),
        Val::Json(j) => return Err(format!("test double: __op must be 0 or 1, got {}", j.raw)),
    };
    match text {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("test double: __op must be 0 or 1, got '{text}'")),
    }
}

/// Converts one row's source values into table cells.
fn finish_row(
    plan: &Plan,
    vals: Vec<Val<'_>>,
    op_key: Option<&J<'_>>,
) -> Result<PendingRow, String> {
    let mut cells: Vec<Cell> = vec![None; plan.columns.len()];
    let mut delete = false;
    match plan.op {
        OpPlan::None => {}
        OpPlan::Const(c) => delete = c,
        OpPlan::Source(i) => delete = op_value(&vals[i])?,
        OpPlan::JsonKey => {
            if let Some(j) = op_key {
                delete = op_value(&json_val(j))?;
            }
        }
    }
    for ((_, target), val) in plan.sources.iter().zip(&vals) {
        let Target::Column(idx) = *target else { continue };
        let col = &plan.columns[idx];
        let converted = match val {
            Val::Null => None,
            Val::Text(t) => Some(convert_text(&col.ty, t)),
            Val::Json(j) => Some(convert_json(&col.ty, j)),
        };
        cells[idx] = match converted {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                let shown = match val {
                    Val::Text(t) => format!("'{t}'"),
                    Val::Json(j) => j.raw.to_owned(),
                    Val::Null => "NULL".into(),
                };
                return Err(format!(
                    "column '{}' ({}): value {shown}: {e}",
                    col.name, col.type_text
                ));
            }
        };
    }
    for (cell, col) in cells.iter().zip(&plan.columns) {
        if cell.is_none() && !col.nullable {
            return Err(format!("NULL value in non-nullable column '{}'", col.name));
        }
    }
    Ok(PendingRow { cells, delete })
}

// ---------------------------------------------------------------------------------------------
// Type conversion.
//
// Each sourced rule lives in `value.rs` (shared with Routine Load); this path adds the
// Stream Load double's documented extra strictness on top (module doc of `starrocks`).

/// DECIMAL from text: StarRocks' `string_to_decimal`, but the double's Stream Load refuses
/// values StarRocks would round and exponent notation.
fn parse_decimal(s: &str, p: u8, scale: u8) -> Result<String, String> {
    let ty = format!("DECIMAL({p},{scale})");
    if s.contains(['e', 'E']) {
        return Err(format!("test double: exponent notation for {ty} is not modelled"));
    }
    let d = value::string_to_decimal(s, p, scale)?;
    if d.rounded {
        return Err(format!(
            "test double: {ty} would round this value (the double's Stream Load refuses what \
             StarRocks rounds half-up)"
        ));
    }
    Ok(d.text)
}

fn parse_datetime(s: &str) -> Result<String, String> {
    match value::parse_timestamp(s) {
        Some(t) if t.plain_datetime => Ok(t.datetime_text()),
        _ => Err("not a valid DATETIME (the double accepts 'YYYY-MM-DD HH:MM:SS[.ffffff]')".into()),
    }
}

/// Converts a text value (a CSV field, or a JSON string) to the canonical cell text.
pub(crate) fn convert_text(ty: &SrType, s: &str) -> Result<String, String> {
    match ty {
        SrType::Boolean => value::string_to_bool(s)
            .map(|b| if b { "1" } else { "0" }.to_owned())
            .ok_or_else(|| "not a valid BOOLEAN".to_owned()),
        SrType::TinyInt | SrType::SmallInt | SrType::Int | SrType::BigInt | SrType::LargeInt => {
            value::int_text(ty, s)
        }
        SrType::Float | SrType::Double => {
            let is_float = *ty == SrType::Float;
            let v = value::string_to_float(s).ok_or_else(|| {
                format!("not a valid {}", if is_float { "FLOAT" } else { "DOUBLE" })
            })?;
            value::float_cell(v, is_float)
        }
        SrType::Decimal(p, sc) => parse_decimal(s, *p, *sc),
        SrType::Date => match value::parse_timestamp(s) {
            Some(t) if t.plain_date => Ok(t.date_text()),
            _ => Err("not a valid DATE (the double accepts 'YYYY-MM-DD')".to_owned()),
        },
        SrType::DateTime => parse_datetime(s),
        SrType::Char(n) | SrType::Varchar(n) => {
            if s.len() > *n as usize {
                Err(format!("{} bytes exceed the column length {n}", s.len()))
            } else {
                Ok(s.to_owned())
            }
        }
        // CSV into JSON: `parse_json_or_string`, as CAST(varchar AS JSON) (sourced).
        SrType::Json => value::parse_json_or_string(s)
            .map(|v| value::json_cell(&v))
            .ok_or_else(|| "not valid JSON".to_owned()),
        SrType::Varbinary => {
            Err("test double: the wire encoding of VARBINARY values is unconfirmed".into())
        }
        SrType::Array(_) => {
            Err("test double: ARRAY values in CSV (or as JSON strings) are unconfirmed".into())
        }
        #[allow(unreachable_patterns)]
        _ => Err("test double: this column type is not modelled".into()),
    }
}

/// Converts an embedded JSON value (JSON format; never `null`, which the caller maps to NULL).
pub(crate) fn convert_json(ty: &SrType, j: &J<'_>) -> Result<String, String> {
    match (ty, &j.v) {
        (SrType::Json, _) => serde_json::from_str::<serde_json::Value>(j.raw)
            .map(|v| value::json_cell(&v))
            .map_err(|e| format!("not valid JSON: {e}")),
        (SrType::Varbinary, _) => {
            Err("test double: the wire encoding of VARBINARY values is unconfirmed".into())
        }
        (SrType::Array(elem), JV::Arr(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                parts.push(match &item.v {
                    JV::Null => "null".to_owned(),
                    _ => array_element_text(elem, &convert_json(elem, item)?),
                });
            }
            Ok(format!("[{}]", parts.join(",")))
        }
        (SrType::Array(_), _) => {
            Err("test double: only a JSON array is modelled for an ARRAY column".into())
        }
        // A JSON string is read as text; `"\N"` is the text `\N` (sourced: no NULL check in
        // the JSON scanner).
        (_, JV::Str(s)) => convert_text(ty, s),
        (SrType::Boolean, JV::Bool(b)) => Ok(if *b { "1" } else { "0" }.into()),
        (
            SrType::Boolean
            | SrType::TinyInt
            | SrType::SmallInt
            | SrType::Int
            | SrType::BigInt
            | SrType::LargeInt,
            JV::Num,
        ) => {
            if j.raw.contains(['.', 'e', 'E']) {
                return Err(
                    "test double: a JSON number with a fraction or exponent for an integer \
                            column is unconfirmed"
                        .into(),
                );
            }
            convert_text(ty, j.raw)
        }
        (SrType::Float | SrType::Double | SrType::Decimal(..), JV::Num) => convert_text(ty, j.raw),
        _ => Err(format!("test double: a JSON {} for this column type is not modelled", j.kind())),
    }
}

/// How a converted element appears inside an ARRAY cell's JSON text.
pub(crate) fn array_element_text(elem: &SrType, canonical: &str) -> String {
    match elem {
        SrType::Boolean
        | SrType::TinyInt
        | SrType::SmallInt
        | SrType::Int
        | SrType::BigInt
        | SrType::LargeInt
        | SrType::Float
        | SrType::Double
        | SrType::Decimal(..)
        | SrType::Json
        | SrType::Array(_) => canonical.to_owned(),
        _ => serde_json::Value::String(canonical.to_owned()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("12.5", 5, 2).unwrap(), "12.50");
        assert_eq!(parse_decimal("-0.00", 5, 2).unwrap(), "0.00");
        assert_eq!(parse_decimal("007", 5, 0).unwrap(), "7");
        assert_eq!(parse_decimal(".5", 3, 1).unwrap(), "0.5");
        assert_eq!(parse_decimal("1.230", 5, 2).unwrap(), "1.23");
        assert!(parse_decimal("1.235", 5, 2).unwrap_err().starts_with("test double:"));
        assert!(parse_decimal("1234", 5, 2).is_err());
        assert!(parse_decimal("1e3", 5, 2).is_err());
        assert!(parse_decimal("", 5, 2).is_err());
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("2024-02-29 23:59:59").unwrap(), "2024-02-29 23:59:59");
        assert_eq!(parse_datetime("2024-02-29 23:59:59.5").unwrap(), "2024-02-29 23:59:59.500000");
        assert_eq!(parse_datetime("2024-02-29 23:59:59.000").unwrap(), "2024-02-29 23:59:59");
        assert!(parse_datetime("2023-02-29 00:00:00").is_err());
        assert!(parse_datetime("2023-01-01T00:00:00").is_err());
        assert!(parse_datetime("2023-01-01 00:00:00.1234567").is_err());
        assert!(parse_datetime("2023-01-01 24:00:00").is_err());
        assert!(parse_datetime("2023-01-01").is_err());
    }

    #[test]
    fn stream_load_follows_the_sourced_rules() {
        assert_eq!(convert_text(&SrType::Json, "123").unwrap(), r#""123""#);
        assert_eq!(convert_text(&SrType::Double, "-Infinity").unwrap(), "-Infinity");
        assert_eq!(convert_text(&SrType::Float, "NaN").unwrap(), "NaN");
        let j = super::super::json::parse_json(r#""\\N""#).unwrap();
        assert_eq!(convert_json(&SrType::Varchar(5), &j).unwrap(), "\\N");
    }
}
