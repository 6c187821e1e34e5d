//! Taking and holding the exported snapshot.

use std::time::Duration;

use tokio_postgres::Client;

use crate::conninfo::ConnSpec;
use crate::error::{Error, Result};
use crate::pattern::quote_literal;
use crate::replication::{ReplicationConnection, ReplicationError};
use crate::wire::Connection;
use pgsnap_core::{Lsn, SnapshotMode};

/// Holds the exported snapshot alive; dropping it ends the snapshot.
#[derive(Debug)]
pub(crate) enum Holder {
    /// The replication connection that created the slot; no further command may be sent.
    Slot(ReplicationConnection),
    /// A normal connection inside the exporting transaction.
    Export(Client),
    /// Someone else holds it.
    External,
}

/// What taking the snapshot produced.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) holder: Holder,
    pub(crate) name: String,
    pub(crate) lsn: Option<Lsn>,
    pub(crate) slot: Option<String>,
    pub(crate) slot_temporary: Option<bool>,
}

/// Slot-creation options.
#[derive(Debug, Clone)]
pub(crate) struct SlotRequest {
    pub(crate) name: String,
    pub(crate) temporary: bool,
    pub(crate) timeout: Duration,
}

pub(crate) async fn take(
    spec: &ConnSpec,
    control: &Client,
    mode: SnapshotMode,
    slot: Option<&SlotRequest>,
    external: Option<&str>,
) -> Result<Taken> {
    match mode {
        SnapshotMode::Slot => {
            let req = slot.ok_or_else(|| Error::Config("slot mode needs a slot request".into()))?;
            create_slot(spec, control, req).await
        }
        SnapshotMode::Export => {
            let client = crate::client::connect(spec).await?;
            client
                .batch_execute(&format!(
                    "{} BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                    crate::session::pin_sql()
                ))
                .await
                .map_err(|e| Error::pg("cannot start the exporting transaction", e))?;
            let row = client
                .query_one("SELECT pg_export_snapshot()", &[])
                .await
                .map_err(|e| Error::pg("pg_export_snapshot() failed", e))?;
            Ok(Taken {
                name: row.get(0),
                holder: Holder::Export(client),
                lsn: None,
                slot: None,
                slot_temporary: None,
            })
        }
        SnapshotMode::External => {
            let name = external.ok_or_else(|| {
                Error::Config("the external snapshot mode (SnapshotMode::External) needs an external snapshot name (with_external_snapshot: a snapshot exported and held open by another session)".into())
            })?;
            Ok(Taken {
                holder: Holder::External,
                name: name.to_owned(),
                lsn: None,
                slot: None,
                slot_temporary: None,
            })
        }
        other => {
            Err(Error::Config(format!("snapshot mode {other} is not supported by this source")))
        }
    }
}

async fn create_slot(spec: &ConnSpec, control: &Client, req: &SlotRequest) -> Result<Taken> {
    let tls = crate::tls::client_config(spec.tls, spec.sslrootcert.as_deref())?;
    let version: i32 = control
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| Error::pg("cannot read the server version", e))?
        .get(0);
    // This connection holds the snapshot idle for the whole run: no server timeout may end it.
    let mut config = spec.config.clone();
    config.options(crate::session::replication_options(spec.config.get_options(), version as u32));
    let mut repl = ReplicationConnection::connect(&config, tls).await.map_err(|e| match e.sqlstate() {
        Some("53300") => Error::Preflight(format!(
            "no free WAL sender for the replication connection ({e}); raise max_wal_senders or stop an idle replication client"
        )),
        Some("42501" | "28000") => Error::Preflight(format!(
            "the user may not open a replication connection ({e}); grant it with ALTER ROLE ... REPLICATION and allow `replication` in pg_hba.conf, or use the export snapshot mode (SnapshotMode::Export)"
        )),
        _ => Error::Replication { context: "cannot open the replication connection".into(), source: e },
    })?;
    let cancel = repl.cancel_handle();
    let repl_pid = repl.backend_pid();
    // `None`: the creation timed out and was cancelled (or did not end after the cancel).
    let outcome = {
        let create = repl.create_logical_slot(&req.name, req.temporary);
        tokio::pin!(create);
        tokio::select! {
            r = &mut create => Some(r),
            _ = tokio::time::sleep(req.timeout) => {
                // Cancel server-side, then wait for the command to end so no half-made slot remains.
                let _ = cancel.cancel().await;
                match tokio::time::timeout(Duration::from_secs(10), &mut create).await {
                    // It finished just as the cancel went out: the slot exists, use it.
                    Ok(Ok(created)) => Some(Ok(created)),
                    Ok(Err(e)) if e.sqlstate() == Some("57014") => None,
                    // It failed for another reason first: report that.
                    Ok(Err(e)) => Some(Err(e)),
                    Err(_) => {
                        let _ = abandon_slot_creation(repl_pid, control).await;
                        None
                    }
                }
            }
        }
    };
    match outcome {
        Some(Ok(created)) => {
            let lsn = created.consistent_point.parse::<Lsn>().map_err(|e| {
                Error::Preflight(format!("the server sent an unreadable consistent point: {e}"))
            })?;
            let name = created.snapshot_name.ok_or_else(|| {
                Error::Preflight("the server created the slot but exported no snapshot".into())
            })?;
            Ok(Taken {
                holder: Holder::Slot(repl),
                name,
                lsn: Some(lsn),
                slot: Some(created.slot_name),
                slot_temporary: Some(req.temporary),
            })
        }
        Some(Err(e)) => Err(slot_error(&req.name, e)),
        None => {
            let blockers = blockers(control, repl_pid).await;
            drop(repl);
            Err(Error::Preflight(format!(
                "creating replication slot {:?} did not finish within {:?}: it waits for transactions that were running when it started to end. {blockers} \
                 The slot creation was cancelled and no slot was left behind. End those transactions (or COMMIT PREPARED/ROLLBACK PREPARED), \
                 or raise the slot timeout.",
                req.name, req.timeout
            )))
        }
    }
}

/// Last resort when a cancelled slot creation does not end: terminates its walsender, so
/// the half-made (still ephemeral) slot is released and dropped by the server.
async fn abandon_slot_creation(repl_pid: i32, control: &Client) -> Result<()> {
    control
        .execute("SELECT pg_terminate_backend($1)", &[&repl_pid])
        .await
        .map(drop)
        .map_err(|e| Error::pg("cannot terminate the blocked slot creation", e))
}

/// Gives up a snapshot taken by a start that failed later: a permanent slot created for it
/// is dropped again (nothing else may have used it yet), a temporary one goes with its
/// connection, an exporting transaction ends.
pub(crate) async fn abandon(taken: Taken) {
    match taken.holder {
        Holder::Slot(mut conn) => {
            if taken.slot_temporary == Some(false)
                && let Some(slot) = &taken.slot
                && let Err(e) = conn.drop_slot(slot, false).await
            {
                tracing::warn!(error = %e, "cannot drop replication slot {slot:?} after the failed start; drop it by hand");
            }
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing the replication connection");
            }
        }
        Holder::Export(client) => drop(client),
        Holder::External => {}
    }
}

fn slot_error(name: &str, e: ReplicationError) -> Error {
    match e.sqlstate() {
        Some("42710") => Error::Preflight(format!(
            "replication slot {name:?} already exists; choose another slot name, or drop it (pgsnap's drop_slot, or SELECT pg_drop_replication_slot('{name}')) if nothing consumes it"
        )),
        Some("53400") => Error::Preflight(format!(
            "all replication slots are in use ({e}); raise max_replication_slots or drop an unused slot"
        )),
        Some("55000") => Error::Preflight(format!(
            "cannot create a logical slot: {e}; set wal_level = logical and restart the server, or use the export snapshot mode (SnapshotMode::Export)"
        )),
        _ => Error::Replication {
            context: format!("cannot create replication slot {name:?}"),
            source: e,
        },
    }
}

/// Describes the sessions and prepared transactions a slot creation waits for.
async fn blockers(control: &Client, repl_pid: i32) -> String {
    let mut out = String::new();
    if let Ok(rows) = control
        .query(
            "SELECT pid, coalesce(usename::text, ''), coalesce(state, ''), coalesce(to_char(xact_start, 'YYYY-MM-DD HH24:MI:SS TZ'), ''), \
                    left(coalesce(query, ''), 60) \
               FROM pg_stat_activity \
              WHERE backend_xid IS NOT NULL AND pid <> $1 AND pid <> pg_backend_pid() \
              ORDER BY xact_start NULLS LAST LIMIT 20",
            &[&repl_pid],
        )
        .await
        && !rows.is_empty() {
            out.push_str("Sessions with open write transactions: ");
            let list: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "pid {} (user {}, {}, since {}, query {:?})",
                        r.get::<_, i32>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3),
                        r.get::<_, String>(4)
                    )
                })
                .collect();
            out.push_str(&list.join("; "));
            out.push('.');
        }
    if let Ok(rows) = control
        .query("SELECT gid, to_char(prepared, 'YYYY-MM-DD HH24:MI:SS TZ'), database::text FROM pg_prepared_xacts ORDER BY prepared", &[])
        .await
        && !rows.is_empty() {
            let list: Vec<String> = rows
                .iter()
                .map(|r| format!("{:?} (prepared {}, database {})", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
                .collect();
            out.push_str(&format!(" Prepared transactions: {}.", list.join("; ")));
        }
    if out.is_empty() {
        out.push_str("No blocking session was found any more.");
    }
    out
}

/// Imports the snapshot into a connection: pinned settings, a `REPEATABLE READ, READ ONLY`
/// transaction, `SET TRANSACTION SNAPSHOT`.
pub(crate) async fn import(client: &Client, name: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "{} BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            crate::session::pin_sql()
        ))
        .await
        .map_err(|e| Error::pg("cannot start a snapshot transaction", e))?;
    client
        .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name)))
        .await
        .map_err(|e| match e.code().map(|c| c.code()) {
            Some(code) if not_importable(code) => snapshot_lost(
                name,
                &e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string()),
            ),
            _ => Error::pg(format!("cannot import snapshot {name:?}"), e),
        })
}

/// [`import`] on a worker connection.
pub(crate) async fn import_into(conn: &mut Connection, name: &str) -> Result<()> {
    conn.simple_query(&format!(
        "{} BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        crate::session::pin_sql()
    ))
    .await
    .map_err(|e| Error::Replication {
        context: "cannot start a snapshot transaction".into(),
        source: e,
    })?;
    conn.simple_query(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name)))
        .await
        .map(drop)
        .map_err(|e| match &e {
            ReplicationError::Server { code, message, .. } if not_importable(code) => {
                snapshot_lost(name, message)
            }
            _ => Error::Replication {
                context: format!("cannot import snapshot {name:?}"),
                source: e,
            },
        })
}

/// Whether `SET TRANSACTION SNAPSHOT` failed with this SQLSTATE because the snapshot is gone
/// (`invalid snapshot identifier`, or its exporting transaction moved on).
fn not_importable(sqlstate: &str) -> bool {
    matches!(sqlstate, "22023" | "0A000")
}

fn snapshot_lost(name: &str, server_message: &str) -> Error {
    Error::SnapshotLost {
        snapshot: name.to_owned(),
        reason: format!(
            "{server_message} — the session that exported it has ended or moved on; take a new snapshot, or, when resuming in slot mode with a permanent slot, allow a snapshot change (allow_snapshot_change)"
        ),
    }
}
