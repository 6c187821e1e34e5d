//! The text forms that the snapshot path sends for PostgreSQL types StarRocks has no type for,
//! chosen so that Routine Load, reading Debezium's encoding of the same value, writes the same
//! cell (see [`crate::parity`]).
//!
//! Routine Load runs no code of ours: where it cannot reproduce PostgreSQL's text, the
//! canonical form is Debezium's. Each function takes one value as PostgreSQL prints it under
//! the source session's pinned settings (`DateStyle=ISO`, `IntervalStyle=postgres`,
//! `TimeZone=UTC`, `bytea_output=hex`), with COPY escapes already undone, and returns the text
//! Debezium 3.x sends for it with pgsnap's connector settings, or why the value has no such
//! form. The Debezium behaviour each one copies is cited in its docs (paths in
//! `debezium/debezium` at `v3.6.1.Final`).
//!
//! These are hand-written rather than taken from a crate: they reproduce one Java program's
//! output digit for digit, which no general-purpose crate does.

/// `numeric` as text (unbounded `numeric`, or a `numeric` primary key kept as `VARCHAR`):
/// PostgreSQL's text, except the special values, which Debezium's `decimal.handling.mode=string`
/// prints as the names of its `SpecialValueDecimal` constants (`SpecialValueDecimal.fromLogical`
/// returns `specialValue.name()`): `NaN` → `NAN`, `Infinity` → `POSITIVE_INFINITY`,
/// `-Infinity` → `NEGATIVE_INFINITY`. Finite values are `BigDecimal.toPlainString()` of
/// PostgreSQL's text, which is that text itself (PostgreSQL never prints an exponent).
///
/// ```
/// use pgsnap_sink_starrocks::canonical::numeric_text;
/// assert_eq!(numeric_text(b"-12.50").unwrap(), "-12.50");
/// assert_eq!(numeric_text(b"NaN").unwrap(), "NAN");
/// assert_eq!(numeric_text(b"-Infinity").unwrap(), "NEGATIVE_INFINITY");
/// assert!(numeric_text(b"1e5").is_err());
/// ```
pub fn numeric_text(v: &[u8]) -> Result<&str, String> {
    match v {
        b"NaN" => return Ok("NAN"),
        b"Infinity" => return Ok("POSITIVE_INFINITY"),
        b"-Infinity" => return Ok("NEGATIVE_INFINITY"),
        _ => {}
    }
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    let (int, frac) = match digits.iter().position(|&b| b == b'.') {
        Some(p) => (&digits[..p], Some(&digits[p + 1..])),
        None => (digits, None),
    };
    let ok = !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit));
    if !ok {
        return Err("not a numeric as PostgreSQL prints it".into());
    }
    Ok(std::str::from_utf8(v).expect("ASCII checked above"))
}

/// `bytea` as Debezium's `binary.handling.mode=hex` sends it: lowercase hex digits without
/// PostgreSQL's `\x` prefix (`HexConverter`'s alphabet is `0-9a-f`; the empty value is the
/// empty string).
///
/// ```
/// use pgsnap_sink_starrocks::canonical::bytea_hex;
/// assert_eq!(bytea_hex(b"\\x0a1bff").unwrap(), b"0a1bff");
/// assert_eq!(bytea_hex(b"\\x").unwrap(), b"");
/// assert!(bytea_hex(b"\\001").is_err());
/// ```
pub fn bytea_hex(v: &[u8]) -> Result<&[u8], String> {
    let hex = v
        .strip_prefix(b"\\x")
        .ok_or("not bytea in hex output (the source session sets bytea_output=hex)")?;
    if hex.len() % 2 != 0 || !hex.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return Err("not lowercase hex digits".into());
    }
    Ok(hex)
}

/// `money` as a plain decimal, as Debezium reads PostgreSQL's money text
/// (`PostgresMoney.parse`: a leading `-` or `(…)` makes it negative, one leading currency
/// character is dropped, `,` thousands separators are removed) and prints it with
/// `decimal.handling.mode=string` (`BigDecimal.toPlainString()`, the scale as printed).
///
/// Debezium silently misreads money printed with other conventions (`€1.234,56` becomes
/// `1.23456`) and fails on others (`1.234,56 €`), so only what it reads correctly is accepted:
/// an optional sign or parentheses, at most one currency character, digits with `,` between
/// groups of three, and an optional `.` fraction. Set `lc_monetary` to `C` or `en_US.UTF-8`
/// for other servers.
///
/// ```
/// use pgsnap_sink_starrocks::canonical::money_plain;
/// assert_eq!(money_plain("$1,234.56").unwrap(), "1234.56");
/// assert_eq!(money_plain("-$0.50").unwrap(), "-0.50");
/// assert_eq!(money_plain("($7.00)").unwrap(), "-7.00");
/// assert!(money_plain("€1.234,56").is_err());
/// assert!(money_plain("1.234,56 €").is_err());
/// ```
pub fn money_plain(v: &str) -> Result<String, String> {
    let why = || {
        format!(
            "money printed as {v:?} is not in the form Debezium reads exactly (an optional \
             sign, one currency character, `,` thousands and a `.` fraction, as lc_monetary=C \
             prints it)"
        )
    };
    let (negative, body) = if let Some(rest) = v.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = v.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        (true, rest)
    } else {
        (false, v)
    };
    let mut chars = body.chars();
    let body = match chars.next() {
        Some(c) if c.is_ascii_digit() => body,
        // One UTF-16 unit in Java (`substring(1)`): a BMP character that is not a digit or '.'.
        Some(c) if c != '.' && c != ',' && (c as u32) < 0x10000 && !c.is_whitespace() => {
            chars.as_str()
        }
        _ => return Err(why()),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    // Digits, or with `,` separators: 1 to 3 digits, then groups of 3.
    let digits = |g: &str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit());
    let mut groups = int.split(',');
    let first = groups.next().unwrap_or_default();
    let grouped = digits(first)
        && (!int.contains(',') || first.len() <= 3)
        && groups.all(|g| g.len() == 3 && digits(g));
    if !grouped || frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return Err(why());
    }
    let mut out = String::with_capacity(body.len() + 1);
    if negative {
        out.push('-');
    }
    out.extend(int.chars().filter(|&c| c != ','));
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    Ok(out)
}

/// `time` as Debezium's `time.precision.mode=isostring` sends it (`IsoTime`:
/// `ISO_OFFSET_TIME` of a `LocalTime` at UTC): `HH:MM:SS`, the fraction without trailing
/// zeros (PostgreSQL prints it the same way), then `Z`.
///
/// `24:00:00`, which PostgreSQL allows, is refused: Java's `LocalTime` has no such value and
/// Debezium 3.6 sends `00:00:00Z`, the start of the day instead of its end.
///
/// ```
/// use pgsnap_sink_starrocks::canonical::time_iso;
/// assert_eq!(time_iso("04:05:06.789").unwrap(), "04:05:06.789Z");
/// assert_eq!(time_iso("00:00:00").unwrap(), "00:00:00Z");
/// assert!(time_iso("24:00:00").is_err());
/// ```
pub fn time_iso(v: &str) -> Result<String, String> {
    let (h, m, s, frac) = parse_clock(v).ok_or("not a time as PostgreSQL prints it")?;
    if h >= 24 {
        return Err(midnight_end());
    }
    Ok(format_clock(h, m, s, frac))
}

/// `time with time zone` as Debezium sends it in every precision mode (`ZonedTime`: the time
/// shifted to UTC, `ISO_OFFSET_TIME`): `HH:MM:SS[.f]Z`, wrapping around midnight.
///
/// ```
/// use pgsnap_sink_starrocks::canonical::timetz_iso;
/// assert_eq!(timetz_iso("04:05:11-08").unwrap(), "12:05:11Z");
/// assert_eq!(timetz_iso("01:00:00.5+05:30").unwrap(), "19:30:00.5Z");
/// assert_eq!(timetz_iso("23:00:00-02").unwrap(), "01:00:00Z");
/// assert!(timetz_iso("24:00:00+00").is_err());
/// ```
pub fn timetz_iso(v: &str) -> Result<String, String> {
    let bad = || "not a time with time zone as PostgreSQL prints it".to_owned();
    let split = v.rfind(['+', '-']).ok_or_else(bad)?;
    let (clock, offset) = v.split_at(split);
    let (h, m, s, frac) = parse_clock(clock).ok_or_else(bad)?;
    if h >= 24 {
        return Err(midnight_end());
    }
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let mut off = 0i64;
    for (i, unit) in [3600i64, 60, 1].into_iter().enumerate() {
        match parts.next() {
            Some(p) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
                off += unit * p.parse::<i64>().map_err(|_| bad())?;
            }
            None if i > 0 => break,
            _ => return Err(bad()),
        }
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    let local = i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
    let utc = (local - sign * off).rem_euclid(86_400);
    Ok(format_clock((utc / 3600) as u32, (utc / 60 % 60) as u32, (utc % 60) as u32, frac))
}

fn midnight_end() -> String {
    "24:00:00 has no Debezium form (Debezium 3.6 sends it as 00:00:00Z, the start of the day)"
        .into()
}

/// `HH:MM:SS[.f{1,6}]` → hours, minutes, seconds and the fraction digits (trailing zeros
/// removed).
fn parse_clock(v: &str) -> Option<(u32, u32, u32, &str)> {
    let (hms, frac) = match v.split_once('.') {
        Some((a, f)) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (a, f.trim_end_matches('0'))
        }
        Some(_) => return None,
        None => (v, ""),
    };
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = &hms[r];
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok()).flatten()
    };
    let (h, m, s) = (num(0..2)?, num(3..5)?, num(6..8)?);
    (h <= 24 && m < 60 && s < 60 && (h < 24 || (m == 0 && s == 0 && frac.is_empty())))
        .then_some((h, m, s, frac))
}

fn format_clock(h: u32, m: u32, s: u32, frac: &str) -> String {
    if frac.is_empty() {
        format!("{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{frac}Z")
    }
}

/// `interval` as Debezium's `interval.handling.mode=string` sends it (`Interval.toIsoString`):
/// `P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}S`, every component as PostgreSQL's
/// `IntervalStyle=postgres` text has it (signs kept per component, hours not folded into days),
/// read by pgjdbc's `PGInterval`.
///
/// The seconds reproduce Debezium's arithmetic exactly: `PGInterval.getSeconds()` is the
/// double `whole + micros / 1e6`, printed through `BigDecimal.valueOf(double)`, cut to 9
/// decimals (`RoundingMode.DOWN`) and stripped of trailing zeros. So `00:00:01.003691` is
/// `1.003690999S`, as Debezium sends it. The rule used here (the exact decimal when it reads
/// back as the same double or lies at or below it, else one nanosecond less) was checked
/// against Java 17's `Double.toString` for every whole second 0–59 and every microsecond
/// (60 million values, no difference); Java 19 and later print the shortest form, for which
/// the rule is exact by construction.
///
/// ```
/// use pgsnap_sink_starrocks::canonical::interval_iso;
/// assert_eq!(interval_iso("1 year 2 mons 3 days 04:05:06.78").unwrap(), "P1Y2M3DT4H5M6.78S");
/// assert_eq!(interval_iso("-1 years -2 mons +3 days -04:05:06.5").unwrap(), "P-1Y-2M3DT-4H-5M-6.5S");
/// assert_eq!(interval_iso("1 day -00:00:01").unwrap(), "P0Y0M1DT0H0M-1S");
/// assert_eq!(interval_iso("00:00:00").unwrap(), "P0Y0M0DT0H0M0S");
/// assert_eq!(interval_iso("00:00:01.003691").unwrap(), "P0Y0M0DT0H0M1.003690999S");
/// assert_eq!(interval_iso("100:00:00").unwrap(), "P0Y0M0DT100H0M0S");
/// ```
pub fn interval_iso(v: &str) -> Result<String, String> {
    let bad = || format!("not an interval as PostgreSQL prints it (IntervalStyle=postgres): {v:?}");
    let (mut years, mut months, mut days) = (0i64, 0i64, 0i64);
    let (mut hours, mut minutes, mut seconds) = (0i64, 0i64, String::from("0"));
    let mut tokens = v.split(' ').peekable();
    let mut seen_time = false;
    while let Some(tok) = tokens.next() {
        if tok.contains(':') {
            if seen_time || tokens.peek().is_some() {
                return Err(bad());
            }
            seen_time = true;
            let (negative, clock) = match tok.as_bytes().first() {
                Some(b'-') => (true, &tok[1..]),
                Some(b'+') => (false, &tok[1..]),
                _ => (false, tok),
            };
            let mut parts = clock.splitn(3, ':');
            let (h, m, s) = (parts.next(), parts.next(), parts.next());
            let (Some(h), Some(m), Some(s)) = (h, m, s) else { return Err(bad()) };
            let int = |t: &str| -> Option<i64> {
                (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse().ok())
                    .flatten()
            };
            let (Some(h), Some(m)) = (int(h), int(m)) else { return Err(bad()) };
            let (whole, micros) = match s.split_once('.') {
                Some((w, f)) if !f.is_empty() && f.len() <= 6 => (
                    int(w).ok_or_else(bad)?,
                    int(f).ok_or_else(bad)? * 10i64.pow(6 - f.len() as u32),
                ),
                Some(_) => return Err(bad()),
                None => (int(s).ok_or_else(bad)?, 0),
            };
            if m >= 60 || whole >= 60 || h > i64::from(i32::MAX) {
                return Err(bad());
            }
            let sign = if negative { -1 } else { 1 };
            hours = sign * h;
            minutes = sign * m;
            seconds = java_seconds(negative, whole as u64, micros as u64);
            continue;
        }
        let n: i64 = tok.parse().map_err(|_| bad())?;
        let unit = tokens.next().ok_or_else(bad)?;
        let slot = match unit {
            "year" | "years" => &mut years,
            "mon" | "mons" => &mut months,
            "day" | "days" => &mut days,
            _ => return Err(bad()),
        };
        if seen_time || *slot != 0 || i32::try_from(n).is_err() {
            return Err(bad());
        }
        *slot = n;
    }
    Ok(format!("P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}S"))
}

/// Debezium's text for the seconds `whole.micros` (see [`interval_iso`]).
fn java_seconds(negative: bool, whole: u64, micros: u64) -> String {
    let text = if micros == 0 {
        whole.to_string()
    } else {
        let f = format!("{micros:06}");
        let exact = format!("{whole}.{}", f.trim_end_matches('0'));
        // Java: `wholeSeconds + (double) microSeconds / MICROS_IN_SECOND`.
        let d = whole as f64 + micros as f64 / 1_000_000.0;
        let reads_back = exact.parse::<f64>().is_ok_and(|e| e == d);
        if reads_back || !below(d, whole * 1_000_000 + micros) {
            exact
        } else {
            let nanos = format!("{:09}", micros * 1000 - 1);
            format!("{whole}.{}", nanos.trim_end_matches('0'))
        }
    };
    if negative && text != "0" { format!("-{text}") } else { text }
}

/// Whether the double `d` (positive, finite) is below `n / 10^6`, exactly.
fn below(d: f64, n: u64) -> bool {
    let bits = d.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let mant =
        if exp == 0 { (bits & ((1 << 52) - 1)) << 1 } else { (bits & ((1 << 52) - 1)) | (1 << 52) };
    // d = mant * 2^(exp - 1075)
    let e = exp - 1075;
    let lhs = u128::from(mant) * 1_000_000;
    if e >= 0 { lhs << e < u128::from(n) } else { lhs < u128::from(n) << (-e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_forms() {
        for (pg, dbz) in [
            ("1 year", "P1Y0M0DT0H0M0S"),
            ("2 years 1 mon", "P2Y1M0DT0H0M0S"),
            ("-3 days", "P0Y0M-3DT0H0M0S"),
            ("-1 days +02:03:00", "P0Y0M-1DT2H3M0S"),
            ("-00:00:00.5", "P0Y0M0DT0H0M-0.5S"),
            ("00:00:00.000001", "P0Y0M0DT0H0M0.000001S"),
            ("1 mon -00:01:00", "P0Y1M0DT0H-1M0S"),
            ("00:00:06.78", "P0Y0M0DT0H0M6.78S"),
            ("00:00:59.999999", "P0Y0M0DT0H0M59.999999S"),
        ] {
            assert_eq!(interval_iso(pg).unwrap(), dbz, "{pg}");
        }
        // Hours beyond a Java int (pgjdbc reads them into one) are refused.
        assert!(interval_iso("2562047788:00:54.775807").is_err());
        for bad in ["", "1", "1 week", "1 year 2 years", "00:00", "00:60:00", "1:2:3.1234567"] {
            assert!(interval_iso(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seconds_follow_java_doubles() {
        // Values checked against Debezium 3.6.3 on Java 17 (see the function docs).
        assert_eq!(java_seconds(false, 1, 3691), "1.003690999");
        assert_eq!(java_seconds(false, 6, 789_000), "6.789");
        assert_eq!(java_seconds(true, 1, 3691), "-1.003690999");
        assert_eq!(java_seconds(true, 0, 0), "0");
        assert_eq!(java_seconds(false, 10, 0), "10");
    }

    #[test]
    fn below_is_exact() {
        assert!(!below(1.0, 1_000_000));
        assert!(below(0.999_999_9, 1_000_000));
        assert!(!below(f64::from_bits((1.003_691f64).to_bits() + 1), 1_003_691));
        let d = 1.0 + 3691.0 / 1_000_000.0;
        assert!(below(d, 1_003_691));
    }

    #[test]
    fn clocks() {
        assert_eq!(time_iso("23:59:59.999999").unwrap(), "23:59:59.999999Z");
        assert_eq!(time_iso("12:00:00.100").unwrap(), "12:00:00.1Z");
        assert!(time_iso("12:00").is_err());
        assert_eq!(timetz_iso("00:30:00+01").unwrap(), "23:30:00Z");
        assert_eq!(timetz_iso("10:00:00+05:30:15").unwrap(), "04:29:45Z");
        assert_eq!(timetz_iso("10:00:00.25+00").unwrap(), "10:00:00.25Z");
        for bad in ["10:00:00", "10:00:00+5", "10:00:00+05:3", "x+00"] {
            assert!(timetz_iso(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_forms() {
        assert_eq!(money_plain("$0.00").unwrap(), "0.00");
        assert_eq!(money_plain("$92,233,720,368,547,758.07").unwrap(), "92233720368547758.07");
        assert_eq!(money_plain("-$92,233,720,368,547,758.08").unwrap(), "-92233720368547758.08");
        assert_eq!(money_plain("￥1,235").unwrap(), "1235");
        assert_eq!(money_plain("1,234.5").unwrap(), "1234.5");
        for bad in ["$ 1.00", "EUR1.00", "$1,23.00", "$1.", "", "-", "$12,34", "1 234,56 kr"] {
            assert!(money_plain(bad).is_err(), "{bad}");
        }
    }
}
