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

/// Startup `options` for the replication connection that creates the slot and then holds
/// its exported snapshot, idle, for the whole run.
///
/// It can run no `SET` (any command would end the exported snapshot), so the timeouts a
/// server, database or role may set (`idle_session_timeout` from PostgreSQL 14 on would
/// terminate it while idle) are switched off at connection start, appended to the user's
/// own `options`.
pub(crate) fn replication_options(user_options: Option<&str>, server_version_num: u32) -> String {
    let mut out: Vec<String> =
        user_options.filter(|o| !o.trim().is_empty()).map(str::to_owned).into_iter().collect();
    for (k, v) in OPERATIONAL {
        out.push(format!("-c {k}={v}"));
    }
    if server_version_num >= 140000 {
        out.push("-c idle_session_timeout=0".to_owned());
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_options_keep_the_users_and_add_timeouts() {
        assert_eq!(
            replication_options(Some("-c search_path=x"), 150000),
            "-c search_path=x -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c idle_session_timeout=0"
        );
        assert_eq!(
            replication_options(None, 130000),
            "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"
        );
    }
}
