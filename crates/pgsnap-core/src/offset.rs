//! The `OffsetResolver` trait: where a CDC log continues after a snapshot.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Result, SnapshotInfo};

/// Per topic, per partition: the first offset that belongs after the snapshot.
///
/// # Example
/// ```
/// use pgsnap_core::OffsetMap;
/// let mut m = OffsetMap::default();
/// m.insert("pg.public.items", 0, 42);
/// assert_eq!(m.get("pg.public.items", 0), Some(42));
/// assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"pg.public.items":{"0":42}}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OffsetMap(pub BTreeMap<String, BTreeMap<i32, i64>>);

impl OffsetMap {
    /// Records an offset.
    pub fn insert(&mut self, topic: impl Into<String>, partition: i32, offset: i64) {
        self.0.entry(topic.into()).or_default().insert(partition, offset);
    }

    /// Looks an offset up.
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic)?.get(&partition).copied()
    }
}

/// Maps a snapshot to positions in a change log.
///
/// # Contract
/// For every partition of every topic asked for, the answer is the first offset whose
/// event is not contained in the snapshot: replaying from there onto the snapshot loses and
/// doubles nothing.
#[async_trait]
pub trait OffsetResolver: Send + Sync + Debug {
    /// Resolves offsets for `topics` after `snapshot`.
    ///
    /// # Errors
    /// When the log cannot be read or the position cannot be proven.
    async fn resolve(&self, snapshot: &SnapshotInfo, topics: &[String]) -> Result<OffsetMap>;
}
