//! Crash safety: nothing half-written under a final name, atomic replacement, cleanup.

use std::time::Duration;

use pgsnap_core::{Sink, TableName};
use pgsnap_sink_file::{Compression, FileSinkBuilder, read_chunk_file, table_dir_name};

use crate::{all_files, chunk, failing_stream, rows, stream_of, temp_files};

fn injected() -> pgsnap_core::Error {
    pgsnap_core::Error::from_backend(
        pgsnap_core::ErrorKind::Source,
        "test",
        "connection reset mid-chunk",
    )
    .set_temporary()
}

#[tokio::test]
async fn stream_error_midway_leaves_no_file() {
    for compression in
        [Compression::None, Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 }]
    {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSinkBuilder::new(dir.path()).with_compression(compression).build().unwrap();
        let t = TableName::new("public", "t");
        let c = chunk(&t, 0);
        // Large enough that the writer has created and written its temp file.
        let err = sink
            .write_chunk(&c, failing_stream(rows("x", 50_000), injected()), &Default::default())
            .await
            .unwrap_err();
        // The stream's error comes back unchanged.
        assert!(err.is_temporary() && err.backend() == Some("test"), "{err:?}");
        assert_eq!(err.to_string(), injected().to_string());
        assert!(!sink.chunk_path(&c).exists(), "{compression}: final file exists");
        assert_eq!(all_files(dir.path()), Vec::<std::path::PathBuf>::new(), "{compression}");
    }
}

#[tokio::test]
async fn failed_rewrite_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSinkBuilder::new(dir.path()).build().unwrap();
    let c = chunk(&TableName::new("public", "t"), 3);
    let first = rows("first", 100);
    sink.write_chunk(&c, stream_of(first.clone(), 64), &Default::default()).await.unwrap();
    sink.write_chunk(&c, failing_stream(rows("second", 20_000), injected()), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(read_chunk_file(sink.chunk_path(&c)).unwrap(), first);
    assert!(temp_files(dir.path()).is_empty());
}

#[tokio::test]
async fn rewrite_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSinkBuilder::new(dir.path())
        .with_compression(Compression::Zstd { level: 3 })
        .build()
        .unwrap();
    let c = chunk(&TableName::new("public", "t"), 0);
    let r1 = sink
        .write_chunk(&c, stream_of(rows("first", 1000), 100), &Default::default())
        .await
        .unwrap();
    let second = rows("second, longer", 3000);
    let r2 =
        sink.write_chunk(&c, stream_of(second.clone(), 100), &Default::default()).await.unwrap();
    assert_eq!(r1.path, r2.path);
    assert_ne!(r1.stored_bytes, r2.stored_bytes);
    assert_eq!(std::fs::metadata(sink.chunk_path(&c)).unwrap().len(), r2.stored_bytes);
    assert_eq!(read_chunk_file(sink.chunk_path(&c)).unwrap(), second);
    assert_eq!(all_files(dir.path()), vec![sink.chunk_path(&c)]);
}

#[tokio::test]
async fn readers_see_old_or_new_content_never_a_mix() {
    // While a rewrite is in flight, the final name keeps the old, complete content.
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSinkBuilder::new(dir.path()).build().unwrap();
    let c = chunk(&TableName::new("public", "t"), 0);
    let old = rows("old", 100);
    sink.write_chunk(&c, stream_of(old.clone(), 100), &Default::default()).await.unwrap();
    let (tx, rx) = futures::channel::mpsc::unbounded::<pgsnap_core::Result<bytes::Bytes>>();
    let sink2 = sink.clone();
    let c2 = c.clone();
    let write =
        tokio::spawn(
            async move { sink2.write_chunk(&c2, Box::pin(rx), &Default::default()).await },
        );
    let new = rows("new", 20_000);
    tx.unbounded_send(Ok(new.slice(..new.len() / 2))).unwrap();
    // Wait for the temp file to show up, then look at the final name.
    wait_for(|| !temp_files(dir.path()).is_empty()).await;
    assert_eq!(read_chunk_file(sink.chunk_path(&c)).unwrap(), old);
    tx.unbounded_send(Ok(new.slice(new.len() / 2..))).unwrap();
    drop(tx);
    write.await.unwrap().unwrap();
    assert_eq!(read_chunk_file(sink.chunk_path(&c)).unwrap(), new);
    assert!(temp_files(dir.path()).is_empty());
}

#[tokio::test]
async fn cancelled_write_removes_its_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSinkBuilder::new(dir.path()).build().unwrap();
    let c = chunk(&TableName::new("public", "t"), 0);
    let (tx, rx) = futures::channel::mpsc::unbounded::<pgsnap_core::Result<bytes::Bytes>>();
    tx.unbounded_send(Ok(rows("x", 10_000))).unwrap();
    // The stream never ends: the write is dropped by the timeout, as a cancelled run would.
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        sink.write_chunk(&c, Box::pin(rx), &Default::default()),
    )
    .await;
    assert!(r.is_err(), "the write should still be waiting");
    wait_for(|| temp_files(dir.path()).is_empty()).await;
    assert!(!sink.chunk_path(&c).exists());
    drop(tx);
}

#[test]
fn stale_temp_files_are_removed_on_build() {
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join(table_dir_name(&TableName::new("public", "t")));
    std::fs::create_dir_all(&tdir).unwrap();
    let stale = [
        ".00000.copy.tmp-0b4c8a34-7d6e-4b8f-9a39-3c1f8f3e2a10",
        ".00001.copy.zst.tmp-8f0e2c1a-1111-4b8f-9a39-3c1f8f3e2a10",
    ];
    let kept = [
        "00000.copy",
        ".keep",
        "notes.tmp-0b4c8a34-7d6e-4b8f-9a39-3c1f8f3e2a10",
        ".00002.copy.tmp-not-a-uuid",
    ];
    for n in stale.iter().chain(&kept) {
        std::fs::write(tdir.join(n), b"partial").unwrap();
    }
    // Temp-looking files directly in <out> belong to others (the manifest store).
    let manifest_tmp = dir.path().join(".manifest.json.tmp-0b4c8a34-7d6e-4b8f-9a39-3c1f8f3e2a10");
    std::fs::write(&manifest_tmp, b"{}").unwrap();

    FileSinkBuilder::new(dir.path()).build().unwrap();

    for n in stale {
        assert!(!tdir.join(n).exists(), "{n} not removed");
    }
    for n in kept {
        assert!(tdir.join(n).exists(), "{n} removed");
    }
    assert!(manifest_tmp.exists());
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition not met in 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
