//! Integration tests of the file sink: the shared conformance suite, crash safety, layout,
//! resume verification and error classification.

mod conformance;
mod crash;
mod errors;
mod layout;
mod verify;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use pgsnap_core::{Chunk, ChunkId, ChunkRange, ChunkStream, TableName};
use pgsnap_sink_file::table_dir_name;

/// A chunk of `table` with id `id`.
pub(crate) fn chunk(table: &TableName, id: u32) -> Chunk {
    Chunk {
        table: table.clone(),
        relation: table.clone(),
        id: ChunkId(id),
        range: ChunkRange::All,
        columns: vec!["id".to_owned(), "v".to_owned()].into(),
        estimated_bytes: 0,
    }
}

/// `n` rows of COPY text.
pub(crate) fn rows(tag: &str, n: usize) -> Bytes {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("{i}\t{tag} row {i} \\t é\n"));
    }
    Bytes::from(s)
}

/// A stream of `content` in pieces of `piece` bytes.
pub(crate) fn stream_of(content: Bytes, piece: usize) -> ChunkStream {
    let parts: Vec<pgsnap_core::Result<Bytes>> = (0..content.len())
        .step_by(piece)
        .map(|i| Ok(content.slice(i..(i + piece).min(content.len()))))
        .collect();
    futures::stream::iter(parts).boxed()
}

/// A stream yielding `content` in pieces, then `error`.
pub(crate) fn failing_stream(content: Bytes, error: pgsnap_core::Error) -> ChunkStream {
    stream_of(content, 1000).chain(futures::stream::iter([Err(error)])).boxed()
}

/// Every file under `dir`, recursively.
pub(crate) fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Temporary files (`.<name>.tmp-<uuid>`) under `dir`.
pub(crate) fn temp_files(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with('.') && n.contains(".tmp-")
        })
        .collect()
}

/// Final (non-temporary) files of a chunk: `<out>/<table dir>/<id>.*`.
pub(crate) fn chunk_files(out: &Path, chunk: &Chunk) -> Vec<PathBuf> {
    let prefix = format!("{:05}.", chunk.id.0);
    all_files(&out.join(table_dir_name(&chunk.table)))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix))
        .collect()
}
