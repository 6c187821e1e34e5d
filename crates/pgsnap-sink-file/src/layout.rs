//! Where chunk files go: the table directory and file name rules.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode_byte, utf8_percent_encode};
use pgsnap_core::{ChunkId, DataFormat, TableName};

use crate::compression::Compression;

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
/// assert_eq!(table_dir_name(&TableName::new("public", "Order Items")), "public.Order%20Items");
/// assert_eq!(table_dir_name(&TableName::new("My App", "a.b/c")), "My%20App.a%2Eb%2Fc");
/// assert_eq!(table_dir_name(&TableName::new("s", "été")), "s.%C3%A9t%C3%A9");
/// ```
pub fn table_dir_name(table: &TableName) -> String {
    let mut full = String::with_capacity(table.schema.len() + table.name.len() + 1);
    encode_into(&table.schema, &mut full);
    full.push('.');
    encode_into(&table.name, &mut full);
    if full.eq_ignore_ascii_case(pgsnap_core::MANIFEST_FILE) {
        // `full` is ASCII here (it equals `manifest.json` ignoring case).
        let first = full.remove(0);
        full.insert_str(0, percent_encode_byte(first as u8));
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

/// The bytes [`table_dir_name`] escapes: every byte but ASCII letters, digits, `_` and `-`
/// (non-ASCII bytes are always escaped).
const TABLE_DIR_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

fn encode_into(part: &str, out: &mut String) {
    if part.is_empty() {
        // Not `%XX`, so distinct from every encoded non-empty part.
        out.push('%');
        return;
    }
    out.extend(utf8_percent_encode(part, TABLE_DIR_ESCAPED));
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
    fn escapes_every_byte_but_letters_digits_underscore_and_dash() {
        let dir = |schema: &str, name: &str| table_dir_name(&TableName::new(schema, name));
        assert_eq!(dir("public", "Order Items"), "public.Order%20Items");
        assert_eq!(dir("a_b-C9", "x.y%z/\\\"'"), "a_b-C9.x%2Ey%25z%2F%5C%22%27");
        assert_eq!(dir("s", "ü~!"), "s.%C3%BC%7E%21");
        assert_eq!(dir("", "t"), "%.t");
        // The manifest's own name is kept clear of, whatever the case.
        assert_eq!(dir("manifest", "json"), "%6Danifest.json");
        assert_eq!(dir("MANIFEST", "JSON"), "%4DANIFEST.JSON");
        // Every ASCII byte: exactly letters, digits, `_` and `-` stay as they are.
        for b in 1u8..0x80 {
            let part = char::from(b).to_string();
            let kept = b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            let want = if kept { part.clone() } else { format!("%{b:02X}") };
            assert_eq!(dir("s", &part), format!("s.{want}"), "byte {b:#04x}");
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
