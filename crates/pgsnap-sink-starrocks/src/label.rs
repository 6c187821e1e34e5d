//! Deterministic Stream Load labels: one per (run, table, chunk, part).
//!
//! A label is `<prefix>-<run id>-<table tag>-<chunk>-<part>`, e.g.
//! `pgsnap-5f0c…-public_orders-00017-0`. It is the same on every retry and on resume (the
//! run id is persisted in the run's manifest), so StarRocks' label check makes a chunk load
//! at most once (spec §1.4). Labels fit `^[-\w]{1,128}$`: the table tag keeps the ASCII
//! letters, digits and `_` of `schema_table` (cut to 24 characters) and ends with 8 hex
//! digits of a hash of the exact name, so different tables never share a tag.

use pgsnap_core::{ChunkId, TableName};
use xxhash_rust::xxh3::xxh3_64;

/// The longest label StarRocks accepts.
pub const MAX_LABEL_LEN: usize = 128;
/// The longest label prefix allowed.
pub const MAX_PREFIX_LEN: usize = 32;
const MAX_TAG: usize = 24;

/// Whether `s` matches `^[-\w]{1,max}$` (ASCII word characters and `-`).
pub(crate) fn is_label_text(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Makes labels for one run.
#[derive(Debug, Clone)]
pub(crate) struct Labeler {
    prefix: String,
    run_id: String,
}

impl Labeler {
    /// `run_id` must itself be label text (a UUID is).
    pub(crate) fn new(prefix: &str, run_id: &str) -> Result<Self, String> {
        if !is_label_text(prefix, MAX_PREFIX_LEN) {
            return Err(format!(
                "label prefix {prefix:?} must be 1..={MAX_PREFIX_LEN} characters of A-Z a-z 0-9 _ -"
            ));
        }
        if !is_label_text(run_id, 36) {
            return Err(format!(
                "run id {run_id:?} must be 1..=36 characters of A-Z a-z 0-9 _ - (a UUID)"
            ));
        }
        Ok(Self { prefix: prefix.to_owned(), run_id: run_id.to_owned() })
    }

    /// The run id the labels carry.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The label of one part of one chunk.
    pub(crate) fn label(&self, table: &TableName, chunk: ChunkId, part: u32) -> String {
        let label =
            format!("{}-{}-{}-{:05}-{}", self.prefix, self.run_id, table_tag(table), chunk.0, part);
        debug_assert!(is_label_text(&label, MAX_LABEL_LEN), "{label}");
        label
    }

    /// The label of a chunk loaded as one transaction (transaction interface): `…-<chunk>-t`,
    /// never equal to a Stream Load part's label, so a run resumed in the other mode cannot
    /// take one for the other.
    pub(crate) fn txn_label(&self, table: &TableName, chunk: ChunkId) -> String {
        format!("{}t", self.chunk_prefix(table, chunk))
    }

    /// The labels of a chunk start with this (for probes and listings).
    pub(crate) fn chunk_prefix(&self, table: &TableName, chunk: ChunkId) -> String {
        format!("{}-{}-{}-{:05}-", self.prefix, self.run_id, table_tag(table), chunk.0)
    }
}

fn table_tag(table: &TableName) -> String {
    let full = format!("{}_{}", table.schema, table.name);
    let mut tag: String = full
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .take(MAX_TAG)
        .collect();
    // Always end with a hash of the exact name (schema and name separated by a NUL), so
    // `a_b`.`c` and `a`.`b_c`, or names differing only past the cut, never share a tag.
    let h = xxh3_64(format!("{}\0{}", table.schema, table.name).as_bytes());
    tag.push('_');
    tag.push_str(&format!("{:08x}", h as u32));
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_deterministic_valid_and_distinct() {
        let l = Labeler::new("pgsnap", "0b3f1c52-7d7e-4bb2-9d65-2d3b1b0a9c11").unwrap();
        let t = TableName::new("public", "orders");
        assert_eq!(
            l.label(&t, ChunkId(17), 0),
            format!(
                "pgsnap-0b3f1c52-7d7e-4bb2-9d65-2d3b1b0a9c11-public_orders_{:08x}-00017-0",
                xxh3_64(b"public\0orders") as u32
            )
        );
        let hostile = [
            TableName::new("public", "Order Items"),
            TableName::new("public", "Order-Items"),
            TableName::new("a_b", "c"),
            TableName::new("a", "b_c"),
            TableName::new("s", "x".repeat(63)),
            TableName::new("s", format!("{}y", "x".repeat(62))),
            TableName::new("ß", "日本"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for t in &hostile {
            let label = l.label(t, ChunkId(u32::MAX), u32::MAX);
            assert!(is_label_text(&label, MAX_LABEL_LEN), "{label} ({} bytes)", label.len());
            assert!(seen.insert(label.clone()), "collision: {label}");
            assert!(label.starts_with(&l.chunk_prefix(t, ChunkId(u32::MAX))));
            let txn = l.txn_label(t, ChunkId(u32::MAX));
            assert!(is_label_text(&txn, MAX_LABEL_LEN) && txn != label, "{txn}");
        }
        assert!(Labeler::new("bad prefix", "x").is_err());
        assert!(Labeler::new(&"p".repeat(33), "x").is_err());
    }
}
