//! Snapshot and source identity, as recorded in the manifest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::lsn::Lsn;

/// How the consistent snapshot was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SnapshotMode {
    /// A logical replication slot created with an exported snapshot; its consistent point is
    /// the CDC handoff LSN.
    #[default]
    Slot,
    /// `pg_export_snapshot()` in a `REPEATABLE READ` transaction; no slot, no LSN.
    Export,
    /// A snapshot name supplied by the caller and held by another session.
    External,
}

impl SnapshotMode {
    /// The lower-case name used in flags and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slot => "slot",
            Self::Export => "export",
            Self::External => "external",
        }
    }
}

impl fmt::Display for SnapshotMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "slot" => Ok(Self::Slot),
            "export" => Ok(Self::Export),
            "external" => Ok(Self::External),
            other => {
                Err(format!("unknown snapshot mode {other:?}: expected slot, export or external"))
            }
        }
    }
}

/// The snapshot a run copies, as recorded in the manifest's `snapshot` object.
///
/// # Example
/// ```
/// use pgsnap_core::{SnapshotInfo, SnapshotMode};
/// let s = SnapshotInfo {
///     mode: SnapshotMode::Export,
///     name: "00000003-00000002-1".into(),
///     lsn: None,
///     slot: None,
///     slot_temporary: None,
///     pg_snapshot: "750:750:".into(),
///     taken_at: "2026-11-25T10:00:00.000000Z".into(),
/// };
/// assert!(serde_json::to_value(&s).unwrap().get("lsn").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// How the snapshot was obtained.
    pub mode: SnapshotMode,
    /// The exported snapshot name (`SET TRANSACTION SNAPSHOT` argument). Names repeat across
    /// server restarts; identity is `pg_snapshot` plus the source's system identifier.
    pub name: String,
    /// The slot's consistent point (slot mode only): the first LSN that CDC must replay.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lsn: Option<Lsn>,
    /// The replication slot name (slot mode only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slot: Option<String>,
    /// Whether the slot is temporary (dropped when the run ends).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slot_temporary: Option<bool>,
    /// `pg_current_snapshot()` inside the imported snapshot, as `xmin:xmax:xip,...`.
    pub pg_snapshot: String,
    /// The server's `clock_timestamp()` read just before the snapshot was taken (RFC 3339, UTC).
    pub taken_at: String,
}

/// Identity of the source cluster, as recorded in the manifest's `source` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `pg_control_system().system_identifier`, as decimal text (it does not fit a JSON number).
    pub system_identifier: String,
    /// `server_version` as the server reports it, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. `150018`.
    pub server_version_num: u32,
    /// The database copied.
    pub database: String,
}
