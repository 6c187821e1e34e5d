//! Error classification against real file system failures, and builder errors.

use pgsnap_core::{ErrorKind, Sink, TableName};
use pgsnap_sink_file::{Compression, Error, FileSinkBuilder, table_dir_name};

use crate::{chunk, rows, stream_of, temp_files};

/// The innermost error of this crate in a core error's source chain.
fn ours(e: &pgsnap_core::Error) -> &Error {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(ours) = c.downcast_ref::<Error>() {
            return ours;
        }
        cur = c.source();
    }
    panic!("no pgsnap_sink_file::Error in {e:?}")
}

/// A directory nobody may create entries in, root included: sysfs refuses `mkdir` with
/// EPERM whatever the permissions (chmod does not stop root, so it cannot be used here).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn unwritable_output_is_fatal_and_names_the_path() {
    let out = std::path::Path::new("/sys");
    assert!(out.join("kernel").is_dir(), "this test needs sysfs mounted at /sys");
    let sink = FileSinkBuilder::new(out).with_fsync(false).build().unwrap();
    let t = TableName::new("public", "pgsnap-test");
    let c = chunk(&t, 0);
    let err =
        sink.write_chunk(&c, stream_of(rows("x", 10), 10), &Default::default()).await.unwrap_err();
    assert!(err.kind() == ErrorKind::SinkUnavailable && err.backend() == Some("files"), "{err:?}");
    assert!(err.is_fatal());
    let msg = err.to_string();
    let dir = out.join(table_dir_name(&t));
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(msg.contains("choose another output directory"), "the message says what to do: {msg}");
    assert!(matches!(ours(&err), Error::Io { op: "cannot create directory", .. }));
    assert!(!dir.exists());
}

/// A regular file where a table directory should be fails that table, not the run, and the
/// message names the path.
#[tokio::test]
async fn file_in_place_of_table_dir_fails_the_table() {
    let out = tempfile::tempdir().unwrap();
    let t = TableName::new("public", "t");
    let blocker = out.path().join(table_dir_name(&t));
    std::fs::write(&blocker, b"not a directory").unwrap();
    let sink = FileSinkBuilder::new(out.path()).build().unwrap();
    let err = sink
        .write_chunk(&chunk(&t, 0), stream_of(rows("x", 1000), 100), &Default::default())
        .await
        .unwrap_err();
    assert!(err.kind() == ErrorKind::Sink && err.backend() == Some("files"), "{err:?}");
    assert!(!err.is_fatal() && !err.is_temporary());
    assert!(err.to_string().contains(&blocker.display().to_string()), "{err}");
    match ours(&err) {
        Error::Io { path, source, .. } => {
            assert!(path.starts_with(&blocker), "{path:?}");
            assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory);
        }
        other => panic!("{other:?}"),
    }
    // Another table is unaffected.
    let other = chunk(&TableName::new("public", "u"), 0);
    sink.write_chunk(&other, stream_of(rows("y", 10), 10), &Default::default()).await.unwrap();
    assert!(temp_files(out.path()).is_empty());
}

#[test]
fn output_that_is_a_file_fails_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::write(&out, b"").unwrap();
    let err = FileSinkBuilder::new(&out).build().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&out.display().to_string()), "{err}");
    let core: pgsnap_core::Error = err.into();
    assert_eq!(core.kind(), ErrorKind::Sink, "{core:?}");
}

#[test]
fn invalid_levels_fail_build() {
    let dir = tempfile::tempdir().unwrap();
    for c in [Compression::Zstd { level: 99 }, Compression::Gzip { level: 10 }] {
        let err = FileSinkBuilder::new(dir.path()).with_compression(c).build().unwrap_err();
        assert!(matches!(err, Error::InvalidLevel { .. }), "{err:?}");
        let core: pgsnap_core::Error = err.into();
        assert_eq!(core.kind(), ErrorKind::Config, "{core:?}");
    }
    let err = "snappy".parse::<Compression>().unwrap_err();
    assert!(err.to_string().contains("snappy"), "{err}");
    let err = "fast".parse::<pgsnap_sink_file::VerifyMode>().unwrap_err();
    assert!(matches!(err, Error::UnknownVerifyMode(_)), "{err:?}");
}

#[test]
fn description_and_accessors() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSinkBuilder::new(dir.path())
        .with_format(pgsnap_core::DataFormat::Csv)
        .with_compression(Compression::Gzip { level: 2 })
        .with_fsync(false)
        .build()
        .unwrap();
    let d = sink.description();
    assert_eq!(d.input_format, pgsnap_core::DataFormat::Csv);
    assert_eq!(d.compression, "gzip");
    assert_eq!(sink.name(), "files");
    assert_eq!(sink.out_dir(), dir.path());
    assert_eq!(sink.compression(), Compression::Gzip { level: 2 });
    assert!(!sink.fsync());
    assert_eq!(sink.verify_mode(), pgsnap_sink_file::VerifyMode::Size);
}

#[test]
fn one_writer_per_output_directory() {
    let out = tempfile::tempdir().unwrap();
    let first = FileSinkBuilder::new(out.path()).build().unwrap();
    let clone = first.clone();
    drop(first);
    // A clone keeps the lock.
    let e = FileSinkBuilder::new(out.path()).build().unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e:?}");
    assert!(e.to_string().contains("another pgsnap run"), "{e}");
    assert_eq!(pgsnap_core::Error::from(e).kind(), ErrorKind::Config);
    drop(clone);
    FileSinkBuilder::new(out.path()).build().expect("free again once every clone is dropped");
}
