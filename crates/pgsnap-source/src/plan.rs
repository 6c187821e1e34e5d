//! Chunk planning: splitting tables into ctid block ranges or integer key ranges.

pub use pgsnap_core::SplitBy;
use pgsnap_core::{Chunk, ChunkId, ChunkRange, TablePlan};

use crate::catalog::CatalogTable;

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
    /// The key column's `pg_stats.histogram_bounds` for this relation (its own statistics,
    /// not inherited ones), when splitting by key; empty when never analyzed.
    ///
    /// Boundaries then follow the data (equal numbers of rows per range, as far as the
    /// statistics are right) rather than the key space, so skewed keys or a few outliers
    /// do not put most rows into one range.
    pub histogram: Vec<i64>,
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
/// Key ranges follow the key's histogram ([`RelationInput::histogram`]): boundaries at
/// equal-frequency points of the distribution it describes (linear inside each histogram
/// bucket, as the PostgreSQL planner assumes), restricted to the actual `[min, max]`. Without
/// a usable histogram (never analyzed, fewer than two distinct bounds, or none inside the
/// key bounds) the key range is cut into ranges of equal width.
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
/// let input = RelationInput { blocks: 81_968, bytes: 671_481_856, key: None, histogram: vec![] };
/// let r = split_relation(&input, None, 64_000_000, 2);
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
            let (bounds, cdf) = key_boundaries(k, &input.histogram, n, jobs as u64);
            if bounds.is_empty() {
                return vec![(ChunkRange::All, input.bytes)];
            }
            // Estimates from the distribution, rounded cumulatively so they add up to `bytes`.
            let at = |v: i128| (input.bytes as f64 * cdf.fraction_below(v)).round() as u64;
            let mut edges: Vec<i128> = Vec::with_capacity(bounds.len() + 2);
            edges.push(i128::from(k.min));
            edges.extend(bounds.iter().map(|&b| i128::from(b)));
            edges.push(i128::from(k.max) + 1);
            let last = bounds.len();
            (0..=last)
                .map(|i| {
                    let start = (i > 0).then(|| bounds[i - 1]);
                    let end = (i < last).then(|| bounds[i]);
                    let lo = if i == 0 { 0 } else { at(edges[i]) };
                    let hi = if i == last { input.bytes } else { at(edges[i + 1]) };
                    let est = hi.saturating_sub(lo);
                    (ChunkRange::Pk { column: column.to_owned(), start, end }, est)
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

/// The distribution of keys used to place boundaries and estimate range sizes: a piecewise
/// linear cumulative distribution through `points` (histogram bounds, equally many rows
/// between neighbours), restricted to `[lo, hi)`.
#[derive(Debug)]
struct KeyCdf {
    points: Vec<i128>,
    /// Positions (in buckets from `points[0]`) of the key bounds.
    lo: f64,
    hi: f64,
}

impl KeyCdf {
    /// `points` sorted, at least two distinct; `lo < hi` are the key bounds `min` and
    /// `max + 1`.
    fn new(points: Vec<i128>, lo: i128, hi: i128) -> Self {
        let mut c = Self { points, lo: 0.0, hi: 0.0 };
        c.lo = c.position(lo);
        c.hi = c.position(hi);
        c
    }

    /// Histogram buckets below `v` (fractional: linear inside a bucket).
    fn position(&self, v: i128) -> f64 {
        let p = &self.points;
        let idx = p.partition_point(|&x| x < v);
        if idx == 0 {
            return 0.0;
        }
        if idx == p.len() {
            return (p.len() - 1) as f64;
        }
        let (a, b) = (p[idx - 1], p[idx]);
        (idx - 1) as f64 + (v - a) as f64 / (b - a) as f64
    }

    /// The share of rows with keys below `v`, in `[0, 1]`.
    fn fraction_below(&self, v: i128) -> f64 {
        if self.hi <= self.lo {
            return 0.0;
        }
        ((self.position(v) - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }

    /// The smallest key at position `q` (inverse of [`position`](Self::position)).
    fn key_at(&self, q: f64) -> i128 {
        let p = &self.points;
        let j = (q.floor().max(0.0) as usize).min(p.len() - 2);
        let frac = (q - j as f64).clamp(0.0, 1.0);
        let (a, b) = (p[j], p[j + 1]);
        (a + ((b - a) as f64 * frac).ceil() as i128).min(b)
    }

    /// Up to `n - 1` boundaries cutting `[lo, hi)` into `n` ranges of equal share, strictly
    /// increasing inside `(min, max]` (keys that collide are merged, giving fewer ranges).
    fn boundaries(&self, n: u64, min: i128, max: i128) -> Vec<i64> {
        let mut out: Vec<i64> = Vec::new();
        if self.hi <= self.lo {
            return out;
        }
        for i in 1..n {
            let q = self.lo + (self.hi - self.lo) * i as f64 / n as f64;
            let v = self.key_at(q);
            if v > min && v <= max && out.last().is_none_or(|&l| i128::from(l) < v) {
                out.push(v as i64);
            }
        }
        out
    }
}

/// The boundaries of key ranges for `n` ranges (rounded to a multiple of `jobs` by the
/// caller), and the distribution to estimate their sizes with.
///
/// Uses the histogram when it has two distinct bounds and yields at least one boundary, the
/// key bounds alone (equal widths) otherwise. When keys collide, fewer ranges come back; the
/// count is then lowered to a multiple of `jobs` where possible.
fn key_boundaries(k: KeyBounds, histogram: &[i64], n: u64, jobs: u64) -> (Vec<i64>, KeyCdf) {
    let (min, max) = (i128::from(k.min), i128::from(k.max));
    let span = max - min + 1;
    let n = u64::try_from(span).map_or(n, |s| n.min(s));
    let linear = || KeyCdf::new(vec![min, max + 1], min, max + 1);
    if n <= 1 {
        return (vec![], linear());
    }
    let mut points: Vec<i128> = histogram.iter().map(|&v| i128::from(v)).collect();
    points.sort_unstable();
    let distinct = points.windows(2).any(|w| w[0] != w[1]);
    let jobs = jobs.max(1);
    for cdf in
        [distinct.then(|| KeyCdf::new(points, min, max + 1)), Some(linear())].into_iter().flatten()
    {
        let mut want = n;
        let mut bounds = cdf.boundaries(want, min, max);
        // Collisions gave fewer ranges: aim for the largest multiple of `jobs` below, a few
        // times (each try can collide again).
        for _ in 0..8 {
            let got = bounds.len() as u64 + 1;
            let lower = got / jobs * jobs;
            if got == want || lower < jobs.max(2) || lower >= want {
                break;
            }
            want = lower;
            bounds = cdf.boundaries(want, min, max);
        }
        if !bounds.is_empty() {
            return (bounds, cdf);
        }
    }
    (vec![], linear())
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
            let r = split_relation(
                &RelationInput { blocks, bytes, key: None, histogram: vec![] },
                None,
                target,
                1,
            );
            covers_blocks(&r, blocks as u32);
        }
    }

    #[test]
    fn toast_makes_more_chunks() {
        let small = split_relation(
            &RelationInput { blocks: 100, bytes: 819_200, key: None, histogram: vec![] },
            None,
            100_000,
            1,
        );
        let toasted = split_relation(
            &RelationInput { blocks: 100, bytes: 819_200 * 10, key: None, histogram: vec![] },
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
                &RelationInput { blocks: 81_968, bytes: 671_481_856, key: None, histogram: vec![] },
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
                &RelationInput { blocks: 10, bytes: 81_920, key: None, histogram: vec![] },
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
                &RelationInput {
                    blocks: 10,
                    bytes: n * 100,
                    key: Some(KeyBounds { min, max }),
                    histogram: vec![],
                },
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

    /// The key boundaries of `r`, after checking the ranges are contiguous, disjoint and
    /// open-ended at both ends, with boundaries strictly increasing inside `(min, max]`.
    fn key_bounds_of(r: &[(ChunkRange, u64)], min: i64, max: i64) -> Vec<i64> {
        if let [(ChunkRange::All, _)] = r {
            return vec![];
        }
        let mut bounds = Vec::new();
        for (i, (c, _)) in r.iter().enumerate() {
            let ChunkRange::Pk { start, end, .. } = c else { panic!("{c:?}") };
            assert_eq!(start.is_none(), i == 0, "{r:?}");
            assert_eq!(end.is_none(), i == r.len() - 1, "{r:?}");
            if let Some(e) = end {
                let ChunkRange::Pk { start: next, .. } = &r[i + 1].0 else { panic!() };
                assert_eq!(Some(*e), *next, "not contiguous: {r:?}");
                bounds.push(*e);
            }
        }
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "not increasing: {bounds:?}");
        assert!(bounds.iter().all(|&b| b > min && b <= max), "outside ({min}, {max}]: {bounds:?}");
        bounds
    }

    fn split_keys(
        min: i64,
        max: i64,
        histogram: Vec<i64>,
        n: u64,
        jobs: usize,
    ) -> Vec<(ChunkRange, u64)> {
        let input = RelationInput {
            blocks: 100,
            bytes: n * 1000,
            key: Some(KeyBounds { min, max }),
            histogram,
        };
        let r = split_relation(&input, Some("id"), 1000, jobs);
        assert_eq!(r.iter().map(|(_, e)| e).sum::<u64>(), n * 1000, "estimates: {r:?}");
        r
    }

    /// The statistics' view of `keys` (sorted): 101 bounds at equal-frequency positions.
    fn histogram_of(keys: &[i64]) -> Vec<i64> {
        (0..=100).map(|i| keys[(keys.len() - 1) * i / 100]).collect()
    }

    #[test]
    fn skewed_keys_split_by_frequency() {
        let mut keys: Vec<i64> = (1..=20_000).collect();
        keys.extend((0..5).map(|i| 1_000_000_000_000_000 + i));
        let (min, max) = (keys[0], *keys.last().unwrap());
        for (n, jobs) in [(8u64, 4usize), (16, 4), (12, 3), (7, 1), (300, 2)] {
            let r = split_keys(min, max, histogram_of(&keys), n, jobs);
            let bounds = key_bounds_of(&r, min, max);
            assert_eq!(r.len() as u64, n.next_multiple_of(jobs as u64), "{bounds:?}");
            // Rows per range: none more than three times the average (with more ranges than
            // histogram buckets, the outliers' bucket is split by width, so not better).
            let mut counts = vec![0usize; r.len()];
            for k in &keys {
                counts[bounds.partition_point(|b| b <= k)] += 1;
            }
            let avg = keys.len() / r.len();
            assert!(counts.iter().all(|&c| c <= 3 * avg + 2), "n {n}: {counts:?}");
            // Equal widths would have put every dense key into the first range.
            let flat = split_keys(min, max, vec![], n, jobs);
            let flat_bounds = key_bounds_of(&flat, min, max);
            assert!(flat_bounds[0] > 20_000, "{flat_bounds:?}");
        }
    }

    #[test]
    fn duplicate_and_out_of_range_bounds() {
        // Duplicates (stale statistics of a non-unique column, or many equal values).
        let h = vec![1, 1, 1, 1, 5, 5, 5, 10, 10, 100, 100];
        let r = split_keys(1, 100, h, 8, 4);
        assert!(!split_keys(1, 100, vec![1, 50, 100], 8, 0).is_empty());
        let b = key_bounds_of(&r, 1, 100);
        assert!(!b.is_empty() && r.len() <= 8, "{r:?}");
        // Every bound the same: no usable histogram, equal widths.
        let r = split_keys(1, 100, vec![7; 101], 4, 4);
        assert_eq!(key_bounds_of(&r, 1, 100), vec![26, 51, 76]);
        // Statistics wider than the key bounds (rows deleted since ANALYZE): only the part
        // inside counts, and the count is kept.
        let h: Vec<i64> = (0..=100).map(|i| i * 100).collect();
        let r = split_keys(2000, 3000, h, 4, 2);
        assert_eq!(key_bounds_of(&r, 2000, 3000), vec![2251, 2501, 2751]);
        // Statistics entirely outside the key bounds: equal widths.
        let r = split_keys(5000, 5999, (0..=100).collect(), 4, 1);
        assert_eq!(key_bounds_of(&r, 5000, 5999), vec![5250, 5500, 5750]);
        // Fewer keys than ranges requested: one range per key, as many as possible.
        let r = split_keys(1, 6, vec![1, 2, 3, 4, 5, 6], 16, 4);
        assert_eq!(key_bounds_of(&r, 1, 6), vec![2, 3, 4, 5, 6], "{r:?}");
        // Keys colliding in the histogram's buckets: fewer ranges, a multiple of jobs.
        let r = split_keys(1, 1_000_000, vec![1, 2, 3, 1_000_000], 16, 4);
        let b = key_bounds_of(&r, 1, 1_000_000);
        assert_eq!(r.len() % 4, 0, "{b:?}");
    }

    #[test]
    fn empty_histogram_is_equal_width() {
        let r = split_keys(1, 1000, vec![], 4, 4);
        assert_eq!(key_bounds_of(&r, 1, 1000), vec![251, 501, 751]);
        assert!(r.iter().all(|(_, e)| *e == 1000), "{r:?}");
        // A single-key table is one chunk.
        assert!(matches!(split_keys(9, 9, vec![9, 9], 4, 4).as_slice(), [(ChunkRange::All, _)]));
    }

    #[test]
    fn extreme_keys() {
        let (lo, hi) = (i64::MIN, i64::MAX);
        for h in [
            vec![],
            vec![lo, -5, 0, 5, hi],
            vec![hi; 3],
            vec![lo, lo + 1, lo + 2, hi - 1, hi],
            vec![lo, hi],
        ] {
            for (min, max) in [(lo, hi), (lo, lo + 10), (hi - 10, hi), (-3, 3)] {
                for (n, jobs) in [(4u64, 4usize), (9, 3), (64, 8)] {
                    let r = split_keys(min, max, h.clone(), n, jobs);
                    let b = key_bounds_of(&r, min, max);
                    assert!(!b.is_empty(), "{h:?} {min} {max}: {r:?}");
                }
            }
        }
    }
}
