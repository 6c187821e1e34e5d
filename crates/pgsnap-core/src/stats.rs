//! Row counts and checksums of chunk content, computed as it streams by.

use xxhash_rust::xxh3::Xxh3;

use crate::DataFormat;

/// The checksum algorithm recorded in the manifest: XXH3 64-bit of the uncompressed content,
/// printed as 16 lower-case hex digits (`xxhsum -H3` prints the same digits).
pub const CHECKSUM_ALGORITHM: &str = "xxh3-64";

/// Counts rows and bytes and checksums chunk content incrementally.
///
/// Rows are counted as COPY prints them: in text format every row ends with a newline (newlines
/// inside values are escaped); in CSV format a newline ends a row only outside quotes.
///
/// # Example
/// ```
/// use pgsnap_core::{ChunkInspector, DataFormat};
/// let mut i = ChunkInspector::new(DataFormat::Csv);
/// i.update(b"1,\"two\nlines\"\n2,");
/// i.update(b"x\n");
/// let s = i.finish();
/// assert_eq!((s.rows, s.bytes), (2, 18));
/// ```
pub struct ChunkInspector {
    format: DataFormat,
    in_quotes: bool,
    rows: u64,
    bytes: u64,
    hasher: Box<Xxh3>,
}

impl std::fmt::Debug for ChunkInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkInspector")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// The totals of one chunk's content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkStats {
    /// Rows.
    pub rows: u64,
    /// Bytes of uncompressed content.
    pub bytes: u64,
    /// [`CHECKSUM_ALGORITHM`] of the content, as hex.
    pub checksum: String,
}

impl ChunkInspector {
    /// A fresh inspector for content in `format`.
    pub fn new(format: DataFormat) -> Self {
        Self { format, in_quotes: false, rows: 0, bytes: 0, hasher: Box::new(Xxh3::new()) }
    }

    /// Feeds the next piece of content.
    pub fn update(&mut self, buf: &[u8]) {
        self.bytes += buf.len() as u64;
        self.hasher.update(buf);
        match self.format {
            DataFormat::Text => self.rows += memchr::memchr_iter(b'\n', buf).count() as u64,
            DataFormat::Csv => {
                for pos in memchr::memchr2_iter(b'"', b'\n', buf) {
                    if buf[pos] == b'"' {
                        self.in_quotes = !self.in_quotes;
                    } else if !self.in_quotes {
                        self.rows += 1;
                    }
                }
            }
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The totals.
    pub fn finish(&self) -> ChunkStats {
        ChunkStats {
            rows: self.rows,
            bytes: self.bytes,
            checksum: format!("{:016x}", self.hasher.digest()),
        }
    }
}

/// The checksum of a whole buffer, as [`ChunkInspector`] would compute it.
pub fn checksum(buf: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_do_not_matter() {
        let data = b"a\t\\N\n\"q\"\t\\n\n";
        let whole = {
            let mut i = ChunkInspector::new(DataFormat::Text);
            i.update(data);
            i.finish()
        };
        for cut in 0..data.len() {
            let mut i = ChunkInspector::new(DataFormat::Text);
            i.update(&data[..cut]);
            i.update(&data[cut..]);
            assert_eq!(i.finish(), whole);
        }
        assert_eq!(whole.rows, 2);
        assert_eq!(whole.checksum, checksum(data));
    }

    #[test]
    fn csv_quotes_hide_newlines() {
        let mut i = ChunkInspector::new(DataFormat::Csv);
        i.update(b"\"a\"\"\nb\",1\n\"\"\n");
        assert_eq!(i.finish().rows, 2);
    }
}
