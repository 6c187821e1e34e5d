//! Reading chunk files back.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Opens a chunk file for reading its uncompressed content, choosing the decoder by the
/// file name's extension: `.zst` is read as zstd, `.gz` as gzip, anything else as is.
///
/// The reader streams: memory use does not grow with the file.
///
/// # Errors
/// Opening the file, or setting up the decoder. Reading fails with an [`io::Error`] when the
/// file is damaged (a truncated or corrupted compressed stream).
///
/// # Example
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::Read;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("00000.copy");
/// std::fs::write(&path, b"1\tone\n")?;
/// let mut content = String::new();
/// pgsnap_sink_file::open_chunk(&path)?.read_to_string(&mut content)?;
/// assert_eq!(content, "1\tone\n");
/// # Ok(()) }
/// ```
pub fn open_chunk(path: impl AsRef<Path>) -> io::Result<Box<dyn Read + Send>> {
    let path = path.as_ref();
    let file = File::open(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match ext {
        "zst" => Box::new(zstd::stream::read::Decoder::new(file)?),
        "gz" => {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, file)))
        }
        _ => Box::new(file),
    })
}

/// Reads a whole chunk file's uncompressed content (see [`open_chunk`]).
///
/// # Errors
/// As [`open_chunk`], and reading.
///
/// # Example
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("00000.csv.zst");
/// std::fs::write(&path, zstd::encode_all(&b"1,one\n"[..], 3)?)?;
/// assert_eq!(pgsnap_sink_file::read_chunk_file(&path)?, b"1,one\n");
/// # Ok(()) }
/// ```
pub fn read_chunk_file(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    open_chunk(path)?.read_to_end(&mut out)?;
    Ok(out)
}
