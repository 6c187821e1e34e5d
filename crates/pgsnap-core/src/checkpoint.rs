//! Where the run manifest is kept between chunks and across resumes.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::manifest::Manifest;
use crate::{Error, Result};

/// Stores the [`Manifest`] of a run.
///
/// # Contract
/// `save` is atomic: after a crash, `load` returns either the previous or the new manifest,
/// never a mixture. The coordinator calls `save` one at a time, as chunks finish (at most once
/// per checkpoint interval) and at the end of a run.
#[async_trait]
pub trait CheckpointStore: Send + Sync + Debug {
    /// The stored manifest, if any.
    async fn load(&self) -> Result<Option<Manifest>>;
    /// Replaces the stored manifest.
    async fn save(&self, manifest: &Manifest) -> Result<()>;
}

/// Keeps `manifest.json` in a directory, replaced atomically (temp file, fsync, rename,
/// fsync of the directory).
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> pgsnap_core::Result<()> {
/// use pgsnap_core::{CheckpointStore, ManifestStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = ManifestStore::new(dir.path());
/// assert!(store.load().await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ManifestStore {
    dir: PathBuf,
}

/// The manifest's file name inside the output or state directory.
pub const MANIFEST_FILE: &str = "manifest.json";

impl ManifestStore {
    /// A store for `<dir>/manifest.json`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The manifest's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename over `path`, fsync of the directory.
///
/// # Errors
/// an [`ErrorKind::Io`](crate::ErrorKind::Io) error naming the path.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(ctx("cannot create"), e))?;
    f.write_all(bytes).map_err(|e| Error::io(ctx("cannot write"), e))?;
    f.sync_all().map_err(|e| Error::io(ctx("cannot fsync"), e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::io(format!("cannot rename {} to {}", tmp.display(), path.display()), e)
    })?;
    sync_dir(dir)
}

/// Fsyncs a directory so a rename inside it is durable.
///
/// # Errors
/// an [`ErrorKind::Io`](crate::ErrorKind::Io) error naming the directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync directory {}", dir.display()), e))
}

#[async_trait]
impl CheckpointStore for ManifestStore {
    async fn load(&self) -> Result<Option<Manifest>> {
        let path = self.path();
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::manifest(
                path.display().to_string(),
                format!("not a pgsnap manifest ({e}); was it edited by hand?"),
            )
        })
    }

    async fn save(&self, manifest: &Manifest) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(manifest).map_err(|e| {
            Error::manifest(self.path().display().to_string(), format!("cannot serialize: {e}"))
        })?;
        bytes.push(b'\n');
        let path = self.path();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| Error::io("manifest writer panicked", std::io::Error::other(e)))?
    }
}

/// Keeps the manifest in memory (tests, or embedding where state lives elsewhere).
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    manifest: Mutex<Option<Manifest>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self) -> Result<Option<Manifest>> {
        Ok(self.manifest.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
    async fn save(&self, manifest: &Manifest) -> Result<()> {
        *self.manifest.lock().unwrap_or_else(|e| e.into_inner()) = Some(manifest.clone());
        Ok(())
    }
}
