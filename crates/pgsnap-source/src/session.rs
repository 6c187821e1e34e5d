//! Session settings pinned on every connection, so output is deterministic.

/// The settings pinned on every connection (name, value), recorded in the manifest.
///
/// They fix how values are printed (dates, intervals, time zone, floats, bytea, encoding),
/// make row-level security an error instead of a silent filter, and turn off synchronized
/// sequential scans so a chunk's rows come back in the same order on every read.
pub const PINNED_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("row_security", "off"),
    ("synchronize_seqscans", "off"),
];

/// Settings that keep a long copy from being cut off by server defaults.
const OPERATIONAL: &[(&str, &str)] =
    &[("statement_timeout", "0"), ("idle_in_transaction_session_timeout", "0")];

/// The `SET` statements for a new connection, as one simple-query string.
pub(crate) fn pin_sql() -> String {
    PINNED_SETTINGS
        .iter()
        .chain(OPERATIONAL)
        .map(|(k, v)| format!("SET {k} = '{v}';"))
        .collect::<Vec<_>>()
        .join(" ")
}
