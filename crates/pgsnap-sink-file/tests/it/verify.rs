//! `chunk_intact`: Size and Checksum modes against missing, truncated and corrupted files.

use pgsnap_core::manifest::ManifestChunk;
use pgsnap_core::{Chunk, ChunkInspector, DataFormat, Sink, TableName};
use pgsnap_sink_file::{Compression, FileSink, FileSinkBuilder, VerifyMode};

use crate::{chunk, rows, stream_of};

/// Writes a chunk and returns the manifest record the coordinator would keep for it.
async fn written(sink: &FileSink, c: &Chunk) -> ManifestChunk {
    let content = rows("verify", 2000);
    let mut i = ChunkInspector::new(sink.format());
    i.update(&content);
    let stats = i.finish();
    let receipt = sink.write_chunk(c, stream_of(content, 100), &Default::default()).await.unwrap();
    ManifestChunk {
        id: c.id,
        relation: c.relation.clone(),
        range: c.range.clone(),
        path: receipt.path,
        rows: stats.rows,
        bytes: stats.bytes,
        checksum: Some(stats.checksum),
        stored_bytes: receipt.stored_bytes,
        estimated_bytes: 0,
        attempts: 1,
        done: true,
        snapshot: None,
        load: None,
    }
}

fn sink(dir: &std::path::Path, compression: Compression, verify: VerifyMode) -> FileSink {
    FileSinkBuilder::new(dir)
        .with_compression(compression)
        .with_verify_on_resume(verify)
        .build()
        .unwrap()
}

const COMPRESSIONS: [Compression; 3] =
    [Compression::None, Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 }];
const MODES: [VerifyMode; 2] = [VerifyMode::Size, VerifyMode::Checksum];

#[tokio::test]
async fn intact_files_pass_both_modes() {
    for compression in COMPRESSIONS {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let s = sink(dir.path(), compression, mode);
            let c = chunk(&TableName::new("public", "t"), 1);
            let rec = written(&s, &c).await;
            assert!(s.chunk_intact(&c, &rec).await.unwrap(), "{compression} {mode}");
        }
    }
}

#[tokio::test]
async fn missing_files_are_not_intact() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path(), Compression::None, mode);
        let c = chunk(&TableName::new("public", "t"), 1);
        let rec = written(&s, &c).await;
        std::fs::remove_file(s.chunk_path(&c)).unwrap();
        assert!(!s.chunk_intact(&c, &rec).await.unwrap(), "{mode}");
        // The whole table directory gone: still `false`, not an error.
        std::fs::remove_dir_all(dir.path().join("public.t")).unwrap();
        assert!(!s.chunk_intact(&c, &rec).await.unwrap(), "{mode}");
        // A file where the table directory should be: also missing.
        std::fs::write(dir.path().join("public.t"), b"").unwrap();
        assert!(!s.chunk_intact(&c, &rec).await.unwrap(), "{mode}");
    }
}

#[tokio::test]
async fn truncated_files_are_not_intact() {
    for compression in COMPRESSIONS {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let s = sink(dir.path(), compression, mode);
            let c = chunk(&TableName::new("public", "t"), 1);
            let rec = written(&s, &c).await;
            let f = std::fs::OpenOptions::new().write(true).open(s.chunk_path(&c)).unwrap();
            f.set_len(rec.stored_bytes / 2).unwrap();
            assert!(!s.chunk_intact(&c, &rec).await.unwrap(), "{compression} {mode}");
        }
    }
}

#[tokio::test]
async fn same_size_corruption_is_caught_by_checksum_only() {
    for compression in COMPRESSIONS {
        let dir = tempfile::tempdir().unwrap();
        let s = sink(dir.path(), compression, VerifyMode::Checksum);
        let c = chunk(&TableName::new("public", "t"), 1);
        let rec = written(&s, &c).await;
        let path = s.chunk_path(&c);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            !s.chunk_intact(&c, &rec).await.unwrap(),
            "{compression}: checksum mode missed the corruption"
        );
        // Size mode only looks at the size: it trusts this file (documented).
        drop(s);
        let size_only = sink(dir.path(), compression, VerifyMode::Size);
        assert!(size_only.chunk_intact(&c, &rec).await.unwrap(), "{compression}");
    }
}

#[tokio::test]
async fn a_record_that_does_not_match_is_not_intact() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink(dir.path(), Compression::None, VerifyMode::Checksum);
    let c = chunk(&TableName::new("public", "t"), 1);
    let rec = written(&s, &c).await;
    // Another path than this sink writes (e.g. the manifest of another layout).
    let mut other = rec.clone();
    other.path = Some("elsewhere/00001.copy".into());
    assert!(!s.chunk_intact(&c, &other).await.unwrap());
    other.path = None;
    assert!(!s.chunk_intact(&c, &other).await.unwrap());
    // Another checksum, or no checksum recorded.
    let mut other = rec.clone();
    other.checksum = Some("0000000000000000".into());
    assert!(!s.chunk_intact(&c, &other).await.unwrap());
    other.checksum = None;
    assert!(!s.chunk_intact(&c, &other).await.unwrap());
    // Another row count.
    let mut other = rec.clone();
    other.rows += 1;
    assert!(!s.chunk_intact(&c, &other).await.unwrap());
    assert!(s.chunk_intact(&c, &rec).await.unwrap());
    assert_eq!(s.format(), DataFormat::Text);
    // A sink with another compression looks for another file (one sink per directory at a
    // time: the first lets go of it).
    drop(s);
    let zs = sink(dir.path(), Compression::Zstd { level: 3 }, VerifyMode::Size);
    assert!(!zs.chunk_intact(&c, &rec).await.unwrap());
}
