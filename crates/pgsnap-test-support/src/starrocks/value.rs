//! StarRocks **value semantics** shared by the double's Stream Load (`load.rs`) and Routine
//! Load (`routine_load/`): one implementation of each sourced StarRocks conversion rule.
//!
//! Sources: `/work/shared/specs/routine-load-parity.md` §1–§3 and the facts the lead sourced
//! from StarRocks' code (`util/string_parser.hpp`, `types/json_value.cpp`,
//! `types/timestamp_value.cpp`, `types/time_types.cpp`). Where a detail is unconfirmed, the
//! function here takes the *worst* plausible reading (the value fails, so that it becomes NULL
//! or the row is filtered): e.g. surrounding whitespace is never trimmed from numbers, and
//! compact date forms (`20240102`) fail.
//!
//! The Stream Load path adds its own, documented, extra strictness on top of these functions
//! (it refuses DECIMAL rounding and exponents, DATETIME forms other than
//! `YYYY-MM-DD HH:MM:SS[.ffffff]`, ...): the flags in [`DecimalText`] and [`Timestamp`] tell
//! it what was lenient.

use super::catalog::SrType;

/// Why [`string_to_int`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntError {
    /// Not `[+-]?[0-9]+`.
    Invalid,
    /// Outside `[min, max]`.
    Overflow,
}

/// `StringParser::string_to_int` as the double models it: `[+-]?[0-9]+` exactly (no
/// whitespace, no fraction), checked against `[min, max]`.
pub(crate) fn string_to_int(s: &str, min: i128, max: i128) -> Result<i128, IntError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntError::Invalid);
    }
    let v: i128 = s.parse().map_err(|_| IntError::Overflow)?;
    if v < min || v > max {
        return Err(IntError::Overflow);
    }
    Ok(v)
}

/// The range of an integer column type (`None` for other types).
pub(crate) fn int_range(ty: &SrType) -> Option<(i128, i128, &'static str)> {
    Some(match ty {
        SrType::TinyInt => (i8::MIN.into(), i8::MAX.into(), "TINYINT"),
        SrType::SmallInt => (i16::MIN.into(), i16::MAX.into(), "SMALLINT"),
        SrType::Int => (i32::MIN.into(), i32::MAX.into(), "INT"),
        SrType::BigInt => (i64::MIN.into(), i64::MAX.into(), "BIGINT"),
        SrType::LargeInt => (i128::MIN, i128::MAX, "LARGEINT"),
        _ => return None,
    })
}

/// An integer column's canonical text of `s` by [`string_to_int`], with the error message
/// naming the type (`not a valid INT`, `out of range for INT`).
///
/// # Panics
///
/// If `ty` is not an integer type ([`int_range`]).
pub(crate) fn int_text(ty: &SrType, s: &str) -> Result<String, String> {
    let (min, max, name) = int_range(ty).expect("an integer type");
    match string_to_int(s, min, max) {
        Ok(v) => Ok(v.to_string()),
        Err(IntError::Invalid) => Err(format!("not a valid {name}")),
        Err(IntError::Overflow) => Err(format!("out of range for {name}")),
    }
}

/// `[+-]? digits [. digits] [e [+-] digits]` with at least one digit in the mantissa.
fn is_float_text(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// `StringParser::string_to_float` (sourced): an optional sign, then `NaN`/`nan` → NaN, any
/// `inf…` prefix (`inf`, `Infinity`) → ±infinity, else a decimal number with an optional
/// exponent. Worst-case readings (unconfirmed): `nan` must be the whole rest of the text (no
/// `nanxyz`), whitespace is not trimmed, and a finite-looking text that overflows `f64`
/// fails.
pub(crate) fn string_to_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if body.len() >= 3 && body[..3].eq_ignore_ascii_case("inf") {
        return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if !is_float_text(s) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The canonical cell text of a DOUBLE: Rust's shortest round-trip form, and `NaN`,
/// `Infinity`, `-Infinity` for the non-finite values (one text on every path).
pub(crate) fn format_double(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        v.to_string()
    }
}

/// The canonical cell text of `v` stored in a FLOAT (`is_float`) or DOUBLE column; a finite
/// value beyond FLOAT's range fails (a checked cast).
pub(crate) fn float_cell(v: f64, is_float: bool) -> Result<String, String> {
    if !is_float {
        return Ok(format_double(v));
    }
    if v.is_finite() && v.abs() > f64::from(f32::MAX) {
        return Err("out of range for FLOAT".into());
    }
    let f = v as f32;
    Ok(if f.is_finite() { f.to_string() } else { format_double(f64::from(f)) })
}

/// A DECIMAL parsed by [`string_to_decimal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecimalText {
    /// The canonical text: exactly `s` fraction digits, no `-0`.
    pub(crate) text: String,
    /// Non-zero digits beyond the scale were rounded away.
    pub(crate) rounded: bool,
    /// The input had an exponent.
    pub(crate) exponent: bool,
}

/// `StringParser::string_to_decimal` (sourced): an optional sign, digits with an optional
/// `.`, an optional exponent; extra scale is rounded half-up away from zero; an integer part
/// longer than `p - s` digits (after rounding) fails; `NaN`/`Infinity` fail. Whitespace is
/// not trimmed (worst case).
pub(crate) fn string_to_decimal(s: &str, p: u8, scale: u8) -> Result<DecimalText, String> {
    let ty = format!("DECIMAL({p},{scale})");
    let invalid = || format!("not a valid {ty}");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let exponent = body.contains(['e', 'E']);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => {
            let e = &body[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            // Clamp absurd exponents; the outcome (overflow or zero) is the same.
            let v: i64 = digits.parse().unwrap_or(i64::MAX).min(100_000);
            (&body[..i], if e.starts_with('-') { -v } else { v })
        }
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(invalid());
    }
    let digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).map(|b| b - b'0').collect();
    if digits.iter().all(|&d| d == 0) {
        let text =
            if scale == 0 { "0".to_owned() } else { format!("0.{}", "0".repeat(scale.into())) };
        return Ok(DecimalText { text, rounded: false, exponent });
    }
    // The position of the decimal point within `digits`.
    let point = int_part.len() as i64 + exp;
    let len = digits.len() as i64;
    let digit_at = |i: i64| -> u8 { if (0..len).contains(&i) { digits[i as usize] } else { 0 } };
    if point > len + i64::from(p) + 1 {
        return Err(format!("out of range for {ty}"));
    }
    let scale_i = i64::from(scale);
    // Kept digits: positions [min(0, point) .. point + scale).
    let start = point.min(0);
    let mut kept: Vec<u8> = (start..point + scale_i).map(digit_at).collect();
    let first_dropped = digit_at(point + scale_i);
    let rounded = (point + scale_i..len).any(|i| digit_at(i) != 0);
    if first_dropped >= 5 {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let frac_len = scale as usize;
    let (int_digits, frac_digits) = kept.split_at(kept.len() - frac_len);
    let int_digits: Vec<u8> = int_digits.iter().copied().skip_while(|&d| d == 0).collect();
    if int_digits.len() > usize::from(p.saturating_sub(scale)) {
        return Err(format!("out of range for {ty}"));
    }
    let to_text = |ds: &[u8]| ds.iter().map(|d| char::from(b'0' + d)).collect::<String>();
    let int_text = if int_digits.is_empty() { "0".to_owned() } else { to_text(&int_digits) };
    let is_zero = int_digits.is_empty() && frac_digits.iter().all(|&d| d == 0);
    let sign = if neg && !is_zero { "-" } else { "" };
    let text = if frac_len == 0 {
        format!("{sign}{int_text}")
    } else {
        format!("{sign}{int_text}.{}", to_text(frac_digits))
    };
    Ok(DecimalText { text, rounded, exponent })
}

/// A DATE/DATETIME value parsed by [`parse_timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    /// The text was exactly `YYYY-MM-DD` (no trimming): what the Stream Load path accepts for
    /// DATE.
    pub(crate) plain_date: bool,
    /// The text was exactly `YYYY-MM-DD HH:MM:SS[.f{1,6}]` with a valid time (no trimming):
    /// what the Stream Load path accepts for DATETIME.
    pub(crate) plain_datetime: bool,
}

impl Timestamp {
    /// `YYYY-MM-DD HH:MM:SS`, plus `.ffffff` when the fraction is non-zero.
    pub(crate) fn datetime_text(&self) -> String {
        let mut s =
            format!("{} {:02}:{:02}:{:02}", self.date_text(), self.hour, self.minute, self.second);
        if self.micros != 0 {
            s.push_str(&format!(".{:06}", self.micros));
        }
        s
    }

    /// The instant as a tuple that sorts chronologically.
    pub(crate) fn sort_key(&self) -> (u32, u32, u32, u32, u32, u32, u32) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros)
    }

    /// `YYYY-MM-DD`.
    pub(crate) fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Days in `month` of `year`; StarRocks' `date::is_leap` does not count year 0 as leap.
fn days_in_month(year: u32, month: u32) -> Option<u32> {
    let leap = year != 0
        && ((year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400));
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    })
}

fn two_digits(b: &[u8]) -> Option<u32> {
    (b.len() == 2 && b.iter().all(u8::is_ascii_digit))
        .then(|| u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'))
}

/// `TimestampValue::from_string` / `DateValue::from_string` (sourced; used by CSV, CAST and
/// the JSON scanner for DATE/DATETIME):
///
/// - spaces around the text are trimmed; it must start with `YYYY-MM-DD` (4-2-2 digits, a
///   valid date, year ≤ 9999; a leading sign, `infinity`, or a 5-digit year fail);
/// - then optionally `T` or one or more spaces and `HH:MM:SS` (≤ 23:59:59). When the time is
///   missing or invalid, the value is the date at 00:00:00;
/// - after the time, `.` plus fraction digits (1–6 kept, fewer scaled up, more ignored, not
///   rounded), an optional `Z`, an optional offset such as `+02:00`: all without conversion;
/// - anything else after a valid date/time that does not start with a digit is dropped
///   (spec §2, D); worst case for what is unconfirmed: a digit right after the date or the
///   seconds fails, and compact forms (`20240102`) fail.
pub(crate) fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let t = s.trim_matches(' ');
    let b = t.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = b[..4].iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    let month = two_digits(&b[5..7])?;
    let day = two_digits(&b[8..10])?;
    if day == 0 || day > days_in_month(year, month)? {
        return None;
    }
    let mut ts = Timestamp {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        plain_date: b.len() == 10 && t.len() == s.len(),
        plain_datetime: false,
    };
    let rest = &b[10..];
    if rest.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let (after_sep, single_space) = match rest.first() {
        Some(b'T') => (Some(&rest[1..]), false),
        Some(b' ') => {
            let n = rest.iter().take_while(|&&c| c == b' ').count();
            (Some(&rest[n..]), n == 1)
        }
        _ => (None, false),
    };
    let Some(r) = after_sep else { return Some(ts) };
    if r.len() < 8 || r[2] != b':' || r[5] != b':' {
        return Some(ts);
    }
    let (Some(hour), Some(minute), Some(second)) =
        (two_digits(&r[0..2]), two_digits(&r[3..5]), two_digits(&r[6..8]))
    else {
        return Some(ts);
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Some(ts);
    }
    let mut tail = &r[8..];
    if tail.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut fraction_ok = true;
    if let Some(f) = tail.strip_prefix(b".") {
        let n = f.iter().take_while(|c| c.is_ascii_digit()).count();
        let kept = &f[..n.min(6)];
        let mut micros = kept.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        for _ in kept.len()..6 {
            micros *= 10;
        }
        ts.micros = micros;
        fraction_ok = (1..=6).contains(&n);
        tail = &f[n..];
    }
    ts.hour = hour;
    ts.minute = minute;
    ts.second = second;
    ts.plain_datetime = single_space && fraction_ok && tail.is_empty() && t.len() == s.len();
    Some(ts)
}

/// StarRocks' string → BOOLEAN (sourced for the JSON scanner): an integer (`!= 0`), else
/// `true`/`false` in any case; anything else (PostgreSQL's `t`/`f`, `yes`) fails.
pub(crate) fn string_to_bool(s: &str) -> Option<bool> {
    match string_to_int(s, i128::MIN, i128::MAX) {
        Ok(v) => Some(v != 0),
        Err(IntError::Overflow) => None,
        Err(IntError::Invalid) => {
            if s.eq_ignore_ascii_case("true") {
                Some(true)
            } else if s.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }
    }
}

/// `parse_json(varchar)` = `CAST(varchar AS JSON)` = `JsonValue::parse` →
/// `parse_json_or_string` (sourced): when the first non-space character is `{`, `[` or `"`
/// the text is parsed as JSON (`None`, i.e. SQL NULL, when invalid); otherwise the whole text
/// becomes a JSON string scalar (`123` → `"123"`, `null` → `"null"`, empty → `""`).
pub(crate) fn parse_json_or_string(s: &str) -> Option<serde_json::Value> {
    match s.trim_start().as_bytes().first() {
        Some(b'{' | b'[' | b'"') => serde_json::from_str(s).ok(),
        _ => Some(serde_json::Value::String(s.to_owned())),
    }
}

/// The canonical cell text of a JSON value: serde_json's compact form (object keys sorted),
/// so a JSON string `"123"` stays distinct from the number `123` and JSON `null` from SQL
/// NULL (`None`).
pub(crate) fn json_cell(v: &serde_json::Value) -> String {
    v.to_string()
}

/// Why a CAST from VARCHAR failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CastError {
    /// The result is NULL.
    Null(String),
    /// The row is filtered (an over-length VARCHAR/CHAR).
    Filter(String),
}

impl CastError {
    /// The message.
    pub(crate) fn message(&self) -> &str {
        match self {
            CastError::Null(m) | CastError::Filter(m) => m,
        }
    }
}

/// `CAST(varchar AS ty)`, as a load applies it to an expression result and the JSON scanner
/// to the non-native types (DATE, DATETIME, DECIMAL, LARGEINT): integers by
/// [`string_to_int`] (`1.5` → NULL: unconfirmed, worst case), FLOAT/DOUBLE by
/// [`string_to_float`] but NaN/±Infinity give NULL (sourced for CAST), DECIMAL by
/// [`string_to_decimal`], DATE/DATETIME by [`parse_timestamp`], BOOLEAN by
/// [`string_to_bool`], JSON by [`parse_json_or_string`], CHAR/VARCHAR checked against their
/// byte length ([`CastError::Filter`]). ARRAY and VARBINARY are not modelled.
pub(crate) fn cast_varchar(ty: &SrType, s: &str) -> Result<String, CastError> {
    let null = |m: String| Err(CastError::Null(m));
    match ty {
        SrType::TinyInt | SrType::SmallInt | SrType::Int | SrType::BigInt | SrType::LargeInt => {
            int_text(ty, s).map_err(CastError::Null)
        }
        SrType::Float | SrType::Double => match string_to_float(s) {
            Some(v) if v.is_finite() => {
                float_cell(v, *ty == SrType::Float).map_err(CastError::Null)
            }
            Some(_) => null("CAST to FLOAT/DOUBLE gives NULL for NaN and infinity".into()),
            None => null(format!(
                "not a valid {}",
                if *ty == SrType::Float { "FLOAT" } else { "DOUBLE" }
            )),
        },
        SrType::Decimal(p, sc) => {
            string_to_decimal(s, *p, *sc).map(|d| d.text).map_err(CastError::Null)
        }
        SrType::Date => parse_timestamp(s)
            .map(|t| t.date_text())
            .ok_or_else(|| CastError::Null("not a valid DATE".into())),
        SrType::DateTime => parse_timestamp(s)
            .map(|t| t.datetime_text())
            .ok_or_else(|| CastError::Null("not a valid DATETIME".into())),
        SrType::Boolean => string_to_bool(s)
            .map(|b| if b { "1" } else { "0" }.to_owned())
            .ok_or_else(|| CastError::Null("not a valid BOOLEAN".into())),
        SrType::Char(n) | SrType::Varchar(n) => {
            if s.len() > *n as usize {
                Err(CastError::Filter(format!("{} bytes exceed the column length {n}", s.len())))
            } else {
                Ok(s.to_owned())
            }
        }
        SrType::Json => parse_json_or_string(s)
            .map(|v| json_cell(&v))
            .ok_or_else(|| CastError::Null("not valid JSON".into())),
        SrType::Varbinary | SrType::Array(_) => {
            null("test double: CAST to VARBINARY or ARRAY is not modelled".into())
        }
        #[allow(unreachable_patterns)]
        _ => null("test double: this column type is not modelled".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, p: u8, sc: u8) -> Result<String, String> {
        string_to_decimal(s, p, sc).map(|d| d.text)
    }

    #[test]
    fn decimals_round_half_up_away_from_zero() {
        assert_eq!(dec("12.5", 5, 2).unwrap(), "12.50");
        assert_eq!(dec("-0.00", 5, 2).unwrap(), "0.00");
        assert_eq!(dec("007", 5, 0).unwrap(), "7");
        assert_eq!(dec(".5", 3, 1).unwrap(), "0.5");
        assert_eq!(dec("1.235", 5, 2).unwrap(), "1.24");
        assert_eq!(dec("-1.235", 5, 2).unwrap(), "-1.24");
        assert_eq!(dec("1.2349", 5, 2).unwrap(), "1.23");
        assert_eq!(dec("-0.004", 5, 2).unwrap(), "0.00");
        assert_eq!(dec("999.995", 5, 2).unwrap_err(), "out of range for DECIMAL(5,2)");
        assert_eq!(dec("1.5e2", 5, 2).unwrap(), "150.00");
        assert_eq!(dec("15E-3", 5, 2).unwrap(), "0.02");
        assert_eq!(dec("1e3", 5, 2).unwrap_err(), "out of range for DECIMAL(5,2)");
        assert_eq!(dec("0e5", 5, 2).unwrap(), "0.00");
        assert_eq!(dec("1e-100000", 5, 2).unwrap(), "0.00");
        assert!(dec("1e100000", 5, 2).is_err());
        for bad in ["", ".", "NaN", "Infinity", " 1", "1 ", "1e", "--1", "1.2.3", "0x10"] {
            assert!(dec(bad, 5, 2).is_err(), "{bad}");
        }
        let d = string_to_decimal("1.230", 5, 2).unwrap();
        assert!(!d.rounded && !d.exponent);
        let d = string_to_decimal("1.231e0", 5, 2).unwrap();
        assert!(d.rounded && d.exponent);
    }

    #[test]
    fn floats() {
        assert!(string_to_float("NaN").unwrap().is_nan());
        assert!(string_to_float("-nan").unwrap().is_nan());
        assert_eq!(string_to_float("Infinity"), Some(f64::INFINITY));
        assert_eq!(string_to_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(string_to_float("+inf"), Some(f64::INFINITY));
        assert_eq!(string_to_float("1e3"), Some(1000.0));
        for bad in ["", "nanx", "in", " 1", "1e400", "0x1", "1,5"] {
            assert_eq!(string_to_float(bad), None, "{bad}");
        }
        assert_eq!(format_double(f64::NAN), "NaN");
        assert_eq!(format_double(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(float_cell(f64::INFINITY, true).unwrap(), "Infinity");
        assert!(float_cell(1e39, true).is_err());
    }

    #[test]
    fn timestamps() {
        let dt = |s: &str| parse_timestamp(s).map(|t| t.datetime_text());
        assert_eq!(dt("2024-01-02T03:04:05.123456Z").unwrap(), "2024-01-02 03:04:05.123456");
        assert_eq!(dt("2024-01-02 03:04:05").unwrap(), "2024-01-02 03:04:05");
        assert_eq!(dt("  2024-01-02   03:04:05.5  ").unwrap(), "2024-01-02 03:04:05.500000");
        assert_eq!(dt("2024-01-02 03:04:05.1234567").unwrap(), "2024-01-02 03:04:05.123456");
        assert_eq!(dt("2024-01-02T03:04:05+02:00").unwrap(), "2024-01-02 03:04:05");
        assert_eq!(dt("2017-09-15Z").unwrap(), "2017-09-15 00:00:00");
        assert_eq!(dt("2024-01-02 24:00:00").unwrap(), "2024-01-02 00:00:00");
        assert_eq!(dt("2024-01-02T03:04").unwrap(), "2024-01-02 00:00:00");
        assert_eq!(dt("2024-01-02 BC").unwrap(), "2024-01-02 00:00:00");
        for bad in [
            "-0098-01-01Z",
            "+10000-01-01Z",
            "+294247-01-10T04:00:25.2Z",
            "infinity",
            "-infinity",
            "10000-01-01",
            "2023-02-29",
            "0000-02-29",
            "20240102",
            "2024-1-2",
            "2024-01-021",
            "2024-01-02 03:04:056",
            "",
        ] {
            assert_eq!(dt(bad), None, "{bad}");
        }
        assert!(parse_timestamp("2024-01-02").unwrap().plain_date);
        assert!(!parse_timestamp(" 2024-01-02").unwrap().plain_date);
        assert!(parse_timestamp("2024-01-02 03:04:05.5").unwrap().plain_datetime);
        assert!(!parse_timestamp("2024-01-02T03:04:05").unwrap().plain_datetime);
        assert!(!parse_timestamp("2024-01-02 03:04:05.").unwrap().plain_datetime);
        assert!(!parse_timestamp("2024-01-02 03:04:05.1234567").unwrap().plain_datetime);
    }

    #[test]
    fn json_or_string() {
        let p = |s: &str| parse_json_or_string(s).map(|v| json_cell(&v));
        assert_eq!(p("123").unwrap(), r#""123""#);
        assert_eq!(p("true").unwrap(), r#""true""#);
        assert_eq!(p("null").unwrap(), r#""null""#);
        assert_eq!(p("abc").unwrap(), r#""abc""#);
        assert_eq!(p("").unwrap(), r#""""#);
        assert_eq!(p(r#" {"b":1,"a":[null]}"#).unwrap(), r#"{"a":[null],"b":1}"#);
        assert_eq!(p(r#""x""#).unwrap(), r#""x""#);
        assert_eq!(p("{bad"), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(string_to_bool("7"), Some(true));
        assert_eq!(string_to_bool("FALSE"), Some(false));
        assert_eq!(string_to_bool("t"), None);
    }
}
