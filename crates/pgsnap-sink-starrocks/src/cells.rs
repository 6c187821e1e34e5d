//! Typed comparison of StarRocks cells with the PostgreSQL values they were loaded from: what
//! `verify` uses to decide whether a table arrived intact.
//!
//! The expected side is **what the snapshot path would send** for a PostgreSQL value: the
//! same per-column encoding the [transcoder](crate::transcode) uses for a JSON body
//! ([`expected_row`]), with the same checks and canonical forms ([`crate::canonical`]). The
//! actual side is the text StarRocks returns over the MySQL text protocol. [`same_cell`]
//! compares the two **as values of the target column's type**, never as raw text, because
//! StarRocks prints values in its own forms:
//!
//! | StarRocks type | equal when |
//! |---|---|
//! | `SMALLINT` … `LARGEINT` | the integers are equal |
//! | `DECIMAL(p,s)` | the decimals are equal (`1.50` = `1.5`, `-0` = `0`) |
//! | `FLOAT` / `DOUBLE` | the floats (of that width) are equal; `NaN` equals `NaN`; `Infinity`/`inf` alike |
//! | `BOOLEAN` | `true`/`1` and `false`/`0` |
//! | `DATE` | the same day |
//! | `DATETIME` | the same instant in UTC, to the microsecond (a `Z` or `±hh[:mm]` suffix on either side is applied; without one the text is UTC, which is why the reader pins the session's `time_zone` to `+00:00`) |
//! | `JSON` | the parsed documents are equal: object key order and spacing are irrelevant, numbers compare numerically |
//! | `VARCHAR` | the bytes are equal |
//! | `ARRAY<T>` | same length and every element equal as a `T` (`null` only equals `null`) |
//!
//! SQL NULL equals only NULL.
//!
//! # Example
//! ```
//! use pgsnap_sink_starrocks::cells::same_cell;
//! use pgsnap_sink_starrocks::mapping::SrType;
//!
//! let dec = SrType::Decimal { precision: 10, scale: 2 };
//! assert!(same_cell(&dec, Some(b"1.5"), Some(b"1.50")));
//! assert!(same_cell(&SrType::Json, Some(br#"{"a":1,"b":[true]}"#), Some(br#"{"b": [true], "a": 1}"#)));
//! assert!(same_cell(&SrType::DateTime, Some(b"2024-01-02 10:00:00+02"), Some(b"2024-01-02 08:00:00")));
//! assert!(!same_cell(&SrType::Varchar(10), Some(b"a"), Some(b"a ")));
//! assert!(!same_cell(&SrType::Int, Some(b"1"), None));
//! ```

use bytes::BytesMut;

use crate::mapping::{SrType, TargetTable};
use crate::transcode::{TranscodeError, TranscodeErrorKind};

/// One cell: `None` is SQL NULL, otherwise its text.
pub type CellText = Option<Vec<u8>>;

/// The cells the snapshot path would load for one PostgreSQL row, in **target column order**
/// (`table.columns`): the text of each value (a string's characters, a number's digits, a
/// JSON document, an array as JSON), or `None` for NULL.
///
/// `copy_row` is one row of PostgreSQL `COPY ... TO STDOUT` text (without its newline) in
/// source column order, as the snapshot reads it (the session settings of
/// [`pgsnap_source`'s pinned settings](https://docs.rs/pgsnap-source): `DateStyle=ISO`,
/// `TimeZone=UTC`, `extra_float_digits=3`, `bytea_output=hex`, ...).
///
/// # Errors
/// The row has the wrong number of fields, or a value the snapshot would refuse (the same
/// [`TranscodeError`] the load would have failed with); `row` numbers the row in it.
///
/// # Example
/// ```
/// use pgsnap_core::{Column, TableKind, TableName, TableSchema};
/// use pgsnap_sink_starrocks::cells::expected_row;
/// use pgsnap_sink_starrocks::mapping::{map_table, MappingOptions};
///
/// let schema = TableSchema {
///     name: TableName::new("public", "t"),
///     kind: TableKind::Table,
///     columns: vec![Column::new("note", "text", true), Column::new("id", "bigint", false)],
///     generated_columns: vec![],
///     primary_key: vec!["id".into()],
/// };
/// let table = map_table(&schema, "t", &MappingOptions::default())?;
/// let row = expected_row(&table, b"tab\\there\t7", 1)?;
/// assert_eq!(row, vec![Some(b"7".to_vec()), Some(b"tab\there".to_vec())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn expected_row(
    table: &TargetTable,
    copy_row: &[u8],
    row: u64,
) -> Result<Vec<CellText>, TranscodeError> {
    let fields: Vec<&[u8]> = copy_row.split(|&b| b == b'\t').collect();
    let wanted = table.columns.iter().map(|c| c.source_index + 1).max().unwrap_or(0);
    if fields.len() < wanted {
        return Err(TranscodeError::new(
            None,
            row,
            TranscodeErrorKind::WrongColumnCount { expected: wanted, found: fields.len() },
        ));
    }
    let mut out = Vec::with_capacity(table.columns.len());
    let mut token = BytesMut::new();
    for col in &table.columns {
        let v = fields[col.source_index];
        if v == b"\\N" {
            out.push(None);
            continue;
        }
        token.clear();
        crate::transcode::json_token(col, v, row, &mut token)?;
        out.push(Some(token_text(&col.sr_type, &token)));
    }
    Ok(out)
}

/// The text of a JSON token for a column of type `ty`: a JSON string's characters (unless the
/// column is `JSON`, whose token is the document itself), any other token as written.
fn token_text(ty: &SrType, token: &[u8]) -> Vec<u8> {
    if *ty != SrType::Json
        && token.first() == Some(&b'"')
        && let Ok(s) = serde_json::from_slice::<String>(token)
    {
        return s.into_bytes();
    }
    token.to_vec()
}

/// The names of the columns whose cells differ (target column names, in target order).
/// `expected` and `actual` are in target column order; a missing cell counts as NULL.
///
/// ```
/// use pgsnap_core::{Column, TableKind, TableName, TableSchema};
/// use pgsnap_sink_starrocks::cells::differing_columns;
/// use pgsnap_sink_starrocks::mapping::{map_table, MappingOptions};
///
/// let schema = TableSchema {
///     name: TableName::new("public", "t"),
///     kind: TableKind::Table,
///     columns: vec![Column::new("id", "bigint", false), Column::new("price", "numeric(8,2)", true)],
///     generated_columns: vec![],
///     primary_key: vec!["id".into()],
/// };
/// let table = map_table(&schema, "t", &MappingOptions::default())?;
/// let pg = vec![Some(b"1".to_vec()), Some(b"2.5".to_vec())];
/// assert!(differing_columns(&table, &pg, &[Some(b"1".to_vec()), Some(b"2.50".to_vec())]).is_empty());
/// assert_eq!(differing_columns(&table, &pg, &[Some(b"1".to_vec()), None]), ["price"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn differing_columns(
    table: &TargetTable,
    expected: &[CellText],
    actual: &[CellText],
) -> Vec<String> {
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            let e = expected.get(*i).and_then(|v| v.as_deref());
            let a = actual.get(*i).and_then(|v| v.as_deref());
            !same_cell(&c.sr_type, e, a)
        })
        .map(|(_, c)| c.name.clone())
        .collect()
}

/// Whether two cells of a column of type `ty` hold the same value (see the
/// [module docs](self) for the rules). Text that does not parse as the type compares byte for
/// byte.
pub fn same_cell(ty: &SrType, expected: Option<&[u8]>, actual: Option<&[u8]>) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => same_value(ty, e, a),
        _ => false,
    }
}

fn same_value(ty: &SrType, e: &[u8], a: &[u8]) -> bool {
    let (Ok(es), Ok(as_)) = (std::str::from_utf8(e), std::str::from_utf8(a)) else {
        return e == a;
    };
    let typed = match ty {
        SrType::Boolean => parse_bool(es).zip(parse_bool(as_)).map(|(x, y)| x == y),
        SrType::SmallInt | SrType::Int | SrType::BigInt | SrType::LargeInt => {
            match (decimal_key(es), decimal_key(as_)) {
                (Some(x), Some(y)) => Some(x == y),
                _ => None,
            }
        }
        SrType::Decimal { .. } => decimal_key(es).zip(decimal_key(as_)).map(|(x, y)| x == y),
        SrType::Float => parse_float(es)
            .zip(parse_float(as_))
            .map(|(x, y)| same_float(f64::from(x as f32), f64::from(y as f32))),
        SrType::Double => parse_float(es).zip(parse_float(as_)).map(|(x, y)| same_float(x, y)),
        SrType::Date => parse_datetime(es).zip(parse_datetime(as_)).map(|(x, y)| x == y),
        SrType::DateTime => parse_datetime(es).zip(parse_datetime(as_)).map(|(x, y)| x == y),
        SrType::Json => match (
            serde_json::from_str::<serde_json::Value>(es),
            serde_json::from_str::<serde_json::Value>(as_),
        ) {
            (Ok(x), Ok(y)) => Some(same_json(&x, &y)),
            _ => None,
        },
        SrType::Varchar(_) => Some(e == a),
        SrType::Array(elem) => match (array_elements(es), array_elements(as_)) {
            (Some(x), Some(y)) => Some(
                x.len() == y.len()
                    && x.iter().zip(&y).all(|(p, q)| {
                        same_cell(
                            elem,
                            p.as_deref().map(str::as_bytes),
                            q.as_deref().map(str::as_bytes),
                        )
                    }),
            ),
            _ => None,
        },
    };
    typed.unwrap_or(e == a)
}

/// A canonical text for a cell of a column of type `ty`: equal for any two texts
/// [`same_cell`] finds equal (except JSON numbers written differently, `1` and `1.0`), so it
/// can key maps and multisets of rows (key lookups, rows of tables without a key).
///
/// ```
/// use pgsnap_sink_starrocks::cells::canonical_cell;
/// use pgsnap_sink_starrocks::mapping::SrType;
/// let dec = SrType::Decimal { precision: 9, scale: 3 };
/// assert_eq!(canonical_cell(&dec, b"1.500"), canonical_cell(&dec, b"1.5"));
/// assert_eq!(canonical_cell(&SrType::Boolean, b"true"), canonical_cell(&SrType::Boolean, b"1"));
/// assert_eq!(
///     canonical_cell(&SrType::DateTime, b"2024-01-02 03:04:05.100000"),
///     canonical_cell(&SrType::DateTime, b"2024-01-02 03:04:05.1")
/// );
/// ```
pub fn canonical_cell(ty: &SrType, text: &[u8]) -> Vec<u8> {
    let Ok(s) = std::str::from_utf8(text) else { return text.to_vec() };
    let canon: Option<String> = match ty {
        SrType::Boolean => parse_bool(s).map(|b| if b { "1" } else { "0" }.to_owned()),
        SrType::SmallInt
        | SrType::Int
        | SrType::BigInt
        | SrType::LargeInt
        | SrType::Decimal { .. } => decimal_key(s)
            .map(|(neg, int, frac)| format!("{}{}.{}", if neg { "-" } else { "" }, int, frac)),
        SrType::Float => parse_float(s).map(|v| {
            let f = v as f32;
            if f.is_nan() { "NaN".to_owned() } else { f.to_string() }
        }),
        SrType::Double => {
            parse_float(s).map(|v| if v.is_nan() { "NaN".to_owned() } else { v.to_string() })
        }
        SrType::Date | SrType::DateTime => parse_datetime(s).map(|v| v.to_string()),
        SrType::Json => serde_json::from_str::<serde_json::Value>(s).ok().map(|v| v.to_string()),
        SrType::Varchar(_) => None,
        SrType::Array(elem) => array_elements(s).map(|items| {
            let parts: Vec<String> = items
                .iter()
                .map(|e| match e {
                    None => "null".to_owned(),
                    Some(t) => {
                        let c = canonical_cell(elem, t.as_bytes());
                        serde_json::Value::String(String::from_utf8_lossy(&c).into_owned())
                            .to_string()
                    }
                })
                .collect();
            format!("[{}]", parts.join(","))
        }),
    };
    canon.map_or_else(|| text.to_vec(), String::into_bytes)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" => Some(true),
        "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

/// A decimal in a canonical form: sign, integer digits without leading zeros, fraction
/// digits without trailing zeros (`-0` is `0`). Exponents are not accepted.
fn decimal_key(s: &str) -> Option<(bool, String, String)> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0').to_owned();
    let frac = frac.trim_end_matches('0').to_owned();
    let zero = int.is_empty() && frac.is_empty();
    Some((neg && !zero, int, frac))
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if lower == "inf" || lower == "infinity" {
        return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    t.parse::<f64>().ok()
}

fn same_float(x: f64, y: f64) -> bool {
    (x.is_nan() && y.is_nan()) || x == y
}

/// A date or date-time as microseconds since 0000-03-01 UTC (a proleptic count; only
/// equality matters): `YYYY-MM-DD[( |T)HH:MM:SS[.f{1,9}]][Z|±hh[:mm[:ss]]]`, fractions
/// beyond microseconds truncated.
fn parse_datetime(s: &str) -> Option<i128> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok()).flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut rest = &s[10..];
    let (mut secs, mut micros) = (0i64, 0i64);
    if let Some(r) = rest.strip_prefix([' ', 'T']) {
        let r = r.trim_start();
        if r.len() < 8 || r.as_bytes()[2] != b':' || r.as_bytes()[5] != b':' {
            return None;
        }
        let part = |t: &str| -> Option<i64> {
            t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok()).flatten()
        };
        secs = part(&r[0..2])? * 3600 + part(&r[3..5])? * 60 + part(&r[6..8])?;
        rest = &r[8..];
        if let Some(f) = rest.strip_prefix('.') {
            let digits = f.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let mut frac = f[..digits.min(6)].to_owned();
            while frac.len() < 6 {
                frac.push('0');
            }
            micros = frac.parse().ok()?;
            rest = &f[digits..];
        }
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let mut total = 0i64;
            for (p, unit) in rest[1..].split(':').zip([3600i64, 60, 1]) {
                if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                total += unit * p.parse::<i64>().ok()?;
            }
            sign * total
        }
    };
    // Days from civil (Howard Hinnant's algorithm), on a proleptic calendar.
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe;
    Some((i128::from(days) * 86_400 + i128::from(secs - offset)) * 1_000_000 + i128::from(micros))
}

/// JSON equality with numbers compared numerically (`1` = `1.0`) and objects as maps.
fn same_json(x: &serde_json::Value, y: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (x, y) {
        (V::Number(a), V::Number(b)) => {
            if let (Some(p), Some(q)) = (a.as_i64(), b.as_i64()) {
                p == q
            } else if let (Some(p), Some(q)) = (a.as_u64(), b.as_u64()) {
                p == q
            } else {
                a.as_f64() == b.as_f64()
            }
        }
        (V::Array(a), V::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(p, q)| same_json(p, q))
        }
        (V::Object(a), V::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => x == y,
    }
}

/// The elements of a one-dimensional array as StarRocks prints it (and as the JSON body
/// carries it): `[1,2,null]`, `["a","b\"c"]`. Strings are unescaped; `null` is `None`; other
/// elements are kept as written. `None` for text that is not such an array.
fn array_elements(s: &str) -> Option<Vec<Option<String>>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let b = inner.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'"') {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            let token = inner.get(start..=i)?;
            out.push(Some(serde_json::from_str::<String>(token).ok()?));
            i += 1;
        } else if matches!(b.get(i), Some(b'[' | b'{')) {
            // Nested arrays and objects: kept as written, to the matching bracket.
            let start = i;
            let mut depth = 0usize;
            let mut in_str = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if in_str => i += 1,
                    b'"' => in_str = !in_str,
                    b'[' | b'{' if !in_str => depth += 1,
                    b']' | b'}' if !in_str => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            out.push(Some(inner.get(start..=i)?.to_owned()));
            i += 1;
        } else {
            let end = inner[i..].find(',').map_or(inner.len(), |p| i + p);
            let token = inner[i..end].trim();
            out.push(if token == "null" { None } else { Some(token.to_owned()) });
            i = end;
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(ty: &SrType, e: &str, a: &str) -> bool {
        same_cell(ty, Some(e.as_bytes()), Some(a.as_bytes()))
    }

    #[test]
    fn numbers_compare_numerically() {
        let dec = SrType::Decimal { precision: 12, scale: 4 };
        assert!(same(&dec, "1.50", "1.5"));
        assert!(same(&dec, "-0.00", "0"));
        assert!(same(&dec, "007.10", "7.1000"));
        assert!(!same(&dec, "1.5", "1.51"));
        assert!(!same(&dec, "-1.5", "1.5"));
        assert!(same(&SrType::BigInt, "-42", "-42"));
        assert!(!same(&SrType::BigInt, "42", "43"));
        assert!(same(&SrType::Double, "NaN", "nan"));
        assert!(same(&SrType::Double, "-Infinity", "-inf"));
        assert!(same(&SrType::Double, "0.1", "0.10"));
        assert!(!same(&SrType::Double, "0.1", "0.1000001"));
        // FLOAT: compared at single precision, as StarRocks holds it.
        assert!(same(&SrType::Float, "1.1", "1.10000002"));
        assert!(same(&SrType::Float, "NaN", "NaN"));
        assert!(same(&SrType::Boolean, "true", "1"));
        assert!(!same(&SrType::Boolean, "true", "0"));
    }

    #[test]
    fn datetimes_are_instants_in_utc() {
        assert!(same(&SrType::DateTime, "2024-03-01 10:00:00+02", "2024-03-01 08:00:00"));
        assert!(same(&SrType::DateTime, "2024-03-01 00:30:00-01:30", "2024-03-01T02:00:00Z"));
        assert!(same(&SrType::DateTime, "2024-03-01 08:00:00.5", "2024-03-01 08:00:00.500000"));
        assert!(!same(&SrType::DateTime, "2024-03-01 08:00:00.5", "2024-03-01 08:00:00.5001"));
        assert!(same(&SrType::DateTime, "2024-01-01 00:00:00+01", "2023-12-31 23:00:00"));
        assert!(same(&SrType::Date, "2024-02-29", "2024-02-29"));
        assert!(!same(&SrType::Date, "2024-02-29", "2024-03-01"));
    }

    #[test]
    fn json_is_compared_semantically() {
        assert!(same(&SrType::Json, r#"{"b":1,"a":[1,2.0]}"#, r#"{"a": [1, 2], "b": 1}"#));
        assert!(!same(&SrType::Json, r#"{"a":"1"}"#, r#"{"a":1}"#));
        assert!(!same(&SrType::Json, r#"[1,2]"#, r#"[2,1]"#));
    }

    #[test]
    fn text_is_compared_byte_for_byte() {
        let v = SrType::Varchar(100);
        assert!(same(&v, "héllo ✓", "héllo ✓"));
        assert!(!same(&v, "abc", "ABC"));
        assert!(!same(&v, "1.50", "1.5"));
        assert!(!same_cell(&v, Some(b""), None));
    }

    #[test]
    fn arrays_element_wise() {
        let ints = SrType::Array(Box::new(SrType::Int));
        assert!(same(&ints, "[1,2,null]", "[1, 2, null]"));
        assert!(!same(&ints, "[1,2]", "[1,2,3]"));
        let texts = SrType::Array(Box::new(SrType::Varchar(10)));
        assert!(same(&texts, r#"["a,b","c\"d"]"#, r#"["a,b", "c\"d"]"#));
        assert!(!same(&texts, r#"["a"]"#, r#"[null]"#));
        let bools = SrType::Array(Box::new(SrType::Boolean));
        assert!(same(&bools, "[true,false]", "[1,0]"));
        let decs = SrType::Array(Box::new(SrType::Decimal { precision: 5, scale: 2 }));
        assert!(same(&decs, "[1.5]", "[1.50]"));
    }
}
