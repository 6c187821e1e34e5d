//! Where chunk files go: the table directory and file name rules.

use pgsnap_core::{ChunkId, DataFormat, TableName};

use crate::Compression;

/// The longest table directory name, in bytes; longer names are shortened with a hash.
pub const MAX_TABLE_DIR_LEN: usize = 200;

/// The directory name holding a table's chunk files, inside the output directory.
///
/// The rule (part of the public manifest contract):
/// 1. In the schema name and in the table name, separately, every byte of the UTF-8 that is
///    not an ASCII letter, digit, `_` or `-` is written as `%XX` (upper-case hex). That
///    includes `.`, `%`, `/`, spaces, quotes and every byte of non-ASCII characters. Letters
///    keep their case. An empty part (PostgreSQL names never are) is written as a lone `%`.
/// 2. The two parts are joined with `.`, which therefore appears exactly once.
/// 3. If the result is, ignoring ASCII case, the manifest's name `manifest.json`
///    ([`pgsnap_core::MANIFEST_FILE`]), which sits in the same directory, its first letter is
///    written as `%XX` too (`%6Danifest.json`); letters are never escaped otherwise.
/// 4. If the result is longer than [`MAX_TABLE_DIR_LEN`] bytes, it is cut to its first 183
///    bytes (backing off so no `%XX` is split) and `~` plus the 16 lower-case hex digits of
///    the XXH3-64 of the full result of steps 1 to 3 is appended. `~` never appears
///    otherwise.
///
/// So a table directory's name contains exactly one `.`, or a `~`: other files the tools
/// put in the output directory avoid collisions by having no `.` or several.
///
/// The result is never empty, `.` or `..`, contains no `/`, `\` or NUL, and distinct tables
/// get distinct names (up to a 64-bit hash collision for names past the limit). On a
/// case-insensitive file system, tables whose names differ only in case share a directory.
///
/// # Example
/// ```
/// use pgsnap_core::TableName;
/// use pgsnap_sink_file::table_dir_name;
/// assert_eq!(table_dir_name(&TableName::new("public", "orders")), "public.orders");
/// assert_eq!(table_dir_name(&TableName::new("My App", "a.b/c")), "My%20App.a%2Eb%2Fc");
/// assert_eq!(table_dir_name(&TableName::new("s", "été")), "s.%C3%A9t%C3%A9");
/// ```
pub fn table_dir_name(table: &TableName) -> String {
    let mut full = String::with_capacity(table.schema.len() + table.name.len() + 1);
    encode_into(&table.schema, &mut full);
    full.push('.');
    encode_into(&table.name, &mut full);
    if full.eq_ignore_ascii_case(pgsnap_core::MANIFEST_FILE) {
        let first = full.remove(0);
        full.insert_str(0, &format!("%{:02X}", u32::from(first)));
    }
    if full.len() <= MAX_TABLE_DIR_LEN {
        return full;
    }
    let hash = xxhash_rust::xxh3::xxh3_64(full.as_bytes());
    let mut cut = MAX_TABLE_DIR_LEN - 17;
    // Do not split a `%XX` escape (all bytes are ASCII, so any index is a char boundary).
    let b = full.as_bytes();
    if b[cut - 1] == b'%' {
        cut -= 1;
    } else if b[cut - 2] == b'%' {
        cut -= 2;
    }
    full.truncate(cut);
    full.push_str(&format!("~{hash:016x}"));
    full
}

fn encode_into(part: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if part.is_empty() {
        // Not `%XX`, so distinct from every encoded non-empty part.
        out.push('%');
        return;
    }
    for &b in part.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

/// The file name of a chunk: its id as 5 digits (more past 99999), `.copy` for COPY text
/// or `.csv` for CSV, then the compression's [extension](Compression::extension).
///
/// # Example
/// ```
/// use pgsnap_core::{ChunkId, DataFormat};
/// use pgsnap_sink_file::{Compression, chunk_file_name};
/// assert_eq!(chunk_file_name(ChunkId(7), DataFormat::Text, Compression::None), "00007.copy");
/// assert_eq!(
///     chunk_file_name(ChunkId(12), DataFormat::Csv, Compression::Zstd { level: 3 }),
///     "00012.csv.zst"
/// );
/// ```
pub fn chunk_file_name(id: ChunkId, format: DataFormat, compression: Compression) -> String {
    let ext = match format {
        DataFormat::Text => "copy",
        DataFormat::Csv => "csv",
        other => other.as_str(),
    };
    format!("{id}.{ext}{}", compression.extension())
}

/// The temporary name a chunk file is written under before it is renamed into place.
pub(crate) fn temp_file_name(final_name: &str) -> String {
    format!(".{final_name}.tmp-{}", uuid::Uuid::new_v4())
}

/// Whether a file name is one of [`temp_file_name`]'s.
pub(crate) fn is_temp_file_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(head, id)| head.len() > 1 && uuid::Uuid::parse_str(id).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        let t = temp_file_name("00001.copy.zst");
        assert!(t.starts_with(".00001.copy.zst.tmp-"));
        assert!(is_temp_file_name(&t));
        for other in [
            "00001.copy",
            ".keep",
            "notes.tmp-0b4c8a34-7d6e-4b8f-9a39-3c1f8f3e2a10",
            ".x.tmp-notauuid",
            ".tmp-0b4c8a34-7d6e-4b8f-9a39-3c1f8f3e2a10",
        ] {
            assert!(!is_temp_file_name(other), "{other}");
        }
    }

    #[test]
    fn truncation_does_not_split_escapes() {
        for pad in 0..3 {
            let name = format!("{}{}", "a".repeat(pad), "é".repeat(200));
            let d = table_dir_name(&TableName::new("s", name));
            assert!(d.len() <= MAX_TABLE_DIR_LEN);
            let (head, hash) = d.split_once('~').unwrap();
            assert_eq!(hash.len(), 16);
            // Every `%` in the head is followed by two hex digits.
            let b = head.as_bytes();
            for (i, &c) in b.iter().enumerate() {
                if c == b'%' {
                    assert!(
                        i + 2 < b.len()
                            && b[i + 1].is_ascii_hexdigit()
                            && b[i + 2].is_ascii_hexdigit(),
                        "{head}"
                    );
                }
            }
        }
    }
}
