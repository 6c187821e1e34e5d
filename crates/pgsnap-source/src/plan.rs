//! Chunk planning: splitting tables into ctid block ranges or integer key ranges.

use std::fmt;
use std::str::FromStr;

use pgsnap_core::{Chunk, ChunkId, ChunkRange, TablePlan};

use crate::catalog::CatalogTable;

/// How tables are split into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitBy {
    /// ctid ranges on PostgreSQL 14 and later (TID range scans), integer primary-key ranges
    /// before, one chunk per relation when neither applies.
    #[default]
    Auto,
    /// Heap block ranges (`ctid >= '(a,0)' AND ctid < '(b,0)'`).
    Ctid,
    /// Ranges of a single-column integer primary key; tables without one fall back to `auto`.
    Pk,
}

impl SplitBy {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Ctid => "ctid",
            Self::Pk => "pk",
        }
    }
}

impl fmt::Display for SplitBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SplitBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "ctid" => Ok(Self::Ctid),
            "pk" => Ok(Self::Pk),
            o => Err(format!("unknown split {o:?}: expected auto, ctid or pk")),
        }
    }
}

/// Parses a size such as `64MB` (10^6), `64MiB` (2^20), `1GB`, `512kB`, `1000` (bytes).
///
/// # Example
/// ```
/// use pgsnap_source::parse_size;
/// assert_eq!(parse_size("64MB").unwrap(), 64_000_000);
/// assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
/// assert!(parse_size("64 parsecs").is_err());
/// ```
///
/// # Errors
/// A message naming the accepted units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number and a unit like 64MB or 64MiB")
    })?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" | "k" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1_048_576.0,
        "GiB" => 1_073_741_824.0,
        "TiB" => 1_099_511_627_776.0,
        u => {
            return Err(format!(
                "invalid size unit {u:?} in {s:?}: use B, kB, MB, GB, TB (powers of 10) or KiB, MiB, GiB, TiB (powers of 2)"
            ));
        }
    };
    let v = (n * mult).round();
    if !(1.0..=1e18).contains(&v) {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(v as u64)
}

/// Key bounds of a relation under the snapshot, for key-range splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBounds {
    /// Smallest key.
    pub min: i64,
    /// Largest key.
    pub max: i64,
}

/// Inputs of the planner for one relation.
#[derive(Debug, Clone)]
pub struct RelationInput {
    /// Heap blocks.
    pub blocks: u64,
    /// Heap plus TOAST bytes.
    pub bytes: u64,
    /// Key bounds when splitting by key (`None` when empty or not splitting by key).
    pub key: Option<KeyBounds>,
}

/// The chunk target size: the requested size, lowered so that the total work gives every job
/// several chunks (one dominant table then keeps all jobs busy), but not below 8 MiB unless
/// the requested size is smaller.
///
/// # Example
/// ```
/// use pgsnap_source::plan::effective_chunk_size;
/// // 1 GB in total, 4 jobs: 4 chunks per job -> 62.5 MB chunks instead of 256 MB.
/// assert_eq!(effective_chunk_size(256_000_000, 1_000_000_000, 4), 62_500_000);
/// assert_eq!(effective_chunk_size(64_000_000, 10_000, 4), 8 << 20);
/// ```
pub fn effective_chunk_size(requested: u64, total_bytes: u64, jobs: usize) -> u64 {
    const CHUNKS_PER_JOB: u64 = 4;
    let floor = requested.min(8 << 20);
    requested.min((total_bytes / (jobs.max(1) as u64 * CHUNKS_PER_JOB)).max(floor)).max(1)
}

/// Splits one relation into ranges of about `target` bytes, of equal size.
///
/// When the relation is split at all, the number of ranges is rounded up to a multiple of
/// `jobs`, so the jobs finish together instead of one running the last odd chunk alone.
/// The first and last ranges are open-ended, so rows stored beyond the planned end (in blocks
/// or keys) are still copied exactly once.
///
/// # Example
/// ```
/// use pgsnap_source::plan::{RelationInput, split_relation};
/// // 641 MB in 81,968 blocks, 64 MB chunks, 2 jobs: 12 equal ranges rather than 11.
/// let r = split_relation(&RelationInput { blocks: 81_968, bytes: 671_481_856, key: None }, None, 64_000_000, 2);
/// assert_eq!(r.len(), 12);
/// ```
pub fn split_relation(
    input: &RelationInput,
    by_key: Option<&str>,
    target: u64,
    jobs: usize,
) -> Vec<(ChunkRange, u64)> {
    let n = input.bytes.div_ceil(target.max(1)).max(1);
    if n <= 1 {
        return vec![(ChunkRange::All, input.bytes)];
    }
    let n = n.next_multiple_of(jobs.max(1) as u64);
    match by_key {
        Some(column) => {
            let Some(k) = input.key else { return vec![(ChunkRange::All, input.bytes)] };
            let span = i128::from(k.max) - i128::from(k.min) + 1;
            let n = (n as i128).min(span).max(1);
            if n <= 1 {
                return vec![(ChunkRange::All, input.bytes)];
            }
            let width = (span + n - 1) / n;
            let per = input.bytes / n as u64;
            (0..n)
                .map(|i| {
                    let lo = i128::from(k.min) + i * width;
                    let start = (i > 0).then_some(lo as i64);
                    let end = (i < n - 1).then_some((lo + width) as i64);
                    (ChunkRange::Pk { column: column.to_owned(), start, end }, per)
                })
                .collect()
        }
        None => {
            if input.blocks <= 1 {
                return vec![(ChunkRange::All, input.bytes)];
            }
            let per_block = (input.bytes / input.blocks).max(1);
            let blocks_per_chunk =
                input.blocks.div_ceil(n.min(input.blocks)).clamp(1, u64::from(u32::MAX));
            let n = input.blocks.div_ceil(blocks_per_chunk);
            if n <= 1 {
                return vec![(ChunkRange::All, input.bytes)];
            }
            (0..n)
                .map(|i| {
                    let s = i * blocks_per_chunk;
                    let e = s + blocks_per_chunk;
                    let start = (i > 0).then_some(s as u32);
                    let end = (i < n - 1).then_some(e as u32);
                    let est = (e.min(input.blocks) - s) * per_block;
                    (ChunkRange::Ctid { start_block: start, end_block: end }, est)
                })
                .collect()
        }
    }
}

/// Builds a table's plan from per-relation inputs (same order as `table.relations`).
pub fn plan_table(
    table: &CatalogTable,
    inputs: &[RelationInput],
    key: Option<&str>,
    target: u64,
    jobs: usize,
) -> TablePlan {
    let columns: std::sync::Arc<[String]> =
        table.schema.columns.iter().map(|c| c.name.clone()).collect();
    let mut chunks = Vec::new();
    for (rel, input) in table.relations.iter().zip(inputs) {
        for (range, est) in split_relation(input, key, target, jobs) {
            chunks.push(Chunk {
                table: table.schema.name.clone(),
                relation: rel.name.clone(),
                id: ChunkId(chunks.len() as u32),
                range,
                columns: std::sync::Arc::clone(&columns),
                estimated_bytes: est,
            });
        }
    }
    TablePlan {
        schema: table.schema.clone(),
        partitions: if table.schema.kind == pgsnap_core::TableKind::Partitioned {
            table.relations.iter().map(|r| r.name.clone()).collect()
        } else {
            vec![]
        },
        estimated_bytes: inputs.iter().map(|i| i.bytes).sum(),
        chunks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers_blocks(ranges: &[(ChunkRange, u64)], blocks: u32) {
        // Every block in 0..blocks+100 falls in exactly one range.
        for b in 0..blocks + 100 {
            let hits = ranges
                .iter()
                .filter(|(r, _)| match r {
                    ChunkRange::All => true,
                    ChunkRange::Ctid { start_block, end_block } => {
                        start_block.is_none_or(|s| b >= s) && end_block.is_none_or(|e| b < e)
                    }
                    _ => false,
                })
                .count();
            assert_eq!(hits, 1, "block {b}");
        }
    }

    #[test]
    fn ctid_ranges_partition_all_blocks() {
        for (blocks, bytes, target) in
            [(1000u64, 8_192_000u64, 100_000u64), (7, 57_344, 8192), (10, 81920, 1), (3, 100, 1000)]
        {
            let r = split_relation(&RelationInput { blocks, bytes, key: None }, None, target, 1);
            covers_blocks(&r, blocks as u32);
        }
    }

    #[test]
    fn toast_makes_more_chunks() {
        let small = split_relation(
            &RelationInput { blocks: 100, bytes: 819_200, key: None },
            None,
            100_000,
            1,
        );
        let toasted = split_relation(
            &RelationInput { blocks: 100, bytes: 819_200 * 10, key: None },
            None,
            100_000,
            1,
        );
        assert!(toasted.len() > small.len() * 5, "{} vs {}", toasted.len(), small.len());
    }

    #[test]
    fn chunk_counts_are_multiples_of_jobs_and_even() {
        for jobs in 1..=8usize {
            let r = split_relation(
                &RelationInput { blocks: 81_968, bytes: 671_481_856, key: None },
                None,
                64_000_000,
                jobs,
            );
            assert_eq!(r.len() % jobs, 0, "jobs {jobs}: {} chunks", r.len());
            covers_blocks(&r, 81_968);
            let sizes: Vec<u64> = r.iter().map(|(_, e)| *e).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(*max - *min <= max / 100 + 8192, "uneven: {sizes:?}");
        }
        // A relation that fits one chunk stays one chunk, whatever the jobs.
        assert_eq!(
            split_relation(
                &RelationInput { blocks: 10, bytes: 81_920, key: None },
                None,
                1 << 20,
                4
            )
            .len(),
            1
        );
    }

    #[test]
    fn key_ranges_partition_all_keys() {
        for (min, max, n) in
            [(1i64, 1000i64, 7u64), (-5, 5, 3), (i64::MIN, i64::MAX, 4), (10, 12, 50)]
        {
            let r = split_relation(
                &RelationInput { blocks: 10, bytes: n * 100, key: Some(KeyBounds { min, max }) },
                Some("id"),
                100,
                3,
            );
            let probe = [
                min,
                min.saturating_add(1),
                (min / 2 + max / 2),
                max.saturating_sub(1),
                max,
                i64::MIN,
                i64::MAX,
            ];
            for v in probe {
                let hits = r
                    .iter()
                    .filter(|(c, _)| match c {
                        ChunkRange::All => true,
                        ChunkRange::Pk { start, end, .. } => {
                            start.is_none_or(|s| v >= s) && end.is_none_or(|e| v < e)
                        }
                        _ => false,
                    })
                    .count();
                assert_eq!(hits, 1, "{v} in {r:?}");
            }
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5MB").unwrap(), 1_500_000);
        assert_eq!(parse_size("64kB").unwrap(), 64_000);
        assert!(parse_size("").is_err());
        assert!(parse_size("0MB").is_err());
    }
}
