//! PostgreSQL `COPY ... TO STDOUT` text → StarRocks Stream Load body (CSV or JSON).
//!
//! The input is PostgreSQL's COPY text format as the pgsnap source session prints it
//! (`DateStyle=ISO`, `IntervalStyle=postgres`, `TimeZone=UTC`, `extra_float_digits=3`,
//! `bytea_output=hex`, `client_encoding=UTF8`): one row per `\n`-terminated line, fields
//! separated by tabs, `\N` for NULL, backslash escapes (`\\ \b \f \n \r \t \v`, and on input
//! also `\NNN` octal and `\xHH`). It arrives in buffers that need not end at a row boundary;
//! the [`Transcoder`] keeps the partial last row until the next buffer completes it.
//!
//! Each column is checked and converted as its [`TargetColumn`](crate::mapping::TargetColumn)
//! says (see [`crate::mapping`]); a value StarRocks would store differently from PostgreSQL is
//! a [`TranscodeError`] naming the row and column, never a silent change.
//!
//! # CSV body ([`LoadFormat::Csv`])
//!
//! Headers: `format: csv`, `column_separator: \x09` (tab), `row_delimiter: \x0A` (newline),
//! `enclose: "`, `columns: <target columns, backtick-quoted, comma-separated>`. The separators
//! are the Stream Load defaults, sent in the documented `\xHH` hex form (a bare tab or newline
//! cannot travel in an HTTP header). No `escape` header is used.
//!
//! - NULL is `\N` (unenclosed); the empty string is an empty field.
//! - A value containing a tab, `\n`, `\r` or `"` is enclosed in `"` with embedded `"` doubled.
//! - A text value that is exactly `\N` is an error: whether StarRocks reads an enclosed `"\N"`
//!   as NULL is unconfirmed (JSON bodies carry it).
//! - Booleans are `true`/`false`: StarRocks' CSV `BooleanConverter::read_string`
//!   (`be/src/formats/csv/boolean_converter.cpp`) takes `StringParser::string_to_bool`
//!   (`true`/`false`, case-insensitive) and falls back to numbers.
//! - Integers, decimals and floats are PostgreSQL's text, verbatim (`NaN`, `Infinity` and
//!   `-Infinity` included: StarRocks' `string_to_float` reads them); dates `YYYY-MM-DD`,
//!   timestamps `YYYY-MM-DD HH:MM:SS[.ffffff]` (the `+00` of `timestamptz` stripped).
//! - `json`/`jsonb` values are text fields. StarRocks reads them with `parse_json_or_string`,
//!   which stores a field not starting with `{`, `[` or `"` as a JSON *string*, so a top-level
//!   number, boolean or `null` is an error (use JSON bodies for numbers and booleans).
//! - `bytea`, `money`, `interval`, `time`, `timetz` and text-kept `numeric` values are sent in
//!   their canonical forms ([`crate::canonical`]), the forms Debezium sends, so Routine Load
//!   writes the same cells.
//!
//! # JSON body ([`LoadFormat::Json`])
//!
//! Headers: `format: json`, `strip_outer_array: true`. The body is `[{…},{…}]`, one object
//! per row with the StarRocks column names as keys, in target order (StarRocks matches keys to
//! columns by name).
//!
//! - NULL is `null`. `NaN`, `Infinity` and `-Infinity` are JSON strings. Integers, decimals
//!   and `double precision` values are JSON numbers copied verbatim (StarRocks reads numbers for `DECIMAL`/`LARGEINT`/`VARCHAR` columns from the raw
//!   token, `be/src/formats/json/binary_column.cpp`, and integers/doubles through simdjson,
//!   which is exact for PostgreSQL's shortest round-trip output). `real` values are JSON
//!   strings, so StarRocks parses them as floats directly instead of via a double.
//! - Booleans are `true`/`false`; text, dates and timestamps are JSON strings (escaped exactly:
//!   `"` `\` and control characters); a text that is exactly `\N` is text here (StarRocks'
//!   JSON scanner has no NULL string). `json`/`jsonb` values are embedded as they are, except
//!   a top-level `null`, which would load as SQL NULL (an error).
//! - Arrays become JSON arrays, parsed from PostgreSQL's array literal (`{1,2,NULL}`,
//!   `{"a b","x\"y"}`); multi-dimensional arrays and non-default bounds (`[0:1]={…}`) are
//!   errors. StarRocks turns a bad array element into NULL silently, so elements get the same
//!   checks as columns.
//!
//! # Value checks
//!
//! `NaN`/`Infinity` in `DECIMAL` columns; BC dates, `infinity` and years
//! above 9999 in `DATE`/`DATETIME` columns; a `timestamptz` offset other than `+00`; text
//! longer than its `VARCHAR(n)` (in bytes); text that is not UTF-8; a row with the wrong number
//! of fields. Integers and decimals are only checked for syntax; nothing is converted.
//!
//! # Bodies of bounded size
//!
//! [`Transcoder::push_limited`] stops after the first complete row that brings the current
//! body to `max_body_bytes` or more, so a chunk can be sent as several Stream Load requests.
//! Where it stops depends only on the input bytes, never on how they were split into buffers.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use pgsnap_core::{Column, TableKind, TableName, TableSchema};
//! use pgsnap_sink_starrocks::mapping::{map_table, LoadFormat, MappingOptions};
//! use pgsnap_sink_starrocks::transcode::Transcoder;
//!
//! let schema = TableSchema {
//!     name: TableName::new("public", "t"),
//!     kind: TableKind::Table,
//!     columns: vec![
//!         Column::new("id", "bigint", false),
//!         Column::new("note", "text", true),
//!     ],
//!     generated_columns: vec![],
//!     primary_key: vec!["id".into()],
//! };
//! let options = MappingOptions::new().with_format(LoadFormat::Json);
//! let table = map_table(&schema, "t", &options)?;
//! let mut tc = Transcoder::new(&table);
//! let mut body = BytesMut::new();
//! tc.begin(&mut body);
//! tc.push(b"1\ttab\\there\n2\t\\N\n3\t", &mut body)?; // the last row is incomplete
//! tc.push(b"\n", &mut body)?;
//! tc.finish_body(&mut body);
//! tc.finish()?;
//! assert_eq!(
//!     &body[..],
//!     br#"[{"id":1,"note":"tab\there"},{"id":2,"note":null},{"id":3,"note":""}]"#
//! );
//! assert_eq!(tc.headers(), vec![("format", "json".to_owned()), ("strip_outer_array", "true".to_owned())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, BytesMut};
use memchr::{memchr, memchr2_iter, memchr3};

use crate::canonical;
use crate::mapping::{Encoding, LoadFormat, MAX_VARCHAR_LEN, Scalar, TargetTable, TextForm};

/// What went wrong with one value or row.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TranscodeErrorKind {
    /// The row has the wrong number of tab-separated fields.
    WrongColumnCount {
        /// Columns of the target table.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },
    /// A value StarRocks would not store exactly as PostgreSQL holds it.
    Unrepresentable {
        /// The start of the value (as it appears in the COPY text, at most 40 characters).
        value_preview: String,
        /// Why it cannot be loaded.
        why: String,
    },
    /// Text longer than its `VARCHAR(limit)`, in bytes.
    TooLong {
        /// The value's length in bytes.
        bytes: usize,
        /// The column's limit in bytes.
        limit: u32,
    },
    /// Text that is not UTF-8.
    InvalidUtf8 {
        /// The start of the value, lossily decoded.
        value_preview: String,
    },
    /// The input ended inside a row ([`Transcoder::finish`]).
    IncompleteRow {
        /// Bytes after the last newline.
        bytes: usize,
    },
}

impl fmt::Display for TranscodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongColumnCount { expected, found } => {
                write!(f, "expected {expected} tab-separated fields, found {found}")
            }
            Self::Unrepresentable { value_preview, why } => {
                write!(f, "value {value_preview:?} cannot be loaded: {why}")
            }
            Self::TooLong { bytes, limit } => {
                write!(f, "value is {bytes} bytes, longer than the column's VARCHAR({limit})")
            }
            Self::InvalidUtf8 { value_preview } => {
                write!(f, "value {value_preview:?} is not valid UTF-8")
            }
            Self::IncompleteRow { bytes } => {
                write!(f, "the input ended inside a row ({bytes} bytes after the last newline)")
            }
        }
    }
}

/// A row that cannot be transcoded; the message names the row and column and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct TranscodeError {
    /// The PostgreSQL column (`None` for errors about the whole row).
    pub column: Option<String>,
    /// The row, 1-based within the input given to this transcoder (one chunk).
    pub row: u64,
    /// What went wrong.
    pub kind: TranscodeErrorKind,
    hint: Hint,
}

impl TranscodeError {
    /// An error about a whole row (`column` `None`) or one column, with the hint for its kind.
    pub(crate) fn new(column: Option<String>, row: u64, kind: TranscodeErrorKind) -> Self {
        let hint = match kind {
            TranscodeErrorKind::WrongColumnCount { .. } => Hint::Schema,
            TranscodeErrorKind::IncompleteRow { .. } => Hint::Retry,
            TranscodeErrorKind::TooLong { .. } => Hint::Widen,
            _ => Hint::Data,
        };
        Self { column, row, kind, hint }
    }

    /// What to do about it (also the end of the `Display` text).
    pub fn hint(&self) -> String {
        let name = self.column.as_deref().unwrap_or_default();
        match self.hint {
            Hint::Varchar => format!(
                "keep the column as PostgreSQL text: MappingOptions::with_column_type({name:?}, \
                 \"VARCHAR({MAX_VARCHAR_LEN})\")"
            ),
            Hint::Json => "use a JSON body (LoadFormat::Json)".into(),
            Hint::Widen => match &self.kind {
                TranscodeErrorKind::TooLong { bytes, .. } if *bytes <= MAX_VARCHAR_LEN as usize => {
                    format!(
                        "widen the column: MappingOptions::with_column_type({name:?}, \
                         \"VARCHAR({MAX_VARCHAR_LEN})\")"
                    )
                }
                _ => format!(
                    "StarRocks VARCHAR holds at most {MAX_VARCHAR_LEN} bytes; exclude the table \
                     or shorten the data"
                ),
            },
            Hint::NullText => {
                "use a JSON body (LoadFormat::Json), which carries the text \\N".into()
            }
            Hint::Data => "fix the data at the source (is the database encoding SQL_ASCII?) or \
                           exclude the table"
                .into(),
            Hint::Schema => "the rows do not match the table's columns; map the table from the \
                             schema the rows were copied with"
                .into(),
            Hint::Retry => "the COPY data was cut short; retry the chunk".into(),
        }
    }
}

impl fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "row {}, column {c:?}: {}; {}", self.row, self.kind, self.hint()),
            None => write!(f, "row {}: {}; {}", self.row, self.kind, self.hint()),
        }
    }
}

/// What a caller should do about an error (see [`TranscodeError::hint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// Override the column to VARCHAR.
    Varchar,
    /// Use a JSON body.
    Json,
    /// Widen the VARCHAR.
    Widen,
    /// Fix the data.
    Data,
    /// The rows do not match the mapping.
    Schema,
    /// The input was cut short.
    Retry,
    /// A text value `\N`, which no confirmed encoding carries.
    NullText,
}

/// An error for one value, before the row and column are known.
#[derive(Debug)]
struct Fail {
    kind: TranscodeErrorKind,
    hint: Hint,
}

fn preview(v: &[u8]) -> String {
    String::from_utf8_lossy(v).chars().take(40).collect()
}

fn unrep(v: &[u8], why: impl Into<String>) -> Fail {
    Fail {
        kind: TranscodeErrorKind::Unrepresentable { value_preview: preview(v), why: why.into() },
        hint: Hint::Varchar,
    }
}

/// How far [`Transcoder::push_limited`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pushed {
    /// Input bytes consumed (transcoded or kept as the partial last row). When less than the
    /// input, call again with the rest once the next body has begun.
    pub consumed: usize,
    /// The current body reached the limit: finish it ([`Transcoder::finish_body`]) and begin
    /// the next.
    pub body_full: bool,
}

#[derive(Debug)]
struct Col {
    /// Field index in the source row.
    src: usize,
    encoding: Encoding,
    /// The PostgreSQL column name (for errors).
    source_name: String,
    /// JSON: `{"name":` for the first column, `,"name":` for the others.
    key: Box<[u8]>,
}

/// Turns the COPY text of one chunk into one or more Stream Load bodies for a [`TargetTable`].
///
/// Call [`begin`](Self::begin), then [`push`](Self::push) or
/// [`push_limited`](Self::push_limited) with each input buffer, then
/// [`finish_body`](Self::finish_body); at the end of the input, [`finish`](Self::finish) checks
/// that no partial row is left. After an error the transcoder must be dropped: `out` then
/// ends at the last complete row.
#[derive(Debug)]
pub struct Transcoder {
    format: LoadFormat,
    cols: Vec<Col>,
    columns_header: String,
    carry: Vec<u8>,
    fields: Vec<(usize, usize)>,
    scratch: Vec<u8>,
    elem: Vec<u8>,
    rows: u64,
    body_rows: u64,
    body_bytes: usize,
    in_body: bool,
}

impl Transcoder {
    /// A transcoder for `table`'s columns, producing the format `table` was mapped for.
    pub fn new(table: &TargetTable) -> Self {
        let cols = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut key = Vec::with_capacity(c.name.len() + 4);
                key.push(if i == 0 { b'{' } else { b',' });
                json_string(c.name.as_bytes(), &mut key);
                key.push(b':');
                Col {
                    src: c.source_index,
                    encoding: c.encoding,
                    source_name: c.source_name.clone(),
                    key: key.into_boxed_slice(),
                }
            })
            .collect();
        Self {
            format: table.format,
            cols,
            columns_header: table.column_list(),
            carry: Vec::new(),
            fields: Vec::new(),
            scratch: Vec::new(),
            elem: Vec::new(),
            rows: 0,
            body_rows: 0,
            body_bytes: 0,
            in_body: false,
        }
    }

    /// The body format.
    pub fn format(&self) -> LoadFormat {
        self.format
    }

    /// The Stream Load headers the bodies need (see the [module documentation](self)).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self.format {
            LoadFormat::Json => {
                vec![("format", "json".into()), ("strip_outer_array", "true".into())]
            }
            _ => vec![
                ("format", "csv".into()),
                ("column_separator", "\\x09".into()),
                ("row_delimiter", "\\x0A".into()),
                ("enclose", "\"".into()),
                ("columns", self.columns_header.clone()),
            ],
        }
    }

    /// Starts a body (`[` for JSON). Does nothing if a body is already open; `push` and
    /// `finish_body` call it when needed.
    pub fn begin(&mut self, out: &mut BytesMut) {
        if self.in_body {
            return;
        }
        self.in_body = true;
        self.body_rows = 0;
        self.body_bytes = 0;
        if self.format == LoadFormat::Json {
            out.put_u8(b'[');
            self.body_bytes = 1;
        }
    }

    /// Ends the current body (`]` for JSON), beginning an empty one first if none is open.
    pub fn finish_body(&mut self, out: &mut BytesMut) {
        self.begin(out);
        if self.format == LoadFormat::Json {
            out.put_u8(b']');
        }
        self.in_body = false;
        self.body_rows = 0;
        self.body_bytes = 0;
    }

    /// Appends the complete rows of `input` to the current body and keeps a partial last row
    /// for the next call.
    pub fn push(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), TranscodeError> {
        self.push_limited(input, out, usize::MAX).map(|_| ())
    }

    /// Like [`push`](Self::push), but stops after the first complete row that brings the
    /// current body to `max_body_bytes` or more (so a body exceeds it by less than one row,
    /// plus JSON's closing `]`). Then finish the body, begin the next, and push
    /// `input[consumed..]`.
    pub fn push_limited(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        max_body_bytes: usize,
    ) -> Result<Pushed, TranscodeError> {
        self.begin(out);
        out.reserve(input.len() + input.len() / 4 + 16);
        let mut pos = 0;
        if !self.carry.is_empty() {
            let Some(nl) = memchr(b'\n', input) else {
                self.carry.extend_from_slice(input);
                return Ok(Pushed { consumed: input.len(), body_full: false });
            };
            let mut row = std::mem::take(&mut self.carry);
            row.extend_from_slice(&input[..nl]);
            let done = self.row(&row, out);
            row.clear();
            self.carry = row;
            done?;
            pos = nl + 1;
            if self.body_bytes >= max_body_bytes {
                return Ok(Pushed { consumed: pos, body_full: true });
            }
        }
        // One pass finds field and row ends together.
        let hay = &input[pos..];
        let mut row_start = 0;
        let mut field_start = 0;
        self.fields.clear();
        for p in memchr2_iter(b'\t', b'\n', hay) {
            self.fields.push((field_start - row_start, p - row_start));
            field_start = p + 1;
            if hay[p] == b'\t' {
                continue;
            }
            self.fielded_row(&hay[row_start..p], out)?;
            self.fields.clear();
            row_start = p + 1;
            if self.body_bytes >= max_body_bytes {
                return Ok(Pushed { consumed: pos + row_start, body_full: true });
            }
        }
        self.carry.extend_from_slice(&hay[row_start..]);
        Ok(Pushed { consumed: input.len(), body_full: false })
    }

    /// Checks that the input ended at a row boundary (call after the last `push`).
    pub fn finish(&mut self) -> Result<(), TranscodeError> {
        if self.carry.is_empty() {
            return Ok(());
        }
        Err(TranscodeError {
            column: None,
            row: self.rows + 1,
            kind: TranscodeErrorKind::IncompleteRow { bytes: self.carry.len() },
            hint: Hint::Retry,
        })
    }

    /// Rows transcoded so far, in all bodies.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows in the current body (0 once it is finished).
    pub fn body_rows(&self) -> u64 {
        self.body_rows
    }

    /// Bytes of the current body written so far (JSON: including the opening `[`; 0 once it
    /// is finished).
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// Transcodes one complete row (without its `\n`).
    fn row(&mut self, row: &[u8], out: &mut BytesMut) -> Result<(), TranscodeError> {
        self.fields.clear();
        let mut start = 0;
        for tab in memchr::memchr_iter(b'\t', row) {
            self.fields.push((start, tab));
            start = tab + 1;
        }
        self.fields.push((start, row.len()));
        self.fielded_row(row, out)
    }

    /// Transcodes one complete row whose field ranges are in `self.fields`.
    #[inline]
    fn fielded_row(&mut self, row: &[u8], out: &mut BytesMut) -> Result<(), TranscodeError> {
        if self.fields.len() != self.cols.len() {
            return Err(TranscodeError {
                column: None,
                row: self.rows + 1,
                kind: TranscodeErrorKind::WrongColumnCount {
                    expected: self.cols.len(),
                    found: self.fields.len(),
                },
                hint: Hint::Schema,
            });
        }
        let mark = out.len();
        let done = match self.format {
            LoadFormat::Json => {
                if self.body_rows > 0 {
                    out.put_u8(b',');
                }
                json_row(&self.cols, &self.fields, row, out, &mut self.scratch, &mut self.elem)
            }
            _ => csv_row(&self.cols, &self.fields, row, out, &mut self.scratch),
        };
        match done {
            Ok(()) => {
                self.rows += 1;
                self.body_rows += 1;
                self.body_bytes += out.len() - mark;
                Ok(())
            }
            Err((i, fail)) => {
                out.truncate(mark);
                Err(self.error(i, fail))
            }
        }
    }

    fn error(&self, col: usize, fail: Fail) -> TranscodeError {
        TranscodeError {
            column: Some(self.cols[col].source_name.clone()),
            row: self.rows + 1,
            kind: fail.kind,
            hint: fail.hint,
        }
    }
}

/// Transcodes a whole input (complete rows) into one body for `table`.
///
/// # Example
/// ```
/// use pgsnap_core::{Column, TableKind, TableName, TableSchema};
/// use pgsnap_sink_starrocks::mapping::{map_table, MappingOptions};
/// use pgsnap_sink_starrocks::transcode::transcode;
///
/// let schema = TableSchema {
///     name: TableName::new("public", "t"),
///     kind: TableKind::Table,
///     columns: vec![
///         Column::new("ok", "boolean", true),
///         Column::new("s", "text", true),
///     ],
///     generated_columns: vec![],
///     primary_key: vec![],
/// };
/// let table = map_table(&schema, "t", &MappingOptions::default())?;
/// let body = transcode(&table, b"t\tsay \"hi\"\nf\t\\N\n")?;
/// assert_eq!(&body[..], b"true\t\"say \"\"hi\"\"\"\nfalse\t\\N\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn transcode(table: &TargetTable, input: &[u8]) -> Result<BytesMut, TranscodeError> {
    let mut tc = Transcoder::new(table);
    let mut out = BytesMut::with_capacity(input.len() + input.len() / 4 + 16);
    tc.begin(&mut out);
    tc.push(input, &mut out)?;
    tc.finish_body(&mut out);
    tc.finish()?;
    Ok(out)
}

/// One non-NULL value of `column` as a JSON body carries it (a JSON token: a number,
/// `true`/`false`, a string, an array or the document), with the snapshot's checks: what
/// [`crate::cells`] compares StarRocks' cells with. `row` numbers the row in errors.
pub(crate) fn json_token(
    column: &crate::mapping::TargetColumn,
    v: &[u8],
    row: u64,
    out: &mut BytesMut,
) -> Result<(), TranscodeError> {
    let mut scratch = Vec::new();
    let mut elem = Vec::new();
    let done = match column.encoding {
        Encoding::Scalar(Scalar::Text { limit }) => json_text(v, limit, out, &mut scratch),
        Encoding::Scalar(Scalar::Form { form, limit }) => {
            form_text(v, form, limit, &mut scratch).map(|t| json_string_bytes(&t, out))
        }
        Encoding::Scalar(s) => json_scalar(v, s, out),
        Encoding::Json => json_document(v, out, &mut scratch),
        Encoding::Array(s) => json_array(v, s, out, &mut scratch, &mut elem),
    };
    done.map_err(|fail| TranscodeError {
        column: Some(column.source_name.clone()),
        row,
        kind: fail.kind,
        hint: fail.hint,
    })
}

/// Undoes the escapes of one COPY text field (`\t`, `\n`, `\\`, octal, hex): the value as
/// PostgreSQL's output function printed it.
///
/// ```
/// use pgsnap_sink_starrocks::transcode::copy_field_text;
/// assert_eq!(copy_field_text(br"a\tb\\c").unwrap(), b"a\tb\\c");
/// assert!(copy_field_text(b"x\\").is_err());
/// ```
///
/// # Errors
/// A field ending in a lone backslash (not COPY text).
pub fn copy_field_text(v: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    copy_unescape(v, &mut out).map_err(|f| f.kind.to_string())?;
    Ok(out)
}

type RowResult = Result<(), (usize, Fail)>;

#[inline]
fn is_null(v: &[u8]) -> bool {
    v == b"\\N"
}

fn csv_row(
    cols: &[Col],
    fields: &[(usize, usize)],
    row: &[u8],
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
) -> RowResult {
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.put_u8(b'\t');
        }
        let (a, b) = fields[c.src];
        let v = &row[a..b];
        if is_null(v) {
            out.extend_from_slice(b"\\N");
            continue;
        }
        let done = match c.encoding {
            Encoding::Scalar(Scalar::Text { limit }) => csv_text(v, limit, out, scratch),
            Encoding::Scalar(Scalar::Form { form, limit }) => {
                form_text(v, form, limit, scratch).map(|t| out.extend_from_slice(&t))
            }
            Encoding::Scalar(s) => csv_scalar(v, s, out),
            Encoding::Json => csv_json(v, out, scratch),
            Encoding::Array(_) => Err(Fail {
                kind: TranscodeErrorKind::Unrepresentable {
                    value_preview: preview(v),
                    why: "ARRAY columns need a JSON body".into(),
                },
                hint: Hint::Json,
            }),
        };
        done.map_err(|f| (i, f))?;
    }
    out.put_u8(b'\n');
    Ok(())
}

fn json_row(
    cols: &[Col],
    fields: &[(usize, usize)],
    row: &[u8],
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    elem: &mut Vec<u8>,
) -> RowResult {
    for (i, c) in cols.iter().enumerate() {
        out.extend_from_slice(&c.key);
        let (a, b) = fields[c.src];
        let v = &row[a..b];
        if is_null(v) {
            out.extend_from_slice(b"null");
            continue;
        }
        let done = match c.encoding {
            Encoding::Scalar(Scalar::Text { limit }) => json_text(v, limit, out, scratch),
            Encoding::Scalar(Scalar::Form { form, limit }) => {
                form_text(v, form, limit, scratch).map(|t| json_string_bytes(&t, out))
            }
            Encoding::Scalar(s) => json_scalar(v, s, out),
            Encoding::Json => json_document(v, out, scratch),
            Encoding::Array(s) => json_array(v, s, out, scratch, elem),
        };
        done.map_err(|f| (i, f))?;
    }
    out.put_u8(b'}');
    Ok(())
}

/// A scalar (not text) into CSV.
#[inline]
fn csv_scalar(v: &[u8], s: Scalar, out: &mut BytesMut) -> Result<(), Fail> {
    match s {
        Scalar::Int => {
            check_int(v)?;
            out.extend_from_slice(v);
        }
        Scalar::Float { .. } => {
            check_float(v)?;
            out.extend_from_slice(v);
        }
        Scalar::Decimal => {
            check_number(v, "DECIMAL")?;
            out.extend_from_slice(v);
        }
        Scalar::DecimalChecked { precision, scale } => {
            check_decimal_fits(v, precision, scale)?;
            out.extend_from_slice(v);
        }
        Scalar::Money { precision, scale } => out.extend_from_slice(&money(v, precision, scale)?),
        Scalar::Bool => out.extend_from_slice(bool_text(v)?),
        Scalar::Date => {
            check_date(v)?;
            out.extend_from_slice(v);
        }
        Scalar::DateTime { tz } => out.extend_from_slice(check_datetime(v, tz)?),
        Scalar::Text { limit } => {
            // Only reached for array elements, which CSV never carries.
            check_len(v.len(), limit)?;
            out.extend_from_slice(v);
        }
        Scalar::Form { form, limit } => {
            let mut scratch = Vec::new();
            out.extend_from_slice(&form_text(v, form, limit, &mut scratch)?);
        }
    }
    Ok(())
}

/// A scalar into JSON; text must already be free of COPY escapes.
#[inline]
fn json_scalar(v: &[u8], s: Scalar, out: &mut BytesMut) -> Result<(), Fail> {
    match s {
        Scalar::Int => {
            check_int(v)?;
            out.extend_from_slice(v);
        }
        Scalar::Float { single } => {
            // A string for `real` (parsed as a float directly) and for NaN/±Infinity, which
            // JSON numbers cannot spell (StarRocks' `string_to_float` reads both).
            if check_float(v)? || single {
                quoted(v, out);
            } else {
                out.extend_from_slice(v);
            }
        }
        Scalar::Decimal => {
            check_number(v, "DECIMAL")?;
            out.extend_from_slice(v);
        }
        Scalar::DecimalChecked { precision, scale } => {
            check_decimal_fits(v, precision, scale)?;
            out.extend_from_slice(v);
        }
        Scalar::Money { precision, scale } => quoted(&money(v, precision, scale)?, out),
        Scalar::Bool => out.extend_from_slice(bool_text(v)?),
        Scalar::Date => {
            check_date(v)?;
            quoted(v, out);
        }
        Scalar::DateTime { tz } => quoted(check_datetime(v, tz)?, out),
        Scalar::Text { limit } => {
            check_len(v.len(), limit)?;
            json_string_bytes(v, out);
        }
        Scalar::Form { form, limit } => {
            let mut scratch = Vec::new();
            json_string_bytes(&form_text(v, form, limit, &mut scratch)?, out);
        }
    }
    Ok(())
}

/// A value in its canonical text form ([`crate::canonical`]), COPY escapes undone first.
fn form_text<'a>(
    v: &'a [u8],
    form: TextForm,
    limit: u32,
    scratch: &'a mut Vec<u8>,
) -> Result<Cow<'a, [u8]>, Fail> {
    let val: &[u8] = if memchr(b'\\', v).is_some() {
        copy_unescape(v, scratch)?;
        scratch
    } else {
        v
    };
    let text = utf8(val, v)?;
    let fail = |why: String| unrep(v, why);
    let out: Cow<'a, [u8]> = match form {
        TextForm::Numeric => Cow::Borrowed(canonical::numeric_text(val).map_err(fail)?.as_bytes()),
        TextForm::Bytea => Cow::Borrowed(canonical::bytea_hex(val).map_err(fail)?),
        TextForm::Money => Cow::Owned(money_plain(text, v)?.into_bytes()),
        TextForm::Interval => Cow::Owned(canonical::interval_iso(text).map_err(fail)?.into_bytes()),
        TextForm::Time => Cow::Owned(canonical::time_iso(text).map_err(fail)?.into_bytes()),
        TextForm::TimeTz => Cow::Owned(canonical::timetz_iso(text).map_err(fail)?.into_bytes()),
    };
    check_len(out.len(), limit)?;
    Ok(out)
}

/// `money` text as a plain decimal that fits `DECIMAL(precision, scale)`.
fn money(v: &[u8], precision: u8, scale: u8) -> Result<Vec<u8>, Fail> {
    let text = std::str::from_utf8(v).map_err(|_| unrep(v, "not UTF-8"))?;
    let plain = money_plain(text, v)?;
    check_decimal_fits(plain.as_bytes(), precision, scale)?;
    Ok(plain.into_bytes())
}

/// [`canonical::money_plain`]; a form it refuses is a data problem (`lc_monetary`), previewing
/// `raw`.
fn money_plain(text: &str, raw: &[u8]) -> Result<String, Fail> {
    canonical::money_plain(text).map_err(|why| Fail {
        kind: TranscodeErrorKind::Unrepresentable { value_preview: preview(raw), why },
        hint: Hint::Data,
    })
}

#[inline]
fn quoted(v: &[u8], out: &mut BytesMut) {
    out.put_u8(b'"');
    out.extend_from_slice(v);
    out.put_u8(b'"');
}

#[inline]
fn check_len(len: usize, limit: u32) -> Result<(), Fail> {
    if len > limit as usize {
        return Err(Fail {
            kind: TranscodeErrorKind::TooLong { bytes: len, limit },
            hint: Hint::Widen,
        });
    }
    Ok(())
}

fn check_utf8(val: &[u8], raw: &[u8]) -> Result<(), Fail> {
    if !val.is_ascii() {
        utf8(val, raw)?;
    }
    Ok(())
}

/// `val` as text, or [`TranscodeErrorKind::InvalidUtf8`] previewing `raw`.
fn utf8<'a>(val: &'a [u8], raw: &[u8]) -> Result<&'a str, Fail> {
    std::str::from_utf8(val).map_err(|_| Fail {
        kind: TranscodeErrorKind::InvalidUtf8 { value_preview: preview(raw) },
        hint: Hint::Data,
    })
}

/// A COPY-escaped text value, unescaped and checked (UTF-8, the VARCHAR byte limit, and not
/// exactly `\N` in CSV, which cannot tell it from NULL).
fn text_value<'a>(
    v: &'a [u8],
    limit: u32,
    scratch: &'a mut Vec<u8>,
    csv: bool,
) -> Result<&'a [u8], Fail> {
    let val: &[u8] = if memchr(b'\\', v).is_some() {
        copy_unescape(v, scratch)?;
        scratch
    } else {
        v
    };
    check_utf8(val, v)?;
    check_len(val.len(), limit)?;
    if csv && is_null(val) {
        return Err(Fail {
            kind: TranscodeErrorKind::Unrepresentable {
                value_preview: preview(v),
                why: "the text \\N cannot be told from NULL in CSV: an unenclosed \\N is NULL, \
                      and whether StarRocks reads an enclosed \"\\N\" as text is unconfirmed"
                    .into(),
            },
            hint: Hint::NullText,
        });
    }
    Ok(val)
}

/// COPY-escaped text into a CSV field.
#[inline]
fn csv_text(v: &[u8], limit: u32, out: &mut BytesMut, scratch: &mut Vec<u8>) -> Result<(), Fail> {
    if plain(v, false) {
        check_len(v.len(), limit)?;
        out.extend_from_slice(v);
        return Ok(());
    }
    let val = text_value(v, limit, scratch, true)?;
    if memchr3(b'\t', b'\n', b'\r', val).is_some() || memchr(b'"', val).is_some() {
        out.reserve(val.len() + 8);
        out.put_u8(b'"');
        let mut rest = val;
        while let Some(q) = memchr(b'"', rest) {
            out.extend_from_slice(&rest[..=q]);
            out.put_u8(b'"');
            rest = &rest[q + 1..];
        }
        out.extend_from_slice(rest);
        out.put_u8(b'"');
    } else {
        out.extend_from_slice(val);
    }
    Ok(())
}

/// COPY-escaped text into a JSON string.
#[inline]
fn json_text(v: &[u8], limit: u32, out: &mut BytesMut, scratch: &mut Vec<u8>) -> Result<(), Fail> {
    if plain(v, true) {
        check_len(v.len(), limit)?;
        quoted(v, out);
        return Ok(());
    }
    let val = text_value(v, limit, scratch, false)?;
    json_string_bytes(val, out);
    Ok(())
}

/// A `json`/`jsonb` value into a CSV field. StarRocks reads it with `parse_json_or_string`
/// (`be/src/formats/csv/json_converter.cpp` → `JsonValue::parse`), which parses the text only
/// when it starts with `{`, `[` or `"` and otherwise stores the whole text as a JSON *string*:
/// a top-level number, `true`, `false` or `null` would change type, so it is refused.
fn csv_json(v: &[u8], out: &mut BytesMut, scratch: &mut Vec<u8>) -> Result<(), Fail> {
    let first = v.iter().copied().find(|b| !b.is_ascii_whitespace());
    if !matches!(first, Some(b'{' | b'[' | b'"')) {
        let null = v.trim_ascii() == b"null";
        return Err(Fail {
            kind: TranscodeErrorKind::Unrepresentable {
                value_preview: preview(v),
                why: if null {
                    "a top-level JSON null cannot be told from SQL NULL by any Stream Load body"
                        .into()
                } else {
                    "StarRocks reads a CSV JSON field that is not an object, array or string as \
                     a JSON string (parse_json_or_string), so this scalar would change type"
                        .into()
                },
            },
            hint: if null { Hint::Varchar } else { Hint::Json },
        });
    }
    csv_text(v, u32::MAX, out, scratch)
}

/// A `json`/`jsonb` value, embedded as it is.
fn json_document(v: &[u8], out: &mut BytesMut, scratch: &mut Vec<u8>) -> Result<(), Fail> {
    let val: &[u8] = if memchr(b'\\', v).is_some() {
        copy_unescape(v, scratch)?;
        scratch
    } else {
        v
    };
    check_utf8(val, v)?;
    if val.trim_ascii() == b"null" {
        return Err(Fail {
            kind: TranscodeErrorKind::Unrepresentable {
                value_preview: preview(v),
                why: "a top-level JSON null loads as SQL NULL from a JSON body (and CSV cannot \
                      carry it either)"
                    .into(),
            },
            hint: Hint::Varchar,
        });
    }
    if val.trim_ascii().is_empty() {
        return Err(unrep(v, "not a JSON document"));
    }
    out.extend_from_slice(val);
    Ok(())
}

/// A one-dimensional PostgreSQL array literal into a JSON array.
fn json_array(
    v: &[u8],
    s: Scalar,
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    elem: &mut Vec<u8>,
) -> Result<(), Fail> {
    let val: &[u8] = if memchr(b'\\', v).is_some() {
        copy_unescape(v, scratch)?;
        scratch
    } else {
        v
    };
    check_utf8(val, v)?;
    if val.first() == Some(&b'[') {
        return Err(unrep(
            v,
            "an array with a lower bound other than 1 ([m:n]={…}) has no StarRocks ARRAY form",
        ));
    }
    if val.len() < 2 || val[0] != b'{' || val[val.len() - 1] != b'}' {
        return Err(unrep(v, "not a PostgreSQL array literal"));
    }
    let inner = &val[1..val.len() - 1];
    out.put_u8(b'[');
    if inner.is_empty() {
        out.put_u8(b']');
        return Ok(());
    }
    let mut i = 0;
    loop {
        match inner.get(i) {
            Some(b'{') => {
                return Err(unrep(v, "multi-dimensional arrays have no StarRocks ARRAY form"));
            }
            Some(b'"') => {
                elem.clear();
                i += 1;
                loop {
                    match inner.get(i) {
                        None => return Err(unrep(v, "unterminated quoted array element")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let Some(&c) = inner.get(i + 1) else {
                                return Err(unrep(v, "unterminated quoted array element"));
                            };
                            elem.push(c);
                            i += 2;
                        }
                        Some(&c) => {
                            elem.push(c);
                            i += 1;
                        }
                    }
                }
                json_scalar(elem, s, out).map_err(|f| element_fail(f, v))?;
            }
            _ => {
                let end = memchr(b',', &inner[i..]).map_or(inner.len(), |p| i + p);
                let e = &inner[i..end];
                if e.eq_ignore_ascii_case(b"NULL") {
                    out.extend_from_slice(b"null");
                } else {
                    json_scalar(e, s, out).map_err(|f| element_fail(f, v))?;
                }
                i = end;
            }
        }
        match inner.get(i) {
            None => break,
            Some(b',') => {
                out.put_u8(b',');
                i += 1;
            }
            Some(_) => return Err(unrep(v, "malformed array literal")),
        }
    }
    out.put_u8(b']');
    Ok(())
}

/// Reports an array element's failure with the whole array as the value.
fn element_fail(mut f: Fail, array: &[u8]) -> Fail {
    if let TranscodeErrorKind::Unrepresentable { value_preview, why } = &mut f.kind {
        *why = format!("element {value_preview:?}: {why}");
        *value_preview = preview(array);
    }
    f
}

#[inline]
fn bool_text(v: &[u8]) -> Result<&'static [u8], Fail> {
    match v {
        b"t" => Ok(b"true"),
        b"f" => Ok(b"false"),
        _ => Err(unrep(v, "not a PostgreSQL boolean (t/f)")),
    }
}

#[inline]
fn check_int(v: &[u8]) -> Result<(), Fail> {
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(unrep(v, "not an integer"));
    }
    Ok(())
}

/// JSON number syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(v: &[u8]) -> bool {
    let n = v.len();
    let mut i = usize::from(v.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < n && v[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    match v.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if v.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(v.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == n
}

/// Checks a `real`/`double precision` value; `Ok(true)` for `NaN`, `Infinity` and
/// `-Infinity`, which StarRocks FLOAT/DOUBLE columns hold (`StringParser::string_to_float`
/// reads them, in CSV and in JSON strings).
#[inline]
fn check_float(v: &[u8]) -> Result<bool, Fail> {
    if is_json_number(v) {
        return Ok(false);
    }
    if matches!(v, b"NaN" | b"Infinity" | b"-Infinity") {
        return Ok(true);
    }
    Err(unrep(v, "not a number"))
}

#[inline]
fn check_number(v: &[u8], target: &str) -> Result<(), Fail> {
    if is_json_number(v) {
        return Ok(());
    }
    let special = matches!(v, b"NaN" | b"Infinity" | b"-Infinity");
    Err(unrep(
        v,
        if special {
            format!("StarRocks {target} cannot hold NaN or Infinity")
        } else {
            "not a number".into()
        },
    ))
}

fn check_decimal_fits(v: &[u8], precision: u8, scale: u8) -> Result<(), Fail> {
    check_number(v, "DECIMAL")?;
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    if digits.iter().any(|&b| b == b'e' || b == b'E') {
        return Err(unrep(v, "a decimal with an exponent is not PostgreSQL numeric output"));
    }
    let (int, frac) = match memchr(b'.', digits) {
        Some(p) => (&digits[..p], &digits[p + 1..]),
        None => (digits, &b""[..]),
    };
    let int_len = int.iter().position(|&b| b != b'0').map_or(0, |p| int.len() - p);
    let frac_len = frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1);
    if int_len > usize::from(precision - scale) || frac_len > usize::from(scale) {
        return Err(unrep(v, format!("it does not fit DECIMAL({precision},{scale})")));
    }
    Ok(())
}

fn digits_at(v: &[u8], range: std::ops::Range<usize>) -> bool {
    v[range].iter().all(u8::is_ascii_digit)
}

/// Why a date or timestamp is not StarRocks-representable.
fn date_fail(v: &[u8], target: &str) -> Fail {
    let why = if v.ends_with(b" BC") {
        format!("StarRocks {target} cannot hold BC dates")
    } else if v == b"infinity" || v == b"-infinity" {
        format!("StarRocks {target} has no infinity")
    } else if v.len() >= 5 && digits_at(v, 0..5) {
        format!("StarRocks {target} holds years 0000 to 9999 only")
    } else {
        format!("not an ISO {target} as PostgreSQL prints it (DateStyle=ISO)")
    };
    unrep(v, why)
}

#[inline]
fn check_date(v: &[u8]) -> Result<(), Fail> {
    if v.len() == 10
        && v[4] == b'-'
        && v[7] == b'-'
        && digits_at(v, 0..4)
        && digits_at(v, 5..7)
        && digits_at(v, 8..10)
    {
        return Ok(());
    }
    Err(date_fail(v, "DATE"))
}

/// Checks a timestamp and returns it without the `+00` of `timestamptz`.
#[inline]
fn check_datetime(v: &[u8], tz: bool) -> Result<&[u8], Fail> {
    let d = if tz {
        match v.strip_suffix(b"+00") {
            Some(d) => d,
            None if v.ends_with(b" BC") || v.ends_with(b"infinity") => {
                return Err(date_fail(v, "DATETIME"));
            }
            None => {
                return Err(unrep(
                    v,
                    "its UTC offset is not +00 (the source session's TimeZone must be UTC)",
                ));
            }
        }
    } else {
        v
    };
    let n = d.len();
    if n >= 19
        && d[4] == b'-'
        && d[7] == b'-'
        && d[10] == b' '
        && d[13] == b':'
        && d[16] == b':'
        && digits_at(d, 0..4)
        && d[n - 1].is_ascii_digit()
    {
        return Ok(d);
    }
    Err(date_fail(v, "DATETIME"))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// True when `v` has no backslash, no `"`, no byte ≥ 0x80 and (for JSON) no control character:
/// then it can be copied as it is. Eight bytes at a time.
#[inline]
fn plain(v: &[u8], json: bool) -> bool {
    let bs = LO * u64::from(b'\\');
    let q = LO * u64::from(b'"');
    let ctl = LO * 0x20;
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let xb = w ^ bs;
        let xq = w ^ q;
        let mut m = w | (xb.wrapping_sub(LO) & !xb) | (xq.wrapping_sub(LO) & !xq);
        if json {
            m |= w.wrapping_sub(ctl) & !w;
        }
        if m & HI != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b < 0x80 && b != b'\\' && b != b'"' && (!json || b >= 0x20))
}

/// Undoes COPY text escapes into `scratch`.
fn copy_unescape(v: &[u8], scratch: &mut Vec<u8>) -> Result<(), Fail> {
    scratch.clear();
    scratch.reserve(v.len());
    let n = v.len();
    let mut i = 0;
    while let Some(p) = memchr(b'\\', &v[i..]) {
        let p = i + p;
        scratch.extend_from_slice(&v[i..p]);
        let Some(&c) = v.get(p + 1) else {
            return Err(unrep(v, "ends with a lone backslash (not COPY text)"));
        };
        i = p + 2;
        let byte = match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'0'..=b'7' => {
                let mut val = u32::from(c - b'0');
                let mut k = 0;
                while k < 2 && i < n && (b'0'..=b'7').contains(&v[i]) {
                    val = val * 8 + u32::from(v[i] - b'0');
                    i += 1;
                    k += 1;
                }
                (val & 0xff) as u8
            }
            b'x' if i < n && v[i].is_ascii_hexdigit() => {
                let mut val = hex_val(v[i]);
                i += 1;
                if i < n && v[i].is_ascii_hexdigit() {
                    val = val * 16 + hex_val(v[i]);
                    i += 1;
                }
                val
            }
            other => other,
        };
        scratch.push(byte);
    }
    scratch.extend_from_slice(&v[i..]);
    Ok(())
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Appends `v` (UTF-8) as a JSON string to `out`.
fn json_string(v: &[u8], out: &mut Vec<u8>) {
    let mut b = BytesMut::new();
    json_string_bytes(v, &mut b);
    out.extend_from_slice(&b);
}

/// Appends `v` (UTF-8) as a JSON string: `"` and `\` escaped, control characters as `\n`,
/// `\t`, … or `\u00XX`.
fn json_string_bytes(v: &[u8], out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(v.len() + 2);
    out.put_u8(b'"');
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&v[start..i]);
        if short.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&v[start..]);
    out.put_u8(b'"');
}

#[cfg(test)]
mod tests {
    use pgsnap_core::{Column, TableKind, TableName, TableSchema};

    use super::*;
    use crate::mapping::{MappingOptions, map_table};

    fn table(cols: &[(&str, &str)], pk: &[&str], options: &MappingOptions) -> TargetTable {
        let schema = TableSchema {
            name: TableName::new("public", "t"),
            kind: TableKind::Table,
            columns: cols.iter().map(|(n, t)| Column::new(*n, *t, true)).collect(),
            generated_columns: vec![],
            primary_key: pk.iter().map(|s| (*s).into()).collect(),
        };
        map_table(&schema, "t", options).unwrap()
    }

    fn csv_opts() -> MappingOptions {
        MappingOptions::default()
    }

    fn json_opts() -> MappingOptions {
        MappingOptions::new().with_format(LoadFormat::Json)
    }

    /// Transcodes `input` for a one-column table of type `ty`.
    fn one(ty: &str, options: &MappingOptions, input: &str) -> Result<String, TranscodeError> {
        let t = table(&[("c", ty)], &[], options);
        transcode(&t, input.as_bytes()).map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    fn csv(ty: &str, input: &str) -> String {
        one(ty, &csv_opts(), input).unwrap()
    }

    fn json(ty: &str, input: &str) -> String {
        one(ty, &json_opts(), input).unwrap()
    }

    fn csv_err(ty: &str, input: &str) -> TranscodeError {
        one(ty, &csv_opts(), input).unwrap_err()
    }

    fn json_err(ty: &str, input: &str) -> TranscodeError {
        one(ty, &json_opts(), input).unwrap_err()
    }

    #[test]
    fn text_csv() {
        assert_eq!(csv("text", "abc\n"), "abc\n");
        assert_eq!(csv("text", "\\N\n"), "\\N\n");
        assert_eq!(csv("text", "\n"), "\n");
        assert_eq!(csv("text", "a\\tb\n"), "\"a\tb\"\n");
        assert_eq!(csv("text", "a\\nb\\rc\n"), "\"a\nb\rc\"\n");
        assert_eq!(csv("text", "back\\\\slash\n"), "back\\slash\n");
        assert_eq!(csv("text", "say \"hi\"\n"), "\"say \"\"hi\"\"\"\n");
        assert_eq!(csv("text", "\"\n"), "\"\"\"\"\n");
        assert_eq!(csv("text", "comma, semi;\n"), "comma, semi;\n");
        assert_eq!(csv("text", "Grüße 日本 🎉\n"), "Grüße 日本 🎉\n");
        assert_eq!(csv("text", "\\b\\f\\v\n"), "\u{8}\u{c}\u{b}\n");
        assert_eq!(csv("text", "\\101\\x42\\q\n"), "ABq\n");
        // Literal backslash-N text, N in the middle.
        assert_eq!(csv("text", "a\\\\Nb\n"), "a\\Nb\n");
        assert_eq!(csv("text", "\\\\N \n"), "\\N \n");
    }

    #[test]
    fn literal_backslash_n_is_refused_in_csv_and_text_in_json() {
        let e = csv_err("text", "\\\\N\n");
        assert!(matches!(e.kind, TranscodeErrorKind::Unrepresentable { .. }));
        assert_eq!(e.column.as_deref(), Some("c"));
        assert_eq!(e.row, 1);
        assert!(e.to_string().contains("JSON body (LoadFormat::Json)"), "{e}");
        // StarRocks' JSON scanner has no NULL string: the text \N is text there.
        assert_eq!(json("text", "\\\\N\n"), r#"[{"c":"\\N"}]"#);
        assert_eq!(json("text", "\\N\n"), r#"[{"c":null}]"#);
    }

    #[test]
    fn text_json() {
        assert_eq!(json("text", "abc\n"), r#"[{"c":"abc"}]"#);
        assert_eq!(json("text", "\n"), r#"[{"c":""}]"#);
        assert_eq!(json("text", "a\\tb\\nc\\\\d\"e\n"), r#"[{"c":"a\tb\nc\\d\"e"}]"#);
        assert_eq!(json("text", "\u{1}x\\b\\f\\v\n"), r#"[{"c":"\u0001x\b\f\u000b"}]"#);
        assert_eq!(json("text", "Grüße 日本 🎉\n"), "[{\"c\":\"Grüße 日本 🎉\"}]");
        assert_eq!(json("text", "a\u{7f}\n"), "[{\"c\":\"a\u{7f}\"}]");
    }

    #[test]
    fn invalid_utf8() {
        let t = table(&[("c", "text")], &[], &csv_opts());
        let e = transcode(&t, b"ok\xff\n").unwrap_err();
        assert!(matches!(e.kind, TranscodeErrorKind::InvalidUtf8 { .. }), "{e}");
        let e = transcode(&t, b"\\377\n").unwrap_err();
        assert!(matches!(e.kind, TranscodeErrorKind::InvalidUtf8 { .. }), "{e}");
        let t = table(&[("c", "text")], &[], &json_opts());
        assert!(transcode(&t, b"\xc3\n").is_err());
    }

    #[test]
    fn varchar_limits_in_bytes() {
        // character varying(2) → VARCHAR(8): 8 bytes pass, 9 fail.
        assert_eq!(csv("character varying(2)", "12345678\n"), "12345678\n");
        let e = csv_err("character varying(2)", "123456789\n");
        assert_eq!(e.kind, TranscodeErrorKind::TooLong { bytes: 9, limit: 8 });
        assert!(e.to_string().contains("VARCHAR(1048576)"), "{e}");
        // Escapes count once unescaped: 8 tabs = 8 bytes.
        assert!(one("character varying(2)", &csv_opts(), &"\\t".repeat(8)).is_err()); // no newline
        assert_eq!(
            csv("character varying(2)", &format!("{}\n", "\\t".repeat(8))),
            format!("\"{}\"\n", "\t".repeat(8))
        );
        let o = MappingOptions::new().with_column_type("c", "VARCHAR(3)");
        assert!(one("text", &o, "äb\n").is_ok());
        assert!(one("text", &o, "äbc\n").is_err());
        assert_eq!(one("character(3)", &csv_opts(), "ab \n").unwrap(), "ab \n");
    }

    #[test]
    fn integers_and_numerics() {
        assert_eq!(csv("bigint", "-9223372036854775808\n"), "-9223372036854775808\n");
        assert_eq!(json("integer", "42\n"), r#"[{"c":42}]"#);
        assert!(json_err("integer", "4x\n").to_string().contains("not an integer"));
        let big = "12345678901234567890.123456789";
        assert_eq!(csv("numeric(38,9)", &format!("{big}\n")), format!("{big}\n"));
        assert_eq!(json("numeric(38,9)", &format!("{big}\n")), format!("[{{\"c\":{big}}}]"));
        assert_eq!(json("numeric(12,2)", "-0.50\n"), r#"[{"c":-0.50}]"#);
        for bad in ["NaN", "Infinity", "-Infinity"] {
            let e = csv_err("numeric(12,2)", &format!("{bad}\n"));
            assert!(e.to_string().contains("NaN or Infinity"), "{e}");
            assert!(e.to_string().contains("VARCHAR"), "{e}");
        }
        // Unbounded numeric: text by default, exact text kept.
        assert_eq!(csv("numeric", &format!("{big}\n")), format!("{big}\n"));
        // ... with Debezium's names for the special values.
        assert_eq!(json("numeric", "NaN\n"), r#"[{"c":"NAN"}]"#);
        assert_eq!(csv("numeric", "Infinity\n"), "POSITIVE_INFINITY\n");
        assert_eq!(csv("numeric", "-Infinity\n"), "NEGATIVE_INFINITY\n");
        // Checked override.
        let o = MappingOptions::new().with_column_type("c", "DECIMAL(10,2)");
        assert_eq!(one("numeric", &o, "12345678.12\n").unwrap(), "12345678.12\n");
        assert_eq!(one("numeric", &o, "-12345678.1200\n").unwrap(), "-12345678.1200\n");
        assert!(one("numeric", &o, "123456789.1\n").is_err());
        assert!(one("numeric", &o, "1.123\n").is_err());
        assert!(one("numeric", &o, "NaN\n").is_err());
        // numeric as a key: VARCHAR text.
        let t = table(&[("k", "numeric(12,2)")], &["k"], &json_opts());
        assert_eq!(&transcode(&t, b"12.50\n").unwrap()[..], br#"[{"k":"12.50"}]"#);
        assert_eq!(&transcode(&t, b"NaN\n").unwrap()[..], br#"[{"k":"NAN"}]"#);
    }

    #[test]
    fn floats() {
        assert_eq!(csv("double precision", "1.2345678901234567e+20\n"), "1.2345678901234567e+20\n");
        assert_eq!(json("double precision", "-1e-07\n"), r#"[{"c":-1e-07}]"#);
        assert_eq!(json("real", "3.4028235e+38\n"), r#"[{"c":"3.4028235e+38"}]"#);
        // StarRocks FLOAT/DOUBLE hold NaN and ±Infinity (string_to_float reads them): as they
        // are in CSV, JSON strings in JSON bodies.
        for special in ["NaN", "Infinity", "-Infinity"] {
            assert_eq!(csv("real", &format!("{special}\n")), format!("{special}\n"));
            assert_eq!(
                json("double precision", &format!("{special}\n")),
                format!("[{{\"c\":\"{special}\"}}]")
            );
        }
        assert!(csv_err("double precision", "1.5x\n").to_string().contains("not a number"));
    }

    #[test]
    fn booleans() {
        assert_eq!(csv("boolean", "t\nf\n\\N\n"), "true\nfalse\n\\N\n");
        assert_eq!(json("boolean", "t\nf\n"), r#"[{"c":true},{"c":false}]"#);
        assert!(csv_err("boolean", "yes\n").to_string().contains("t/f"));
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(csv("date", "2024-02-29\n"), "2024-02-29\n");
        assert_eq!(json("date", "0001-01-01\n"), r#"[{"c":"0001-01-01"}]"#);
        let ts = "timestamp without time zone";
        assert_eq!(csv(ts, "2024-01-31 12:34:56.123456\n"), "2024-01-31 12:34:56.123456\n");
        assert_eq!(json(ts, "2024-01-31 12:34:56\n"), r#"[{"c":"2024-01-31 12:34:56"}]"#);
        let tz = "timestamp with time zone";
        assert_eq!(csv(tz, "2024-01-31 12:34:56.5+00\n"), "2024-01-31 12:34:56.5\n");
        assert_eq!(json(tz, "2024-01-31 12:34:56+00\n"), r#"[{"c":"2024-01-31 12:34:56"}]"#);
        let cases = [
            ("date", "0044-03-15 BC", "BC"),
            ("date", "infinity", "infinity"),
            ("date", "-infinity", "infinity"),
            ("date", "10000-01-01", "9999"),
            (ts, "0044-03-15 00:00:00 BC", "BC"),
            (ts, "infinity", "infinity"),
            (ts, "12345-01-01 00:00:00", "9999"),
            (tz, "0044-03-15 00:00:00+00 BC", "BC"),
            (tz, "-infinity", "infinity"),
            (tz, "2024-01-01 00:00:00+02", "+00"),
            (tz, "20000-01-01 00:00:00+00", "9999"),
        ];
        for (ty, v, want) in cases {
            let e = csv_err(ty, &format!("{v}\n"));
            let msg = e.to_string();
            assert!(msg.contains(want), "{ty} {v}: {msg}");
            assert!(msg.contains("column \"c\""), "{msg}");
            assert!(msg.contains("VARCHAR"), "{msg}");
        }
    }

    #[test]
    fn json_documents() {
        let doc = r#"{"a": "x\\"y", "b": [1, null], "c": "tab\\there"}"#;
        // COPY doubles the backslashes of the JSON text.
        let copy = doc.replace('\\', "\\\\");
        assert_eq!(json("jsonb", &format!("{copy}\n")), format!("[{{\"c\":{doc}}}]"));
        assert_eq!(
            csv("jsonb", &format!("{copy}\n")),
            format!("\"{}\"\n", doc.replace('"', "\"\""))
        );
        // json keeps raw newlines, which COPY escapes.
        assert_eq!(json("json", "{\\n\"a\": 1}\n"), "[{\"c\":{\n\"a\": 1}}]");
        assert_eq!(json("jsonb", "\"str\"\n"), r#"[{"c":"str"}]"#);
        assert_eq!(csv("jsonb", "\"str\"\n"), "\"\"\"str\"\"\"\n");
        assert_eq!(json("jsonb", "123\n"), r#"[{"c":123}]"#);
        // A top-level null is SQL NULL in a JSON body and a JSON string in CSV: refused.
        let e = json_err("jsonb", "null\n");
        assert!(e.to_string().contains("SQL NULL"), "{e}");
        assert!(csv_err("jsonb", "null\n").to_string().contains("SQL NULL"));
        // CSV reads other scalars as JSON strings (parse_json_or_string): refused.
        for scalar in ["123", "true", "-1.5"] {
            let e = csv_err("jsonb", &format!("{scalar}\n"));
            assert!(e.to_string().contains("JSON body (LoadFormat::Json)"), "{e}");
        }
    }

    #[test]
    fn uuid_and_bytea() {
        let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(csv("uuid", &format!("{u}\n")), format!("{u}\n"));
        assert_eq!(json("uuid", &format!("{u}\n")), format!("[{{\"c\":\"{u}\"}}]"));
        // Debezium's binary.handling.mode=hex: lowercase hex without \x.
        assert_eq!(csv("bytea", "\\\\x00ff10\n"), "00ff10\n");
        assert_eq!(json("bytea", "\\\\x\n"), r#"[{"c":""}]"#);
        assert!(csv_err("bytea", "\\\\001\n").to_string().contains("hex"));
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(csv("money", "$1,234.56\n"), "1234.56\n");
        assert_eq!(json("money", "-$0.50\n"), r#"[{"c":"-0.50"}]"#);
        let e = csv_err("money", "1.234,56 €\n");
        assert!(e.to_string().contains("lc_monetary"), "{e}");
        assert!(csv_err("money", "$1.005\n").to_string().contains("DECIMAL(19,2)"));
        assert_eq!(csv("interval", "1 year 2 mons 3 days 04:05:06.78\n"), "P1Y2M3DT4H5M6.78S\n");
        assert_eq!(json("interval", "00:00:01.003691\n"), r#"[{"c":"P0Y0M0DT0H0M1.003690999S"}]"#);
        assert_eq!(csv("time without time zone", "04:05:06.5\n"), "04:05:06.5Z\n");
        assert_eq!(csv("time(3) with time zone", "04:05:06.5-02\n"), "06:05:06.5Z\n");
        let e = csv_err("time without time zone", "24:00:00\n");
        assert!(e.to_string().contains("00:00:00Z"), "{e}");
        // A VARCHAR override keeps the canonical form.
        let o = MappingOptions::new().with_column_type("c", "VARCHAR(20)");
        assert_eq!(one("interval", &o, "-3 days\n").unwrap(), "P0Y0M-3DT0H0M0S\n");
    }

    #[test]
    fn arrays() {
        assert_eq!(json("integer[]", "{1,2,NULL}\n"), r#"[{"c":[1,2,null]}]"#);
        assert_eq!(json("integer[]", "{}\n"), r#"[{"c":[]}]"#);
        assert_eq!(
            json(
                "text[]",
                "{\"a b\",\"x\\\\\"y\",\"back\\\\\\\\slash\",NULL,\"NULL\",plain,\"\"}\n"
            ),
            r#"[{"c":["a b","x\"y","back\\slash",null,"NULL","plain",""]}]"#
        );
        assert_eq!(json("boolean[]", "{t,f}\n"), r#"[{"c":[true,false]}]"#);
        assert_eq!(json("real[]", "{1.5,-2}\n"), r#"[{"c":["1.5","-2"]}]"#);
        assert_eq!(json("numeric(5,2)[]", "{1.50,NULL}\n"), r#"[{"c":[1.50,null]}]"#);
        assert_eq!(
            json("timestamp with time zone[]", "{\"2024-01-01 00:00:00+00\"}\n"),
            r#"[{"c":["2024-01-01 00:00:00"]}]"#
        );
        assert_eq!(json("date[]", "{2024-01-01}\n"), r#"[{"c":["2024-01-01"]}]"#);
        assert_eq!(json("double precision[]", "{1,NaN}\n"), r#"[{"c":[1,"NaN"]}]"#);
        assert_eq!(json("text[]", "{\"tab\\there\"}\n"), r#"[{"c":["tab\there"]}]"#);
        for (ty, v, want) in [
            ("integer[]", "{{1,2},{3,4}}", "multi-dimensional"),
            ("integer[]", "[0:1]={1,2}", "lower bound"),
            ("integer[]", "{1,x}", "not an integer"),
            ("numeric(5,2)[]", "{1,NaN}", "NaN"),
            ("date[]", "{infinity}", "infinity"),
            ("character varying(1)[]", "{abcde}", "VARCHAR(4)"),
            ("text[]", "{\"open}", "unterminated"),
        ] {
            let e = json_err(ty, &format!("{v}\n"));
            assert!(e.to_string().contains(want), "{ty} {v}: {e}");
        }
        // CSV keeps PostgreSQL's array text.
        assert_eq!(csv("integer[]", "{1,2,NULL}\n"), "{1,2,NULL}\n");
        assert_eq!(csv("text[]", "{\"a b\"}\n"), "\"{\"\"a b\"\"}\"\n");
    }

    #[test]
    fn primary_key_reorders_fields() {
        let t = table(&[("a", "text"), ("id", "bigint"), ("b", "boolean")], &["id"], &json_opts());
        let out = transcode(&t, b"x\t7\tt\n").unwrap();
        assert_eq!(&out[..], br#"[{"id":7,"a":"x","b":true}]"#);
        let t = table(&[("a", "text"), ("id", "bigint"), ("b", "boolean")], &["id"], &csv_opts());
        assert_eq!(&transcode(&t, b"x\t7\tt\n").unwrap()[..], b"7\tx\ttrue\n");
        let tc = Transcoder::new(&t);
        assert_eq!(
            tc.headers(),
            vec![
                ("format", "csv".to_owned()),
                ("column_separator", "\\x09".to_owned()),
                ("row_delimiter", "\\x0A".to_owned()),
                ("enclose", "\"".to_owned()),
                ("columns", "`id`,`a`,`b`".to_owned()),
            ]
        );
    }

    #[test]
    fn json_keys_are_escaped() {
        let o = json_opts().with_column_name("c", "we\"ird\\name");
        let t = table(&[("c", "integer")], &[], &o);
        assert_eq!(&transcode(&t, b"1\n").unwrap()[..], br#"[{"we\"ird\\name":1}]"#);
    }

    #[test]
    fn wrong_column_count_and_incomplete_rows() {
        let t = table(&[("a", "integer"), ("b", "integer")], &[], &csv_opts());
        let e = transcode(&t, b"1\t2\n3\n").unwrap_err();
        assert_eq!(e.row, 2);
        assert_eq!(e.kind, TranscodeErrorKind::WrongColumnCount { expected: 2, found: 1 });
        assert_eq!(e.column, None);
        assert!(e.to_string().starts_with("row 2: expected 2"), "{e}");
        let e = transcode(&t, b"1\t2\n3\t4").unwrap_err();
        assert_eq!(e.kind, TranscodeErrorKind::IncompleteRow { bytes: 3 });
        assert_eq!(e.row, 2);
    }

    #[test]
    fn error_truncates_output_to_the_last_complete_row() {
        let t = table(&[("a", "integer"), ("b", "date")], &[], &json_opts());
        let mut tc = Transcoder::new(&t);
        let mut out = BytesMut::new();
        tc.begin(&mut out);
        let e = tc.push(b"1\t2024-01-01\n2\tinfinity\n", &mut out).unwrap_err();
        assert_eq!(e.row, 2);
        assert_eq!(e.column.as_deref(), Some("b"));
        assert_eq!(&out[..], br#"[{"a":1,"b":"2024-01-01"}"#);
        assert_eq!(tc.rows(), 1);
    }

    /// Rows exercising every encoding and escape path.
    fn mixed_table(format: LoadFormat) -> (TargetTable, Vec<u8>) {
        let cols = [
            ("id", "bigint"),
            ("t", "text"),
            ("ts", "timestamp with time zone"),
            ("n", "numeric(12,2)"),
            ("b", "boolean"),
            ("u", "uuid"),
            ("j", "jsonb"),
            ("arr", "integer[]"),
        ];
        let t = table(&cols, &["id"], &MappingOptions::new().with_format(format));
        let mut input = Vec::new();
        for i in 0..40u32 {
            let text = match i % 5 {
                0 => "\\N".to_owned(),
                1 => format!("tab\\there {i}"),
                2 => "quote \"q\" ü".to_owned(),
                3 => String::new(),
                _ => format!("line\\nbreak\\\\{i}"),
            };
            input.extend_from_slice(
                format!(
                    "{i}\t{text}\t2024-01-{:02} 10:00:00.{i}+00\t{i}.25\t{}\t\
                     a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a{i:02}\t{{\"k\": \"v\\\\\"{i}\"}}\t{{{i},NULL}}\n",
                    i % 28 + 1,
                    if i.is_multiple_of(2) { "t" } else { "f" },
                )
                .as_bytes(),
            );
        }
        (t, input)
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        for format in [LoadFormat::Csv, LoadFormat::Json] {
            let (t, input) = mixed_table(format);
            let whole = transcode(&t, &input).unwrap();
            for split in 0..=input.len() {
                let mut tc = Transcoder::new(&t);
                let mut out = BytesMut::new();
                tc.begin(&mut out);
                tc.push(&input[..split], &mut out).unwrap();
                tc.push(&input[split..], &mut out).unwrap();
                tc.finish_body(&mut out);
                tc.finish().unwrap();
                assert_eq!(out, whole, "{format} split at {split}");
                assert_eq!(tc.rows(), 40);
            }
        }
    }

    #[test]
    fn json_body_is_valid_json() {
        let (t, input) = mixed_table(LoadFormat::Json);
        let body = transcode(&t, &input).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 40);
        assert_eq!(rows[1]["t"], "tab\there 1");
        assert_eq!(rows[2]["t"], "quote \"q\" ü");
        assert_eq!(rows[4]["t"], "line\nbreak\\4");
        assert_eq!(rows[0]["t"], serde_json::Value::Null);
        assert_eq!(rows[3]["t"], "");
        assert_eq!(rows[3]["j"]["k"], "v\"3");
        assert_eq!(rows[3]["arr"], serde_json::json!([3, null]));
        assert_eq!(rows[3]["ts"], "2024-01-04 10:00:00.3");
    }

    /// Splits `input` (fed in buffers of `buf` bytes) into bodies of at most ~`max` bytes.
    fn bodies(t: &TargetTable, input: &[u8], buf: usize, max: usize) -> Vec<(BytesMut, u64)> {
        let mut tc = Transcoder::new(t);
        let mut bodies = Vec::new();
        let mut out = BytesMut::new();
        for piece in input.chunks(buf) {
            let mut rest = piece;
            loop {
                let p = tc.push_limited(rest, &mut out, max).unwrap();
                rest = &rest[p.consumed..];
                if p.body_full {
                    let rows = tc.body_rows();
                    tc.finish_body(&mut out);
                    bodies.push((out.split(), rows));
                }
                if rest.is_empty() {
                    break;
                }
            }
        }
        tc.finish().unwrap();
        if tc.body_rows() > 0 {
            let rows = tc.body_rows();
            tc.finish_body(&mut out);
            bodies.push((out.split(), rows));
        }
        bodies
    }

    #[test]
    fn bounded_bodies_are_deterministic_and_complete() {
        for format in [LoadFormat::Csv, LoadFormat::Json] {
            let (t, input) = mixed_table(format);
            let reference = bodies(&t, &input, input.len(), 700);
            assert!(reference.len() > 3, "{format}: {}", reference.len());
            for buf in [1, 7, 64, 333, 4096] {
                assert_eq!(bodies(&t, &input, buf, 700), reference, "{format} buffers of {buf}");
            }
            let total: u64 = reference.iter().map(|(_, r)| r).sum();
            assert_eq!(total, 40);
            for (body, rows) in &reference {
                assert!(*rows > 0);
                // Every body is complete on its own.
                if format == LoadFormat::Json {
                    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                    assert_eq!(v.as_array().unwrap().len() as u64, *rows);
                } else {
                    assert!(body.ends_with(b"\n"));
                }
            }
            // The CSV bodies concatenated are the single body.
            if format == LoadFormat::Csv {
                let joined: Vec<u8> = reference.iter().flat_map(|(b, _)| b.to_vec()).collect();
                assert_eq!(joined, transcode(&t, &input).unwrap().to_vec());
            }
        }
    }

    #[test]
    fn plain_scan_matches_bytewise() {
        let samples: [&[u8]; 8] = [
            b"",
            b"abcdefgh",
            b"abcdefghi\\",
            b"abcdefgh\"ijk",
            b"abc\x01defghijk",
            b"\xc3\xbcabcdefgh",
            b"0123456789abcdef~",
            b"zzzzzzz\x7f",
        ];
        for s in samples {
            for json in [false, true] {
                let want =
                    s.iter().all(|&b| b < 0x80 && b != b'\\' && b != b'"' && (!json || b >= 0x20));
                assert_eq!(plain(s, json), want, "{s:?} {json}");
            }
        }
        for b in 0..=255u8 {
            let mut s = *b"abcdefghijklmnop";
            s[9] = b;
            let want = b < 0x80 && b != b'\\' && b != b'"';
            assert_eq!(plain(&s, false), want, "{b}");
            assert_eq!(plain(&s, true), want && b >= 0x20, "{b}");
        }
    }

    #[test]
    fn json_numbers() {
        for ok in ["0", "-0", "12", "1.5", "-0.25", "1e10", "1E+10", "1.5e-07"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "+1", "NaN", "1.2.3", "0x10"] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }
}
