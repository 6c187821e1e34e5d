//! In-memory [`Sink`] and [`Source`], for tests and examples.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use crate::manifest::{ManifestChunk, ManifestHeader, PlanOptions, TablePlan};
use crate::{
    Chunk, ChunkId, ChunkRange, ChunkReceipt, ChunkStream, Column, DataFormat, Manifest, Result,
    Sink, SinkDescription, SnapshotInfo, SnapshotMode, Source, SourceInfo, TableKind, TableName,
    TableSchema,
};

type Key = (TableName, ChunkId);

/// A sink that keeps each chunk's content in memory, keyed by table and chunk id.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> pgsnap_core::Result<()> {
/// use pgsnap_core::{MemorySink, Sink};
/// let (source, manifest) = pgsnap_core::memory::MemorySource::example(1, 2);
/// let chunk = manifest.tables[0].chunk(&manifest.tables[0].chunks[0]);
/// let sink = MemorySink::new();
/// let data = pgsnap_core::Source::read_chunk(&source, &chunk, pgsnap_core::DataFormat::Text).await?;
/// sink.write_chunk(&chunk, data, &Default::default()).await?;
/// assert_eq!(sink.get(&chunk.table, chunk.id).unwrap().as_ref(), b"0\trow 0\n1\trow 1\n");
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemorySink {
    chunks: Mutex<BTreeMap<Key, Bytes>>,
    format: DataFormat,
}

impl MemorySink {
    /// An empty sink that asks for COPY text.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sink that asks for `format`.
    pub fn with_format(format: DataFormat) -> Self {
        Self { format, ..Self::default() }
    }

    /// The stored content of a chunk.
    pub fn get(&self, table: &TableName, id: ChunkId) -> Option<Bytes> {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).get(&(table.clone(), id)).cloned()
    }

    /// Every stored chunk of a table, concatenated in chunk order.
    pub fn table_content(&self, table: &TableName) -> Bytes {
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BytesMut::new();
        for ((t, _), b) in chunks.iter() {
            if t == table {
                out.extend_from_slice(b);
            }
        }
        out.freeze()
    }

    /// Number of stored chunks.
    pub fn len(&self) -> usize {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets a stored chunk (to simulate lost output).
    pub fn remove(&self, table: &TableName, id: ChunkId) -> Option<Bytes> {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).remove(&(table.clone(), id))
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn description(&self) -> SinkDescription {
        SinkDescription::new(self.format)
    }

    async fn write_chunk(
        &self,
        chunk: &Chunk,
        data: ChunkStream,
        _ctx: &crate::WriteContext,
    ) -> Result<ChunkReceipt> {
        // Collect first: nothing becomes visible unless the whole stream arrived.
        let parts: Vec<Bytes> = data.try_collect().await?;
        let mut buf = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in parts {
            buf.extend_from_slice(&p);
        }
        let n = buf.len() as u64;
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((chunk.table.clone(), chunk.id), buf.freeze());
        Ok(ChunkReceipt::new(Some(format!("{}/{}", chunk.table, chunk.id)), n))
    }

    async fn chunk_intact(&self, chunk: &Chunk, record: &ManifestChunk) -> Result<bool> {
        Ok(self
            .get(&chunk.table, chunk.id)
            .is_some_and(|b| record.checksum.as_deref() == Some(&crate::stats::checksum(&b))))
    }
}

/// A source serving fixed content per chunk, for tests of sinks and of the coordinator.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    content: Arc<Mutex<BTreeMap<Key, Bytes>>>,
    piece: usize,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self { content: Arc::default(), piece: 7 }
    }

    /// Sets the content of a chunk.
    pub fn insert(&self, table: TableName, id: ChunkId, content: impl Into<Bytes>) {
        self.content.lock().unwrap_or_else(|e| e.into_inner()).insert((table, id), content.into());
    }

    /// The content of a chunk.
    pub fn content(&self, table: &TableName, id: ChunkId) -> Option<Bytes> {
        self.content.lock().unwrap_or_else(|e| e.into_inner()).get(&(table.clone(), id)).cloned()
    }

    /// A source with one table `public.t` of `chunks` chunks of `rows` rows each
    /// (`<n>\trow <n>\n`), and the manifest planning it.
    pub fn example(chunks: u32, rows: u32) -> (MemorySource, Manifest) {
        let source = MemorySource::new();
        let table = TableName::new("public", "t");
        let mut plan_chunks = Vec::new();
        for c in 0..chunks {
            let mut content = String::new();
            for r in 0..rows {
                let n = c * rows + r;
                content.push_str(&format!("{n}\trow {n}\n"));
            }
            source.insert(table.clone(), ChunkId(c), content);
            plan_chunks.push(Chunk {
                table: table.clone(),
                relation: table.clone(),
                id: ChunkId(c),
                range: ChunkRange::Pk {
                    column: "id".into(),
                    start: Some(i64::from(c * rows)),
                    end: Some(i64::from((c + 1) * rows)),
                },
                columns: vec!["id".to_owned(), "v".to_owned()].into(),
                estimated_bytes: u64::from(rows) * 10,
            });
        }
        let schema = TableSchema {
            name: table,
            kind: TableKind::Table,
            columns: vec![Column::new("id", "integer", false), Column::new("v", "text", true)],
            generated_columns: vec![],
            primary_key: vec!["id".into()],
        };
        let manifest = Manifest::new(
            example_header(),
            vec![TablePlan {
                estimated_bytes: plan_chunks.iter().map(|c| c.estimated_bytes).sum(),
                schema,
                partitions: vec![],
                chunks: plan_chunks,
            }],
        );
        (source, manifest)
    }
}

/// A manifest header for in-memory tests.
pub fn example_header() -> ManifestHeader {
    ManifestHeader {
        snapshot: SnapshotInfo {
            mode: SnapshotMode::Export,
            name: "00000003-00000002-1".into(),
            lsn: None,
            slot: None,
            slot_temporary: None,
            pg_snapshot: "750:750:".into(),
            taken_at: "2026-01-01T00:00:00Z".into(),
        },
        source: SourceInfo {
            system_identifier: "7000000000000000001".into(),
            server_version: "15.0".into(),
            server_version_num: 150000,
            database: "memory".into(),
        },
        format: DataFormat::Text,
        compression: "none".into(),
        sink: None,
        session: BTreeMap::new(),
        options: PlanOptions {
            split_by: crate::manifest::SplitBy::Pk,
            chunk_size: 1 << 20,
            include: vec![],
            exclude: vec![],
        },
    }
}

#[async_trait]
impl Source for MemorySource {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn read_chunk(&self, chunk: &Chunk, _format: DataFormat) -> Result<ChunkStream> {
        let content = self.content(&chunk.table, chunk.id).unwrap_or_default();
        let piece = self.piece.max(1);
        let parts: Vec<Result<Bytes>> = (0..content.len())
            .step_by(piece)
            .map(|i| Ok(content.slice(i..(i + piece).min(content.len()))))
            .collect();
        Ok(futures::stream::iter(parts).boxed())
    }
}
