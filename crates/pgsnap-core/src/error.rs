//! The error type shared by every pgsnap crate.

/// A boxed error from a backend, kept as a source so callers can downcast it
/// (for example to `tokio_postgres::Error` to read its SQLSTATE).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the coordinator and of the `Source`/`Sink`/`OffsetResolver` traits.
///
/// Backend crates keep their own detailed error enums and convert into this one in a single
/// place, deciding there which failures are [transient](Error::is_retryable).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A failure that may go away when the operation is retried (connection reset, timeout,
    /// server busy). The coordinator retries the chunk while the snapshot lives.
    #[error("{backend}: transient failure: {source}")]
    Transient {
        /// The backend that failed (`postgres`, `files`, `starrocks`, ...).
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A failure confined to one table or chunk (bad data, permission on that table, ...).
    /// Other tables go on; the table is reported failed.
    #[error("{backend}: {source}")]
    Backend {
        /// The backend that failed.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A sink failure that no retry and no other table can get past (disk full, permission
    /// on the output, rejected credentials). The run stops.
    #[error("sink {backend} cannot continue: {source}")]
    SinkFatal {
        /// The sink that failed.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The exported snapshot can no longer be imported (its holder ended), or it is not the
    /// snapshot a resumed run started with. The run stops.
    #[error("snapshot {snapshot:?} is lost or not importable: {reason}")]
    SnapshotLost {
        /// The snapshot name.
        snapshot: String,
        /// What happened and what to do.
        reason: String,
    },
    /// A check before copying failed: connection, privileges, server settings, selection.
    #[error("preflight failed: {0}")]
    Preflight(String),
    /// Invalid options or arguments.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The run state (manifest) cannot be used.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The manifest file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A local I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A transient failure outlived the retry budget.
    #[error("{what}: gave up after {attempts} attempts: {source}")]
    RetriesExhausted {
        /// The chunk or operation retried.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<Error>,
    },
    /// A resumed run asks for other work than the interrupted run recorded.
    #[error(
        "resuming with another {option} than the interrupted run (was {was}, now {now}): resume \
         with the original options, or start a new run elsewhere"
    )]
    ResumeMismatch {
        /// The option that differs: `split_by`, `chunk_size`, `include`, `exclude`, `format`,
        /// `compression` or `sink`.
        option: &'static str,
        /// What the interrupted run used.
        was: String,
        /// What the resume asks for.
        now: String,
    },
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The backend does not support the operation.
    #[error("{operation} is not supported by {backend}")]
    NotSupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
}

impl Error {
    /// Whether retrying the same operation may succeed.
    ///
    /// # Example
    /// ```
    /// use pgsnap_core::Error;
    /// let e = Error::Transient { backend: "files", source: "connection reset".into() };
    /// assert!(e.is_retryable());
    /// assert!(!Error::Cancelled.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether the error ends the whole run rather than one table.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::SinkFatal { .. }
                | Self::SnapshotLost { .. }
                | Self::Preflight(_)
                | Self::Config(_)
                | Self::Manifest { .. }
                | Self::Cancelled
        ) || matches!(self, Self::RetriesExhausted { source, .. } if source.is_fatal())
    }

    /// Wraps an I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// The innermost pgsnap error (looks through [`Error::RetriesExhausted`]).
    pub fn root(&self) -> &Error {
        match self {
            Self::RetriesExhausted { source, .. } => source.root(),
            other => other,
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
