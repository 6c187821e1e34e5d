//! Table directory names: hostile names map to distinct, safe names; the layout on disk.

use std::collections::HashSet;
use std::sync::Arc;

use pgsnap_core::{
    CheckpointStore, Coordinator, DataFormat, ManifestStore, MemorySource, RunStatus, Sink,
    TableName,
};
use pgsnap_sink_file::{
    Compression, FileSinkBuilder, MAX_TABLE_DIR_LEN, chunk_file_name, read_chunk_file,
    table_dir_name,
};

use crate::{chunk, rows, stream_of};

fn hostile() -> Vec<TableName> {
    let long = "x".repeat(300);
    let mut v = vec![
        TableName::new("public", "t"),
        TableName::new("public", "T"),
        TableName::new("Public", "t"),
        TableName::new("public.t", ""),
        TableName::new("public", ".t"),
        TableName::new("public.", "t"),
        TableName::new("pub", "lic.t"),
        TableName::new("public", "t.copy"),
        TableName::new("..", ".."),
        TableName::new(".", "."),
        TableName::new("", ""),
        TableName::new("a", "b/c"),
        TableName::new("a/b", "c"),
        TableName::new("a", "../../etc/passwd"),
        TableName::new("a", "b\\c"),
        TableName::new("a", "with space"),
        TableName::new("a", "with%20space"),
        TableName::new("a", "with%2520space"),
        TableName::new("a", "\"quoted\""),
        TableName::new("a", "it's"),
        TableName::new("a", "x\"; DROP TABLE users; --"),
        TableName::new("a", "Robert'); DROP TABLE students;--"),
        TableName::new("a", "nul\0byte"),
        TableName::new("a", "tab\tnewline\n"),
        TableName::new("a", "été"),
        TableName::new("a", "e\u{301}te\u{301}"), // decomposed é: other bytes, other dir
        TableName::new("a", "日本語"),
        TableName::new("a", "🐘"),
        TableName::new("a", "~tilde"),
        TableName::new("a", "*?<>|:"),
        TableName::new("a", "-leading-dash"),
        TableName::new("a", "CON"),
        TableName::new("manifest", "json"),
        TableName::new("MANIFEST", "JSON"),
        TableName::new("%6Danifest", "json"),
        TableName::new(long.clone(), "t"),
        TableName::new(long.clone(), "u"),
        TableName::new("s", format!("{long}a")),
        TableName::new("s", format!("{long}b")),
        TableName::new("s", "é".repeat(150)),
        TableName::new("s", format!("{}a", "é".repeat(150))),
    ];
    v.sort();
    v.dedup();
    v
}

#[test]
fn hostile_names_map_to_distinct_safe_names() {
    let names = hostile();
    let mut seen = HashSet::new();
    for t in &names {
        let d = table_dir_name(t);
        assert!(!d.is_empty() && d != "." && d != "..", "{t:?} -> {d:?}");
        assert!(d.len() <= MAX_TABLE_DIR_LEN, "{t:?} -> {} bytes", d.len());
        assert!(
            d.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-%.~".contains(&b)),
            "{t:?} -> {d:?}"
        );
        assert!(!d.starts_with('.'), "{t:?} -> {d:?}");
        if !d.contains('~') {
            assert_eq!(d.matches('.').count(), 1, "{t:?} -> {d:?}");
        }
        assert!(seen.insert(d.clone()), "{t:?} collides on {d:?}");
    }
    assert_eq!(seen.len(), names.len());
}

#[test]
fn encoding_examples() {
    let cases = [
        (("public", "orders"), "public.orders"),
        (("public", "Order_Items-2"), "public.Order_Items-2"),
        (("public", "a.b"), "public.a%2Eb"),
        (("a.b", "c"), "a%2Eb.c"),
        (("a", "50%"), "a.50%25"),
        (("a", "b/c"), "a.b%2Fc"),
        (("..", ".."), "%2E%2E.%2E%2E"),
        (("a", "x y"), "a.x%20y"),
        (("public", "Order Items"), "public.Order%20Items"),
        (("a", "\"q\""), "a.%22q%22"),
        (("a", "é"), "a.%C3%A9"),
        (("a", "~"), "a.%7E"),
        (("", ""), "%.%"),
        (("", "t"), "%.t"),
        (("manifest", "json"), "%6Danifest.json"),
        (("Manifest", "JSON"), "%4Danifest.JSON"),
        (("manifest", "json2"), "manifest.json2"),
    ];
    for ((s, n), want) in cases {
        assert_eq!(table_dir_name(&TableName::new(s, n)), want, "{s:?}.{n:?}");
    }
}

#[test]
fn long_names_get_a_hash() {
    let a = table_dir_name(&TableName::new("s", format!("{}a", "x".repeat(250))));
    let b = table_dir_name(&TableName::new("s", format!("{}b", "x".repeat(250))));
    assert_ne!(a, b);
    for d in [&a, &b] {
        assert_eq!(d.len(), MAX_TABLE_DIR_LEN);
        let (head, hash) = d.split_once('~').unwrap();
        assert_eq!(head, format!("s.{}", "x".repeat(181)));
        assert_eq!(hash.len(), 16);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    // Exactly at the limit: kept as is.
    let at = TableName::new("s", "x".repeat(MAX_TABLE_DIR_LEN - 2));
    assert_eq!(table_dir_name(&at).len(), MAX_TABLE_DIR_LEN);
    assert!(!table_dir_name(&at).contains('~'));
}

#[test]
fn chunk_file_names() {
    use pgsnap_core::ChunkId;
    let z = Compression::Zstd { level: 3 };
    let g = Compression::Gzip { level: 6 };
    assert_eq!(chunk_file_name(ChunkId(0), DataFormat::Text, Compression::None), "00000.copy");
    assert_eq!(chunk_file_name(ChunkId(42), DataFormat::Text, z), "00042.copy.zst");
    assert_eq!(chunk_file_name(ChunkId(42), DataFormat::Csv, g), "00042.csv.gz");
    assert_eq!(chunk_file_name(ChunkId(123_456), DataFormat::Csv, Compression::None), "123456.csv");
}

/// Every hostile name can be written to and read back from a real directory, and nothing
/// lands outside the output directory.
#[tokio::test]
async fn hostile_names_write_inside_out() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let sink = FileSinkBuilder::new(&out)
        .with_compression(Compression::Zstd { level: 1 })
        .with_fsync(false)
        .build()
        .unwrap();
    let names = hostile();
    for (i, t) in names.iter().enumerate() {
        let c = chunk(t, 0);
        let content = rows(&format!("table {i}"), 10);
        let receipt = sink
            .write_chunk(&c, stream_of(content.clone(), 50), &Default::default())
            .await
            .unwrap();
        assert_eq!(receipt.path.as_deref(), Some(sink.relative_path(&c).as_str()));
        assert_eq!(read_chunk_file(out.join(receipt.path.unwrap())).unwrap(), content);
    }
    let dirs: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(dirs.len(), names.len(), "one directory per table, all inside out");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
}

/// The receipts end up in `manifest.json` as paths relative to the output directory, and a
/// resume trusts intact files and redoes missing ones.
#[tokio::test]
async fn manifest_records_relative_paths_and_resume_uses_them() {
    let out = tempfile::tempdir().unwrap();
    let sink: Arc<dyn Sink> = Arc::new(
        FileSinkBuilder::new(out.path())
            .with_compression(Compression::Gzip { level: 1 })
            .build()
            .unwrap(),
    );
    let (source, mut manifest) = MemorySource::example(4, 50);
    manifest.compression = sink.description().compression;
    assert_eq!(manifest.compression, "gzip");
    let store: Arc<dyn CheckpointStore> = Arc::new(ManifestStore::new(out.path()));
    let report = Coordinator::new(Arc::new(source.clone()), Arc::clone(&sink), Arc::clone(&store))
        .run(manifest)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Ok);
    let m = store.load().await.unwrap().unwrap();
    for c in &m.tables[0].chunks {
        let path = c.path.as_deref().unwrap();
        assert_eq!(path, format!("public.t/{}.copy.gz", c.id));
        let on_disk = std::fs::metadata(out.path().join(path)).unwrap().len();
        assert_eq!(on_disk, c.stored_bytes);
        let content = read_chunk_file(out.path().join(path)).unwrap();
        assert_eq!(
            Some(bytes::Bytes::from(content)),
            source.content(&m.tables[0].schema.name, c.id)
        );
    }
    // Resume with everything intact: nothing is copied.
    let again = Coordinator::new(Arc::new(source.clone()), Arc::clone(&sink), Arc::clone(&store))
        .run(m.clone())
        .await
        .unwrap();
    assert_eq!((again.status, again.chunks_copied), (RunStatus::Ok, 0));
    // Lose one file: the resume copies exactly that chunk.
    std::fs::remove_file(out.path().join(m.tables[0].chunks[2].path.as_deref().unwrap())).unwrap();
    let again = Coordinator::new(Arc::new(source), sink, store).run(m).await.unwrap();
    assert_eq!((again.status, again.chunks_copied), (RunStatus::Ok, 1));
}

/// A table named like the manifest file gets its own directory beside `manifest.json`.
#[tokio::test]
async fn table_named_like_the_manifest_does_not_collide() {
    let out = tempfile::tempdir().unwrap();
    let sink: Arc<dyn Sink> = Arc::new(FileSinkBuilder::new(out.path()).build().unwrap());
    let (source, mut manifest) = MemorySource::example(2, 5);
    let t = TableName::new("manifest", "json");
    manifest.tables[0].schema.name = t.clone();
    for c in &mut manifest.tables[0].chunks {
        c.relation = t.clone();
        let content = source.content(&TableName::new("public", "t"), c.id).unwrap();
        source.insert(t.clone(), c.id, content);
    }
    let store: Arc<dyn CheckpointStore> = Arc::new(ManifestStore::new(out.path()));
    let report =
        Coordinator::new(Arc::new(source), sink, Arc::clone(&store)).run(manifest).await.unwrap();
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.tables[0].error);
    assert!(out.path().join("manifest.json").is_file());
    assert!(out.path().join("%6Danifest.json/00001.copy").is_file());
    assert!(store.load().await.unwrap().is_some());
}
