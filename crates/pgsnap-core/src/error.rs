//! The error type shared by every pgsnap crate: *what* failed ([`ErrorKind`]) apart from
//! *whether to retry* ([`ErrorStatus`]), as OpenDAL's errors do.
//!
//! Backend crates keep their own detailed error enums and convert into this one in a single
//! place (`impl From<backend::Error> for pgsnap_core::Error`), deciding there the kind and
//! whether the failure is temporary. Callers (the coordinator, the `pgsnap` command, an
//! embedding service) decide from [`Error::kind`] and [`Error::status`], never by
//! downcasting a backend's error; the backend's error stays reachable as the
//! [source](std::error::Error::source) for its details (a SQLSTATE, an HTTP status).

use std::fmt;

/// A boxed error from a backend, kept as a source so callers can read its details.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What failed.
///
/// Whether a kind ends the whole run or only fails one table is [`ErrorKind::ends_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading from the source failed (a query, a `COPY`, the connection). The table fails.
    Source,
    /// The exported snapshot can no longer be imported (its holder ended), or it is not the
    /// snapshot a resumed run started with. The run stops.
    SnapshotLost,
    /// Writing one chunk to the sink failed (rows rejected, a value the target cannot hold,
    /// a load that failed). The table fails; other tables go on.
    Sink,
    /// The sink as a whole cannot go on: no space, rejected credentials, an unknown target
    /// database, an insecure redirect. The run stops.
    SinkUnavailable,
    /// The target's table does not fit the source's (missing, other columns, a type that
    /// cannot be mapped). The table fails.
    TargetSchema,
    /// Resolving or reading CDC positions (Kafka, Kafka Connect) failed.
    Offsets,
    /// A check before copying failed: connection, privileges, server settings, the
    /// target's tables. The run stops.
    Preflight,
    /// Invalid options or arguments. The run stops.
    Config,
    /// The run state (manifest) cannot be used. The run stops.
    Manifest,
    /// A resumed run asks for other work than the interrupted run recorded. The run stops.
    ResumeMismatch,
    /// A local I/O failure outside the sink (the manifest's file, for example).
    Io,
    /// The operation was cancelled. The run stops.
    Cancelled,
    /// The backend does not support the operation.
    NotSupported,
    /// Something that should not happen (a bug in a backend).
    Unexpected,
}

impl ErrorKind {
    /// Whether an error of this kind ends the whole run rather than one table.
    ///
    /// ```
    /// use pgsnap_core::ErrorKind;
    /// assert!(ErrorKind::SnapshotLost.ends_run());
    /// assert!(!ErrorKind::Sink.ends_run());
    /// ```
    pub fn ends_run(self) -> bool {
        matches!(
            self,
            Self::SnapshotLost
                | Self::SinkUnavailable
                | Self::Preflight
                | Self::Config
                | Self::Manifest
                | Self::ResumeMismatch
                | Self::Cancelled
        )
    }

    /// A short lower-case name (`sink_unavailable`, ...), for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::SnapshotLost => "snapshot_lost",
            Self::Sink => "sink",
            Self::SinkUnavailable => "sink_unavailable",
            Self::TargetSchema => "target_schema",
            Self::Offsets => "offsets",
            Self::Preflight => "preflight",
            Self::Config => "config",
            Self::Manifest => "manifest",
            Self::ResumeMismatch => "resume_mismatch",
            Self::Io => "io",
            Self::Cancelled => "cancelled",
            Self::NotSupported => "not_supported",
            Self::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether retrying may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ErrorStatus {
    /// Retrying the same operation will fail the same way.
    #[default]
    Permanent,
    /// Retrying may succeed (connection reset, timeout, server busy).
    Temporary,
    /// The failure was temporary, but it outlived the retry budget.
    Persistent,
}

/// Errors of the coordinator and of the `Source`/`Sink`/`OffsetResolver` traits.
///
/// # Example
/// ```
/// use pgsnap_core::{Error, ErrorKind, ErrorStatus};
/// let e = Error::new(ErrorKind::Sink, "connection reset").with_backend("files").set_temporary();
/// assert!(e.is_temporary());
/// assert_eq!(e.kind(), ErrorKind::Sink);
/// let e = e.set_persistent(3);
/// assert_eq!(e.status(), ErrorStatus::Persistent);
/// assert_eq!(e.to_string(), "files: gave up after 3 attempts: connection reset");
/// ```
pub struct Error {
    kind: ErrorKind,
    status: ErrorStatus,
    backend: Option<&'static str>,
    message: String,
    context: Vec<(&'static str, String)>,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` saying `message` (what failed and what to do), permanent.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: ErrorStatus::Permanent,
            backend: None,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// A backend's error of `kind`, permanent; its message is the source's.
    pub fn from_backend(
        kind: ErrorKind,
        backend: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::new(kind, "").with_backend(backend).with_source(source)
    }

    /// Names the backend (`postgres`, `files`, `starrocks`, `kafka`, ...).
    pub fn with_backend(mut self, backend: &'static str) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Keeps `source` as the cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Adds a piece of context (`table`, `chunk`, `label`, `snapshot`, ...), readable with
    /// [`Error::context`].
    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// Marks the error temporary: retrying may succeed.
    pub fn set_temporary(mut self) -> Self {
        self.status = ErrorStatus::Temporary;
        self
    }

    /// Marks a temporary error as outliving its retry budget after `attempts` attempts.
    pub fn set_persistent(mut self, attempts: u32) -> Self {
        self.status = ErrorStatus::Persistent;
        self.context.push(("attempts", attempts.to_string()));
        self
    }

    /// Changes what failed, keeping everything else (a sink's preparation reports its
    /// failures as a failed [`ErrorKind::Preflight`], for example).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// What failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying may help.
    pub fn status(&self) -> ErrorStatus {
        self.status
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_temporary(&self) -> bool {
        self.status == ErrorStatus::Temporary
    }

    /// Whether the error ends the whole run rather than one table
    /// ([`ErrorKind::ends_run`]).
    pub fn is_fatal(&self) -> bool {
        self.kind.ends_run()
    }

    /// The backend that failed, if a backend did.
    pub fn backend(&self) -> Option<&'static str> {
        self.backend
    }

    /// The message (empty when the source says it all).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The first context value under `key` (`attempts`, `snapshot`, `option`, `was`,
    /// `now`, `path`, ...).
    pub fn context(&self, key: &str) -> Option<&str> {
        self.context.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    /// How many attempts a [persistent](ErrorStatus::Persistent) error took.
    pub fn attempts(&self) -> Option<u32> {
        self.context("attempts").and_then(|a| a.parse().ok())
    }

    /// Invalid options or arguments.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// A check before copying failed.
    pub fn preflight(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Preflight, message)
    }

    /// The operation was cancelled.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }

    /// The snapshot `snapshot` is lost or not importable; `reason` says what happened and
    /// what to do.
    pub fn snapshot_lost(snapshot: impl Into<String>, reason: impl Into<String>) -> Self {
        let snapshot = snapshot.into();
        Self::new(
            ErrorKind::SnapshotLost,
            format!("snapshot {snapshot:?} is lost or not importable: {}", reason.into()),
        )
        .with_context("snapshot", snapshot)
    }

    /// The manifest at `path` cannot be used; `message` says what is wrong and what to do.
    pub fn manifest(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        Self::new(ErrorKind::Manifest, format!("manifest {path}: {}", message.into()))
            .with_context("path", path)
    }

    /// A resume asks for another `option` than the interrupted run (`was`, `now`).
    pub fn resume_mismatch(
        option: &'static str,
        was: impl Into<String>,
        now: impl Into<String>,
    ) -> Self {
        let (was, now) = (was.into(), now.into());
        Self::new(
            ErrorKind::ResumeMismatch,
            format!(
                "resuming with another {option} than the interrupted run (was {was}, now \
                 {now}): resume with the original options, or start a new run elsewhere"
            ),
        )
        .with_context("option", option)
        .with_context("was", was)
        .with_context("now", now)
    }

    /// A local I/O failure; `context` says what was being done, naming the path.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, context).with_source(source)
    }

    /// `operation` is not supported by `backend`.
    pub fn not_supported(backend: &'static str, operation: &'static str) -> Self {
        Self::new(ErrorKind::NotSupported, format!("{operation} is not supported"))
            .with_backend(backend)
    }

    /// The I/O error this error wraps directly, if any.
    pub fn io_source(&self) -> Option<&std::io::Error> {
        self.source.as_deref().and_then(|s| s.downcast_ref::<std::io::Error>())
    }

    /// Takes apart an [`ErrorKind::Io`] error made by [`Error::io`]: what was being done and
    /// the I/O error, for a backend to classify it its own way. Any other error is returned
    /// unchanged.
    ///
    /// ```
    /// use pgsnap_core::Error;
    /// let e = Error::io("cannot write /out/m.json", std::io::ErrorKind::StorageFull.into());
    /// let (what, io) = e.into_io().unwrap();
    /// assert_eq!((what.as_str(), io.kind()), ("cannot write /out/m.json", std::io::ErrorKind::StorageFull));
    /// ```
    pub fn into_io(mut self) -> std::result::Result<(String, std::io::Error), Self> {
        if self.kind != ErrorKind::Io || self.io_source().is_none() {
            return Err(self);
        }
        match self.source.take().map(|s| s.downcast::<std::io::Error>()) {
            Some(Ok(io)) => Ok((self.message, *io)),
            _ => unreachable!("checked above"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = self.backend {
            write!(f, "{b}: ")?;
        }
        match (self.status, self.kind) {
            (ErrorStatus::Persistent, _) => {
                write!(f, "gave up after {} attempts: ", self.attempts().unwrap_or(0))?
            }
            (ErrorStatus::Temporary, _) => f.write_str("transient failure: ")?,
            (_, ErrorKind::SinkUnavailable) => f.write_str("cannot continue: ")?,
            (_, ErrorKind::Preflight) if self.backend.is_none() => {
                f.write_str("preflight failed: ")?
            }
            (_, ErrorKind::Config) if self.backend.is_none() => {
                f.write_str("invalid configuration: ")?
            }
            _ => {}
        }
        match (&self.message, &self.source) {
            (m, Some(s)) if m.is_empty() => write!(f, "{s}"),
            (m, Some(s)) => write!(f, "{m}: {s}"),
            (m, None) => f.write_str(m),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("status", &self.status);
        if let Some(b) = self.backend {
            d.field("backend", &b);
        }
        if !self.message.is_empty() {
            d.field("message", &self.message);
        }
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_apart_from_status() {
        let e = Error::from_backend(ErrorKind::Source, "postgres", "connection reset");
        assert_eq!(e.to_string(), "postgres: connection reset");
        assert!(!e.is_temporary() && !e.is_fatal());
        let e = e.set_temporary();
        assert_eq!(e.to_string(), "postgres: transient failure: connection reset");
        let e = e.set_persistent(3);
        assert_eq!(e.status(), ErrorStatus::Persistent);
        assert_eq!(e.kind(), ErrorKind::Source);
        assert_eq!(e.attempts(), Some(3));
        assert!(!e.is_temporary());
    }

    #[test]
    fn shorthands_keep_their_facts() {
        let e = Error::resume_mismatch("format", "csv", "json");
        assert_eq!(e.kind(), ErrorKind::ResumeMismatch);
        assert_eq!(
            (e.context("option"), e.context("was"), e.context("now")),
            (Some("format"), Some("csv"), Some("json"))
        );
        assert!(e.is_fatal());
        let e = Error::snapshot_lost("00000003-1", "its holder ended");
        assert_eq!(e.context("snapshot"), Some("00000003-1"));
        assert!(e.to_string().contains("its holder ended"));
        let e = Error::io("cannot write /x", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(e.io_source().is_some());
        assert_eq!(Error::config("bad").to_string(), "invalid configuration: bad");
        assert_eq!(Error::cancelled().kind(), ErrorKind::Cancelled);
    }

    #[test]
    fn debug_shows_kind_and_status() {
        let e = Error::new(ErrorKind::Sink, "x").with_backend("files").set_temporary();
        let d = format!("{e:?}");
        assert!(d.contains("Sink") && d.contains("Temporary") && d.contains("files"), "{d}");
    }
}
