//! The crate's error type and the one place where I/O failures are classified.

use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use pgsnap_core::ErrorKind;

/// The backend name used in [`pgsnap_core::Error`] values from this crate.
pub(crate) const BACKEND: &str = "files";

/// Errors of the file sink: invalid configuration, and I/O failures naming the path.
///
/// Every value converts into [`pgsnap_core::Error`]; that conversion decides, in one place,
/// whether an I/O failure ends the run, fails the table, or may be retried (see
/// [`Error::Io`]). The converted error keeps this one as its source, so callers can downcast
/// to it and reach the [`io::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A compression spec that is not `none`, `zstd[:<level>]` or `gzip[:<level>]`.
    #[error("unknown compression {0:?}: expected none, zstd, zstd:<level>, gzip or gzip:<level>")]
    UnknownCompression(String),
    /// A compression level outside the codec's range.
    #[error("{codec} level {level} is out of range {}..={}", .range.start(), .range.end())]
    InvalidLevel {
        /// `zstd` or `gzip`.
        codec: &'static str,
        /// The level asked for.
        level: i64,
        /// The levels the codec accepts.
        range: RangeInclusive<i64>,
    },
    /// A verify mode that is not `size` or `checksum`.
    #[error("unknown verify mode {0:?}: expected size or checksum")]
    UnknownVerifyMode(String),
    /// Another sink (another run, in this or another process) is writing to the same output
    /// directory. Converted into [`Config`](pgsnap_core::ErrorKind::Config): choose another
    /// directory, or wait for that run to end.
    #[error(
        "{} is in use by another pgsnap run (it holds the directory's lock); wait for it to end or choose another output directory",
        .0.display()
    )]
    Busy(PathBuf),
    /// A file system operation failed.
    ///
    /// Converted into [`pgsnap_core::Error`] as:
    /// - [`SinkUnavailable`](pgsnap_core::ErrorKind::SinkUnavailable) for no space (`ENOSPC`), quota exceeded
    ///   (`EDQUOT`), no permission (`EACCES`, `EPERM`) and read-only file system (`EROFS`):
    ///   no retry and no other table can get past those;
    /// - [`Sink`](pgsnap_core::ErrorKind::Sink), temporary, for interrupted, would-block
    ///   and timed-out operations;
    /// - [`Sink`](pgsnap_core::ErrorKind::Sink) (the table fails, the run goes on) for
    ///   anything else.
    #[error("{op} {}: {source}{}", .path.display(), hint(.source))]
    Io {
        /// What was being done, e.g. `cannot create directory`.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an I/O failure affects a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The run cannot go on.
    Fatal,
    /// Retrying may work.
    Transient,
    /// The table fails; other tables go on.
    Table,
}

/// Classifies an I/O error (the `parse_error` of this backend).
pub(crate) fn classify(e: &io::Error) -> Class {
    use io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::PermissionDenied | K::ReadOnlyFilesystem => {
            Class::Fatal
        }
        K::Interrupted | K::WouldBlock | K::TimedOut => Class::Transient,
        _ => Class::Table,
    }
}

fn hint(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded => {
            " (the file system of the output directory is full or over quota: free space or \
             choose another output directory, then resume)"
        }
        K::PermissionDenied => {
            " (no permission: let the user running pgsnap write to the output directory or \
             choose another output directory, then resume)"
        }
        K::ReadOnlyFilesystem => {
            " (the output directory is on a read-only file system: choose another output \
             directory)"
        }
        _ => "",
    }
}

impl From<Error> for pgsnap_core::Error {
    fn from(e: Error) -> Self {
        match &e {
            Error::Io { source, .. } => match classify(source) {
                Class::Fatal => Self::from_backend(ErrorKind::SinkUnavailable, BACKEND, e),
                Class::Transient => Self::from_backend(ErrorKind::Sink, BACKEND, e).set_temporary(),
                Class::Table => Self::from_backend(ErrorKind::Sink, BACKEND, e),
            },
            Error::UnknownCompression(_)
            | Error::InvalidLevel { .. }
            | Error::UnknownVerifyMode(_)
            | Error::Busy(_) => Self::config(e.to_string()),
        }
    }
}

/// Re-classifies a [`ErrorKind::Io`](pgsnap_core::ErrorKind::Io) error (from `pgsnap_core::checkpoint` helpers) the
/// way this crate classifies its own I/O failures.
pub(crate) fn reclassify(
    e: pgsnap_core::Error,
    op: &'static str,
    path: PathBuf,
) -> pgsnap_core::Error {
    match e.into_io() {
        Ok((_, source)) => Error::io(op, path, source).into(),
        Err(other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(kind: io::ErrorKind) -> pgsnap_core::Error {
        Error::io("cannot write", "/out/public.t/00000.copy", io::Error::from(kind)).into()
    }

    #[test]
    fn kinds_are_classified() {
        use io::ErrorKind as K;
        for k in [K::StorageFull, K::QuotaExceeded, K::PermissionDenied, K::ReadOnlyFilesystem] {
            let e = convert(k);
            assert_eq!(e.kind(), ErrorKind::SinkUnavailable, "{k:?}: {e:?}");
            assert!(e.is_fatal());
            assert!(e.to_string().contains("/out/public.t/00000.copy"), "{e}");
            assert!(e.to_string().contains("choose another output directory"), "{e}");
        }
        for k in [K::Interrupted, K::WouldBlock, K::TimedOut] {
            let e = convert(k);
            assert!(e.is_temporary(), "{k:?}: {e:?}");
        }
        for k in [K::NotFound, K::InvalidData, K::NotADirectory, K::Other] {
            let e = convert(k);
            assert_eq!(e.kind(), ErrorKind::Sink, "{k:?}: {e:?}");
            assert!(!e.is_fatal() && !e.is_temporary());
        }
    }

    /// The errno values the brief names, as the OS reports them.
    #[cfg(target_os = "linux")]
    #[test]
    fn errnos_are_classified() {
        // ENOSPC, EDQUOT, EACCES, EPERM, EROFS
        for errno in [28, 122, 13, 1, 30] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(classify(&e), Class::Fatal, "errno {errno}: {e}");
        }
        // EINTR, EAGAIN, ETIMEDOUT
        for errno in [4, 11, 110] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(classify(&e), Class::Transient, "errno {errno}: {e}");
        }
        // EIO, ENOTDIR, EEXIST
        for errno in [5, 20, 17] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(classify(&e), Class::Table, "errno {errno}: {e}");
        }
    }

    #[test]
    fn source_chain_reaches_the_io_error() {
        let e = convert(io::ErrorKind::StorageFull);
        let inner = std::error::Error::source(&e).unwrap();
        let ours = inner.downcast_ref::<Error>().unwrap();
        assert!(matches!(ours, Error::Io { op: "cannot write", .. }));
        let io = std::error::Error::source(ours).unwrap().downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn config_errors_convert_to_config() {
        let e: pgsnap_core::Error = Error::UnknownCompression("lz4".into()).into();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("lz4"), "{e}");
    }
}
