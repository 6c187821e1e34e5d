//! The shared `Sink` conformance suite, for every compression and for CSV.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use pgsnap_core::testing::{SinkProbe, SinkUnderTest, sink_conformance};
use pgsnap_core::{Chunk, DataFormat, Sink};
use pgsnap_sink_file::{Compression, FileSinkBuilder, read_chunk_file};
use tempfile::TempDir;

use crate::{chunk_files, temp_files};

/// Reads chunk files back from disk, decompressing by extension; counts final files only.
struct FileProbe {
    out: PathBuf,
}

#[async_trait]
impl SinkProbe for FileProbe {
    async fn read_back(&self, chunk: &Chunk) -> Option<Bytes> {
        let files = chunk_files(&self.out, chunk);
        assert!(files.len() <= 1, "several files for {}: {files:?}", chunk.label());
        let path = files.into_iter().next()?;
        Some(Bytes::from(read_chunk_file(&path).expect("read back")))
    }

    async fn copies(&self, chunk: &Chunk) -> usize {
        chunk_files(&self.out, chunk).len()
    }
}

async fn run_suite(format: DataFormat, compression: Compression) {
    let dirs: Arc<Mutex<Vec<TempDir>>> = Arc::default();
    let keep = Arc::clone(&dirs);
    sink_conformance(move || {
        let keep = Arc::clone(&keep);
        async move {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let sink = FileSinkBuilder::new(&out)
                .with_format(format)
                .with_compression(compression)
                .build()
                .unwrap();
            keep.lock().unwrap().push(dir);
            let sink: Arc<dyn Sink> = Arc::new(sink);
            (sink, Box::new(FileProbe { out }) as Box<dyn SinkProbe>) as SinkUnderTest
        }
    })
    .await;
    let dirs = dirs.lock().unwrap();
    assert_eq!(dirs.len(), 7, "one sink per case");
    for d in dirs.iter() {
        let left = temp_files(d.path());
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }
}

#[tokio::test]
async fn conformance_uncompressed() {
    run_suite(DataFormat::Text, Compression::None).await;
}

#[tokio::test]
async fn conformance_zstd() {
    run_suite(DataFormat::Text, Compression::Zstd { level: 3 }).await;
}

#[tokio::test]
async fn conformance_gzip() {
    run_suite(DataFormat::Text, Compression::Gzip { level: 6 }).await;
}

#[tokio::test]
async fn conformance_csv() {
    run_suite(DataFormat::Csv, Compression::None).await;
}

/// The same suite on a runtime with several workers, as the CLI runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_csv_zstd_multithreaded_runtime() {
    run_suite(DataFormat::Csv, Compression::Zstd { level: 1 }).await;
}
