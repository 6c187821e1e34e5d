//! Coordinator behaviour with in-memory parts: conformance of MemorySink, retries,
//! per-table isolation, resume.

#![allow(clippy::clone_on_ref_ptr)]

use std::sync::Arc;

use pgsnap_core::CheckpointStore;
use pgsnap_core::testing::{FaultySource, memory_sink_under_test, sink_conformance};
use pgsnap_core::{
    ChunkId, Coordinator, CoordinatorOptions, MemoryCheckpointStore, MemorySink, MemorySource,
    ProgressEvent, RunStatus, Sink, TableStatus,
};

#[tokio::test]
async fn memory_sink_passes_conformance() {
    sink_conformance(|| async { memory_sink_under_test() }).await;
}

#[tokio::test]
async fn resume_copies_only_missing_chunks() {
    let (source, manifest) = MemorySource::example(5, 10);
    let sink = Arc::new(MemorySink::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let report = Coordinator::new(Arc::new(source.clone()), sink.clone(), store.clone())
        .run(manifest)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Ok);
    assert_eq!(report.chunks_copied, 5);
    // Lose one chunk's output: a resume must redo exactly that one.
    let t = report.manifest.tables[0].schema.name.clone();
    sink.remove(&t, ChunkId(3));
    let report2 =
        Coordinator::new(Arc::new(source), sink.clone(), store).run(report.manifest).await.unwrap();
    assert_eq!(report2.status, RunStatus::Ok);
    assert_eq!(report2.chunks_copied, 1);
    assert_eq!(report2.rows, 50);
    assert!(sink.get(&t, ChunkId(3)).is_some());
}

#[tokio::test]
async fn permanent_failure_fails_only_its_table_and_reports_progress() {
    let (source, mut manifest) = MemorySource::example(3, 10);
    // A second table whose chunks exist in another source's namespace: duplicate the table.
    let mut t2 = manifest.tables[0].clone();
    t2.schema.name.name = "t2".into();
    manifest.tables.push(t2);
    // Permanent faults for every chunk of every table...
    let faulty = FaultySource::new(source.clone(), u32::MAX, false);
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ev = events.clone();
    let report = Coordinator::new(
        Arc::new(faulty),
        Arc::new(MemorySink::new()),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_options(CoordinatorOptions::default().with_jobs(1))
    .with_progress(Arc::new(move |e: &ProgressEvent| ev.lock().unwrap().push(format!("{e:?}"))))
    .run(manifest)
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.fatal.is_none(), "a table failure is not fatal");
    for t in &report.tables {
        assert_eq!(t.status, TableStatus::Failed);
        // With jobs=1, only the first chunk of each table was tried.
        assert!(t.error.as_deref().unwrap().contains("injected fault"));
    }
    let ev = events.lock().unwrap();
    assert_eq!(ev.iter().filter(|e| e.starts_with("ChunkFailed")).count(), 2, "{ev:?}");
    assert!(ev.iter().any(|e| e.starts_with("Tick")));
}

#[tokio::test]
async fn one_bad_table_does_not_sink_the_others() {
    let (source, mut manifest) = MemorySource::example(2, 10);
    let mut t2 = manifest.tables[0].clone();
    t2.schema.name.name = "bad".into();
    for c in &mut t2.chunks {
        c.relation.name = "bad".into();
    }
    manifest.tables.push(t2);
    #[derive(Debug)]
    struct Picky(MemorySource);
    #[async_trait::async_trait]
    impl pgsnap_core::Source for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }
        async fn read_chunk(
            &self,
            c: &pgsnap_core::Chunk,
            f: pgsnap_core::DataFormat,
        ) -> pgsnap_core::Result<pgsnap_core::ChunkStream> {
            if c.table.name == "bad" {
                return Err(pgsnap_core::Error::from_backend(
                    pgsnap_core::ErrorKind::Source,
                    "picky",
                    "permission denied for table bad",
                ));
            }
            self.0.read_chunk(c, f).await
        }
    }
    let sink = Arc::new(MemorySink::new());
    let report = Coordinator::new(
        Arc::new(Picky(source)),
        sink.clone(),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .run(manifest)
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.tables[0].status, TableStatus::Ok);
    assert_eq!(report.tables[0].rows, 20);
    assert_eq!(report.tables[1].status, TableStatus::Failed);
    assert!(report.tables[1].error.as_deref().unwrap().contains("permission denied"));
    assert_eq!(sink.len(), 2);
}

#[tokio::test]
async fn fatal_error_stops_the_run() {
    let (source, manifest) = MemorySource::example(8, 10);
    #[derive(Debug)]
    struct Lost(MemorySource, std::sync::atomic::AtomicU32);
    #[async_trait::async_trait]
    impl pgsnap_core::Source for Lost {
        fn name(&self) -> &'static str {
            "lost"
        }
        async fn read_chunk(
            &self,
            c: &pgsnap_core::Chunk,
            f: pgsnap_core::DataFormat,
        ) -> pgsnap_core::Result<pgsnap_core::ChunkStream> {
            if self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2 {
                return Err(pgsnap_core::Error::snapshot_lost("s", "holder gone"));
            }
            self.0.read_chunk(c, f).await
        }
    }
    let report = Coordinator::new(
        Arc::new(Lost(source, Default::default())),
        Arc::new(MemorySink::new()),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_options(CoordinatorOptions::default().with_jobs(1))
    .run(manifest)
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.fatal.map(|e| e.kind()), Some(pgsnap_core::ErrorKind::SnapshotLost));
    assert_eq!(report.chunks_copied, 2);
    assert_eq!(report.manifest.tables[0].chunks.iter().filter(|c| c.done).count(), 2);
}

#[tokio::test]
async fn throttle_limits_rate() {
    let (source, manifest) = MemorySource::example(4, 1000);
    let bytes: u64 = (0..4)
        .map(|c| source.content(&manifest.tables[0].schema.name, ChunkId(c)).unwrap().len() as u64)
        .sum();
    let rate = bytes * 4; // whole run should take about 250 ms
    let t0 = std::time::Instant::now();
    let report = Coordinator::new(
        Arc::new(source),
        Arc::new(MemorySink::new()),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_options(CoordinatorOptions::default().with_jobs(4).with_throttle(Some(rate)))
    .run(manifest)
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Ok);
    // Lower bound only (a floor that holds on a slow machine): at least 150 ms of the 250.
    assert!(t0.elapsed() >= std::time::Duration::from_millis(150), "{:?}", t0.elapsed());
    let _ = Sink::name(&MemorySink::new());
}

#[tokio::test]
async fn manifest_saves_are_rate_limited_but_final_state_is_saved() {
    #[derive(Debug, Default)]
    struct Counting(MemoryCheckpointStore, std::sync::atomic::AtomicU32);
    #[async_trait::async_trait]
    impl pgsnap_core::CheckpointStore for Counting {
        async fn load(&self) -> pgsnap_core::Result<Option<pgsnap_core::Manifest>> {
            self.0.load().await
        }
        async fn save(&self, m: &pgsnap_core::Manifest) -> pgsnap_core::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.save(m).await
        }
    }
    let (source, manifest) = MemorySource::example(200, 5);
    let store = Arc::new(Counting::default());
    let report = Coordinator::new(Arc::new(source), Arc::new(MemorySink::new()), store.clone())
        .with_options(
            CoordinatorOptions::default()
                .with_checkpoint_interval(std::time::Duration::from_secs(3600)),
        )
        .run(manifest)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Ok);
    // One save at the start and one at the end; none per chunk.
    assert_eq!(store.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    let saved = store.0.load().await.unwrap().unwrap();
    assert!(saved.tables[0].chunks.iter().all(|c| c.done));
    assert_eq!(saved.status, RunStatus::Ok);
}

/// The next chunk's read starts while the sink is still finishing the previous one (its
/// fsync and rename), and no more than `jobs` chunks stream from the source at once.
#[tokio::test]
async fn sink_finishing_overlaps_the_next_read() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    #[derive(Debug)]
    struct Counting {
        inner: MemorySource,
        started: Arc<AtomicUsize>,
        streaming: Arc<AtomicUsize>,
        max_streaming: Arc<AtomicUsize>,
    }
    #[async_trait::async_trait]
    impl pgsnap_core::Source for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn read_chunk(
            &self,
            c: &pgsnap_core::Chunk,
            f: pgsnap_core::DataFormat,
        ) -> pgsnap_core::Result<pgsnap_core::ChunkStream> {
            use futures::StreamExt;
            self.started.fetch_add(1, SeqCst);
            let now = self.streaming.fetch_add(1, SeqCst) + 1;
            self.max_streaming.fetch_max(now, SeqCst);
            let streaming = Arc::clone(&self.streaming);
            let data = self.inner.read_chunk(c, f).await?;
            // Count the stream as done when it ends.
            let end = futures::stream::once(async move {
                streaming.fetch_sub(1, SeqCst);
                None
            });
            Ok(data.map(Some).chain(end).filter_map(futures::future::ready).boxed())
        }
    }
    /// Consumes the chunk, then "commits" only once another chunk's read has started.
    #[derive(Debug)]
    struct SlowCommit {
        inner: MemorySink,
        started: Arc<AtomicUsize>,
        total: usize,
    }
    #[async_trait::async_trait]
    impl Sink for SlowCommit {
        fn name(&self) -> &'static str {
            "slow-commit"
        }
        fn description(&self) -> pgsnap_core::SinkDescription {
            self.inner.description()
        }
        async fn write_chunk(
            &self,
            c: &pgsnap_core::Chunk,
            data: pgsnap_core::ChunkStream,
            ctx: &pgsnap_core::WriteContext,
        ) -> pgsnap_core::Result<pgsnap_core::ChunkReceipt> {
            let receipt = self.inner.write_chunk(c, data, ctx).await?;
            let seen = self.started.load(std::sync::atomic::Ordering::SeqCst);
            let want = (seen + 1).min(self.total);
            let t0 = std::time::Instant::now();
            while self.started.load(std::sync::atomic::Ordering::SeqCst) < want {
                assert!(
                    t0.elapsed() < std::time::Duration::from_secs(10),
                    "the next chunk's read did not start while this chunk was finishing"
                );
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Ok(receipt)
        }
    }
    let (source, manifest) = MemorySource::example(6, 10);
    let started = Arc::new(AtomicUsize::new(0));
    let max_streaming = Arc::new(AtomicUsize::new(0));
    let src = Counting {
        inner: source,
        started: started.clone(),
        streaming: Arc::default(),
        max_streaming: max_streaming.clone(),
    };
    let sink = SlowCommit { inner: MemorySink::new(), started, total: 6 };
    let report =
        Coordinator::new(Arc::new(src), Arc::new(sink), Arc::new(MemoryCheckpointStore::new()))
            .with_options(CoordinatorOptions::default().with_jobs(1))
            .run(manifest)
            .await
            .unwrap();
    assert_eq!(report.status, RunStatus::Ok);
    assert_eq!(max_streaming.load(SeqCst), 1, "never more than `jobs` chunks streaming");
}

/// Cancelling stops the run: it reports `Cancelled`, records only chunks that finished, and a
/// second run with the saved manifest completes the rest.
#[tokio::test]
async fn cancellation_stops_and_resume_completes() {
    let (source, manifest) = MemorySource::example(50, 100);
    let sink = Arc::new(MemorySink::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let coordinator = Coordinator::new(Arc::new(source.clone()), sink.clone(), store.clone())
        .with_options(CoordinatorOptions::default().with_jobs(1).with_throttle(Some(200_000)));
    let token = coordinator.cancellation_token();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        token.cancel();
    });
    let report = coordinator.run(manifest).await.unwrap();
    assert_eq!(
        report.fatal.as_ref().map(|e| e.kind()),
        Some(pgsnap_core::ErrorKind::Cancelled),
        "{:?}",
        report.fatal
    );
    assert_eq!(report.status, RunStatus::Failed);
    let done = report.manifest.tables[0].chunks.iter().filter(|c| c.done).count();
    assert!(done < 50, "cancelled before the end");
    for c in report.manifest.tables[0].chunks.iter().filter(|c| c.done) {
        assert!(sink.get(&report.manifest.tables[0].schema.name, c.id).is_some());
    }
    let saved = store.load().await.unwrap().unwrap();
    let again = Coordinator::new(Arc::new(source), sink.clone(), store).run(saved).await.unwrap();
    assert_eq!(again.status, RunStatus::Ok);
    assert_eq!(again.rows, 5000);
}

/// A sink that defers durability: `write_chunk` only lists the chunk, `make_durable` makes
/// everything listed durable. Every manifest save must list as done only durable chunks,
/// however writes and checkpoints interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_manifest_lists_only_chunks_the_sink_made_durable() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    type Durable = Arc<Mutex<(HashSet<(String, u32)>, HashSet<(String, u32)>)>>;

    #[derive(Debug)]
    struct Deferring(MemorySink, Durable);
    #[async_trait::async_trait]
    impl Sink for Deferring {
        fn name(&self) -> &'static str {
            "deferring"
        }
        fn description(&self) -> pgsnap_core::SinkDescription {
            self.0.description()
        }
        async fn write_chunk(
            &self,
            chunk: &pgsnap_core::Chunk,
            data: pgsnap_core::ChunkStream,
            ctx: &pgsnap_core::WriteContext,
        ) -> pgsnap_core::Result<pgsnap_core::ChunkReceipt> {
            let r = self.0.write_chunk(chunk, data, ctx).await?;
            tokio::task::yield_now().await;
            self.1.lock().unwrap().0.insert((chunk.table.to_string(), chunk.id.0));
            Ok(r)
        }
        async fn make_durable(&self) -> pgsnap_core::Result<()> {
            let mut d = self.1.lock().unwrap();
            let pending: Vec<_> = d.0.drain().collect();
            d.1.extend(pending);
            Ok(())
        }
    }
    #[derive(Debug)]
    struct Checking(Durable, Mutex<u32>);
    #[async_trait::async_trait]
    impl CheckpointStore for Checking {
        async fn load(&self) -> pgsnap_core::Result<Option<pgsnap_core::Manifest>> {
            Ok(None)
        }
        async fn save(&self, m: &pgsnap_core::Manifest) -> pgsnap_core::Result<()> {
            let durable = &self.0.lock().unwrap().1;
            for t in &m.tables {
                for c in t.chunks.iter().filter(|c| c.done) {
                    let key = (t.schema.name.to_string(), c.id.0);
                    assert!(durable.contains(&key), "{key:?} listed done before it was durable");
                }
            }
            *self.1.lock().unwrap() += 1;
            Ok(())
        }
    }

    let (source, manifest) = MemorySource::example(400, 5);
    let durable = Durable::default();
    let store = Arc::new(Checking(durable.clone(), Mutex::new(0)));
    let report = Coordinator::new(
        Arc::new(source),
        Arc::new(Deferring(MemorySink::new(), durable.clone())),
        store.clone(),
    )
    // A checkpoint after every chunk: as many interleavings as possible.
    .with_options(
        CoordinatorOptions::default()
            .with_jobs(4)
            .with_checkpoint_interval(std::time::Duration::ZERO),
    )
    .run(manifest)
    .await
    .unwrap();
    assert_eq!(report.status, RunStatus::Ok);
    assert!(*store.1.lock().unwrap() > 100, "saves: {}", store.1.lock().unwrap());
    assert_eq!(durable.lock().unwrap().1.len(), 400);
}
