//! Routine Load jobs: the registry, the statements' execution and one consumer thread per job
//! (see the [module doc](super)).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::super::catalog::Cell;
use super::super::ddl::{ER_NOT_SUPPORTED_YET, ER_PARSE_ERROR, SqlError};
use super::super::{Shared, txn};
use super::sql::{RlStatement, parse_statement};
use super::{KafkaOffset, MessageOutcome, RoutineLoadDef, RoutineLoadState, RoutineLoadStatus};

/// At most this many messages per batch.
const MAX_BATCH_MESSAGES: usize = 100_000;
/// How often LatestSourcePosition is refreshed.
const WATERMARK_EVERY: Duration = Duration::from_millis(200);
/// Timeout of one blocking metadata / watermark call.
const KAFKA_CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// `ErrorReason{errCode = N, msg='...'}` (spec §6).
fn error_reason(code: u16, msg: &str) -> String {
    format!("ErrorReason{{errCode = {code}, msg='{msg}'}}")
}

/// The Routine Load jobs of one double.
#[derive(Debug, Default)]
pub(crate) struct Manager {
    jobs: Mutex<Vec<Arc<Job>>>,
    next_id: AtomicI64,
    shut_down: std::sync::atomic::AtomicBool,
}

/// One job.
#[derive(Debug)]
pub(crate) struct Job {
    id: i64,
    db: String,
    def: RoutineLoadDef,
    created: SystemTime,
    status: Mutex<JobStatus>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct JobStatus {
    state: RoutineLoadState,
    reason: Option<String>,
    pause_time: Option<SystemTime>,
    end_time: Option<SystemTime>,
    /// Next offset per partition (`-2`/`-1` before resolution).
    next: BTreeMap<i32, i64>,
    resolved: bool,
    latest: BTreeMap<i32, i64>,
    last_ts: BTreeMap<i32, i64>,
    loaded: u64,
    filtered: u64,
    received_bytes: u64,
    committed: u64,
    aborted: u64,
    task_ms: u64,
    window_total: u64,
    window_errors: u64,
    errors: Vec<String>,
    error_log_urls: Vec<String>,
    other_msg: String,
    /// Re-assign the consumer at `next` before consuming again.
    reseek: bool,
    shutdown: bool,
}

impl JobStatus {
    /// PAUSED with `reason` (not from STOPPED/CANCELLED, which are final).
    fn pause(&mut self, reason: String) {
        if self.state.is_final() {
            return;
        }
        self.state = RoutineLoadState::Paused;
        self.reason = Some(reason);
        self.pause_time = Some(SystemTime::now());
        self.window_total = 0;
        self.window_errors = 0;
        self.reseek = true;
    }
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, JobStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the status, then wakes the job's thread.
    fn update(&self, change: impl FnOnce(&mut JobStatus)) {
        change(&mut self.lock());
        self.wake.notify_all();
    }

    fn status(&self) -> RoutineLoadStatus {
        let st = self.lock();
        RoutineLoadStatus {
            id: self.id,
            db: self.db.clone(),
            name: self.def.name.clone(),
            table: self.def.table.clone(),
            state: st.state,
            reason: st.reason.clone(),
            progress: st.next.clone(),
            latest_source_position: st.latest.clone(),
            loaded_rows: st.loaded,
            filtered_rows: st.filtered,
            total_rows: st.loaded + st.filtered,
            received_bytes: st.received_bytes,
            committed_tasks: st.committed,
            aborted_tasks: st.aborted,
            errors: st.errors.clone(),
            error_log_urls: st.error_log_urls.clone(),
            other_msg: st.other_msg.clone(),
        }
    }
}

impl Manager {
    fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The latest job named `name` in `db` (final ones included).
    pub(crate) fn status(&self, db: &str, name: &str) -> Option<RoutineLoadStatus> {
        self.jobs().iter().rev().find(|j| j.db == db && j.def.name == name).map(|j| j.status())
    }

    /// Every job, in creation order.
    pub(crate) fn all_statuses(&self) -> Vec<RoutineLoadStatus> {
        self.jobs().iter().map(|j| j.status()).collect()
    }

    /// Stops every job thread and waits for them (the double is being dropped).
    pub(crate) fn shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
        let jobs = self.jobs();
        for job in &jobs {
            job.update(|st| st.shutdown = true);
        }
        for job in &jobs {
            let handle = job.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
    }

    /// The job `name` in `db` that is not STOPPED/CANCELLED (as PAUSE/RESUME/STOP find it).
    fn live_job(&self, db: &str, name: &str) -> Result<Arc<Job>, SqlError> {
        self.jobs()
            .into_iter()
            .rev()
            .find(|j| j.db == db && j.def.name == name && !j.lock().state.is_final())
            .ok_or_else(|| no_such_job(db, name, false))
    }
}

fn no_such_job(db: &str, name: &str, history: bool) -> SqlError {
    SqlError::analysis(format!(
        "There is no job named {name} in db {db}. Include history? {history}"
    ))
}

/// The rows of a SHOW: column names and rows.
pub(crate) type ShowRows = (Vec<&'static str>, Vec<Vec<Cell>>);

/// Executes a Routine Load statement for the MySQL front. `Ok(None)` is an OK packet.
pub(crate) fn execute(
    shared: &Arc<Shared>,
    current_db: Option<&str>,
    sql: &str,
) -> Result<Option<ShowRows>, SqlError> {
    let manager = &shared.routine_loads;
    let resolve_db = |db: Option<&str>| -> Result<String, SqlError> {
        db.or(current_db).map(str::to_owned).ok_or_else(SqlError::no_database)
    };
    match parse_statement(sql, &shared.options.version)? {
        RlStatement::Create(def) => {
            let db = resolve_db(def.db.as_deref())?;
            create(shared, db, *def)?;
            Ok(None)
        }
        RlStatement::Pause(db, name) => {
            let user = &shared.options.user;
            manager.live_job(&resolve_db(db.as_deref())?, &name)?.update(|st| {
                if st.state != RoutineLoadState::Paused {
                    st.pause(error_reason(100, &format!("User {user} pauses routine load job")));
                }
            });
            Ok(None)
        }
        RlStatement::Resume(db, name) => {
            manager.live_job(&resolve_db(db.as_deref())?, &name)?.update(|st| {
                if st.state == RoutineLoadState::Paused {
                    st.state = RoutineLoadState::NeedSchedule;
                    st.reason = None;
                    st.reseek = true;
                }
            });
            Ok(None)
        }
        RlStatement::Stop(db, name) => {
            manager.live_job(&resolve_db(db.as_deref())?, &name)?.update(|st| {
                st.state = RoutineLoadState::Stopped;
                st.end_time = Some(SystemTime::now());
            });
            Ok(None)
        }
        RlStatement::Show { all, name, from } => {
            let (qualifier, name) = match name {
                Some((db, n)) => (db, Some(n)),
                None => (None, None),
            };
            let db = resolve_db(qualifier.as_deref().or(from.as_deref()))?;
            if !shared.catalog.lock().databases.contains_key(&db) {
                return Err(SqlError::unknown_database(&db));
            }
            let jobs: Vec<Arc<Job>> = manager
                .jobs()
                .into_iter()
                .filter(|j| j.db == db)
                .filter(|j| name.as_deref().is_none_or(|n| j.def.name == n))
                .filter(|j| all || !j.lock().state.is_final())
                .collect();
            if let Some(n) = &name
                && jobs.is_empty()
            {
                return Err(no_such_job(&db, n, all));
            }
            Ok(Some((SHOW_COLUMNS.to_vec(), jobs.iter().map(|j| show_row(j)).collect())))
        }
    }
}

fn create(shared: &Arc<Shared>, db: String, def: RoutineLoadDef) -> Result<(), SqlError> {
    let manager = &shared.routine_loads;
    {
        let cat = shared.catalog.lock();
        let Some(database) = cat.databases.get(&db) else {
            return Err(SqlError::unknown_database(&db));
        };
        let Some(table) = database.table(&def.table) else {
            return Err(SqlError::analysis(format!("Unknown table '{}'", def.table)));
        };
        def.check_table(table).map_err(|m| {
            let code =
                if m.starts_with("test double:") { ER_NOT_SUPPORTED_YET } else { ER_PARSE_ERROR };
            SqlError::new(code, m)
        })?;
    }
    let mut jobs = manager.jobs.lock().unwrap_or_else(|e| e.into_inner());
    if manager.shut_down.load(Ordering::SeqCst) {
        return Err(SqlError::new(
            ER_NOT_SUPPORTED_YET,
            "test double: the double is shutting down",
        ));
    }
    if jobs.iter().any(|j| j.db == db && j.def.name == def.name && !j.lock().state.is_final()) {
        return Err(SqlError::analysis(format!("Name {} already used in db {db}", def.name)));
    }
    let id = 10_000 + manager.next_id.fetch_add(1, Ordering::SeqCst);
    let next = def
        .partitions
        .iter()
        .zip(&def.offsets)
        .map(|(p, o)| {
            let n = match o {
                KafkaOffset::Offset(n) => *n,
                KafkaOffset::End => -1,
                KafkaOffset::Beginning => -2,
            };
            (*p, n)
        })
        .collect();
    let job = Arc::new(Job {
        id,
        db,
        def,
        created: SystemTime::now(),
        status: Mutex::new(JobStatus { next, ..JobStatus::default() }),
        wake: Condvar::new(),
        thread: Mutex::new(None),
    });
    let (shared2, job2) = (Arc::clone(shared), Arc::clone(&job));
    let handle = std::thread::Builder::new()
        .name(format!("routine-load-{id}"))
        .spawn(move || run(&shared2, &job2))
        .map_err(|e| SqlError::new(ER_NOT_SUPPORTED_YET, format!("test double: spawn: {e}")))?;
    *job.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    jobs.push(job);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// SHOW ROUTINE LOAD

const SHOW_COLUMNS: &[&str] = &[
    "Id",
    "Name",
    "CreateTime",
    "PauseTime",
    "EndTime",
    "DbName",
    "TableName",
    "State",
    "DataSourceType",
    "CurrentTaskNum",
    "JobProperties",
    "DataSourceProperties",
    "CustomProperties",
    "Statistic",
    "Progress",
    "TimestampProgress",
    "ReasonOfStateChanged",
    "ErrorLogUrls",
    "TrackingSQL",
    "OtherMsg",
    "LatestSourcePosition",
];

/// `YYYY-MM-DD HH:MM:SS` (UTC).
fn fmt_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A Progress value: the last consumed offset (next − 1), `OFFSET_ZERO` for next == 0,
/// `OFFSET_END`/`OFFSET_BEGINNING` before resolution.
fn progress_text(next: i64) -> String {
    match next {
        -2 => "OFFSET_BEGINNING".into(),
        -1 => "OFFSET_END".into(),
        0 => "OFFSET_ZERO".into(),
        n => (n - 1).to_string(),
    }
}

fn show_row(job: &Job) -> Vec<Cell> {
    let st = job.lock();
    let def = &job.def;
    let state = st.state;
    let mut props: BTreeMap<&str, String> = BTreeMap::new();
    props.insert("format", "json".into());
    props.insert("jsonpaths", serde_json::to_string(&def.jsonpaths).unwrap_or_default());
    let columns = def.columns_text.strip_prefix('(').unwrap_or(&def.columns_text);
    props.insert("columnToColumnExpr", columns.strip_suffix(')').unwrap_or(columns).to_owned());
    props.insert("strict_mode", def.strict_mode.to_string());
    props.insert("timezone", def.timezone.clone().unwrap_or_else(|| "Asia/Shanghai".into()));
    props.insert("maxErrorNum", def.max_error_number.to_string());
    props.insert("maxFilterRatio", def.max_filter_ratio.to_string());
    props.insert("maxBatchRows", def.max_batch_rows.to_string());
    props.insert("strip_outer_array", "false".into());
    props.insert("json_root", String::new());
    props.insert("partial_update", "false".into());
    props.insert("whereExpr", "*".into());
    props.insert("partitions", "*".into());
    props.insert("pause_on_fatal_parse_error", def.pause_on_fatal_parse_error.to_string());
    props.insert(
        "desireTaskConcurrentNum",
        def.job_properties.get("desired_concurrent_number").cloned().unwrap_or("5".into()),
    );
    props.insert(
        "maxBatchIntervalS",
        def.job_properties.get("max_batch_interval").cloned().unwrap_or("10".into()),
    );
    let partitions: Vec<String> = def.partitions.iter().map(i32::to_string).collect();
    let source = json!({
        "topic": def.topic,
        "currentKafkaPartitions": partitions.join(","),
        "brokerList": def.broker_list,
    });
    let statistic = json!({
        "receivedBytes": st.received_bytes,
        "errorRows": st.filtered,
        "committedTaskNum": st.committed,
        "loadedRows": st.loaded,
        "loadRowsRate": 0,
        "abortedTaskNum": st.aborted,
        "totalRows": st.loaded + st.filtered,
        "unselectedRows": 0,
        "receivedBytesRate": 0,
        "taskExecuteTimeMs": st.task_ms,
    });
    let progress: BTreeMap<String, String> =
        st.next.iter().map(|(p, n)| (p.to_string(), progress_text(*n))).collect();
    let ts_progress: BTreeMap<String, String> =
        st.last_ts.iter().map(|(p, t)| (p.to_string(), (t - 1).to_string())).collect();
    let latest: BTreeMap<String, String> =
        st.latest.iter().map(|(p, n)| (p.to_string(), n.to_string())).collect();
    let j = |v: serde_json::Value| Some(v.to_string());
    vec![
        Some(job.id.to_string()),
        Some(def.name.clone()),
        Some(fmt_time(job.created)),
        st.pause_time.map(fmt_time),
        st.end_time.map(fmt_time),
        Some(job.db.clone()),
        Some(def.table.clone()),
        Some(state.as_str().to_owned()),
        Some("KAFKA".to_owned()),
        Some(if state == RoutineLoadState::Running { "1" } else { "0" }.to_owned()),
        j(json!(props)),
        j(source),
        j(json!(def.custom_properties)),
        j(statistic),
        j(json!(progress)),
        j(json!(ts_progress)),
        Some(st.reason.clone().unwrap_or_default()),
        Some(st.error_log_urls.last().cloned().unwrap_or_default()),
        Some(if st.error_log_urls.is_empty() {
            String::new()
        } else {
            format!(
                "select tracking_log from information_schema.load_tracking_logs where job_id={}",
                job.id
            )
        }),
        Some(st.other_msg.clone()),
        j(json!(latest)),
    ]
}

// ---------------------------------------------------------------------------------------------
// The consumer thread

/// One consumed message.
#[derive(Debug)]
struct Msg {
    partition: i32,
    offset: i64,
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
}

enum Control {
    Exit,
    Paused,
    Go { resolved: bool, reseek: bool },
}

impl Job {
    /// What the thread should do now; waits a little while the job is paused.
    fn control(&self) -> Control {
        let mut st = self.lock();
        if st.shutdown || st.state.is_final() {
            return Control::Exit;
        }
        if st.state == RoutineLoadState::Paused {
            let (st2, _) = self
                .wake
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner());
            st = st2;
            if st.shutdown || st.state.is_final() {
                return Control::Exit;
            }
            return Control::Paused;
        }
        let reseek = std::mem::take(&mut st.reseek);
        Control::Go { resolved: st.resolved, reseek }
    }

    /// Whether consumption should stop (paused, stopped, shut down).
    fn interrupted(&self) -> bool {
        let st = self.lock();
        st.shutdown
            || !matches!(st.state, RoutineLoadState::Running | RoutineLoadState::NeedSchedule)
    }

    fn set_other(&self, msg: String) {
        self.lock().other_msg = msg;
    }
}

fn consumer(job: &Job) -> Result<BaseConsumer, String> {
    let def = &job.def;
    // librdkafka's assign() needs a group id; nothing is ever committed to it.
    let group = format!("pgsnap-test-double-{}-{}", job.id, uuid::Uuid::new_v4().simple());
    ClientConfig::new()
        .set("bootstrap.servers", &def.broker_list)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .map_err(|e| format!("creating a Kafka consumer for {}: {e}", def.broker_list))
}

fn run(shared: &Arc<Shared>, job: &Arc<Job>) {
    let interval = shared.options.routine_load_batch_interval;
    let consumer = match consumer(job) {
        Ok(c) => c,
        Err(e) => {
            let reason = error_reason(100, &e);
            job.lock().pause(reason.clone());
            loop {
                match job.control() {
                    Control::Exit => return,
                    Control::Paused => {}
                    Control::Go { .. } => job.lock().pause(reason.clone()),
                }
            }
        }
    };
    let mut assigned = false;
    let mut last_watermarks: Option<Instant> = None;
    loop {
        let (resolved, reseek) = match job.control() {
            Control::Exit => return,
            Control::Paused => {
                assigned = false;
                continue;
            }
            Control::Go { resolved, reseek } => (resolved, reseek),
        };
        if !resolved && let Err(e) = resolve(&consumer, job) {
            job.set_other(e);
            std::thread::sleep(interval);
            continue;
        }
        if !assigned || reseek {
            let next = job.lock().next.clone();
            let mut tpl = TopicPartitionList::new();
            for (p, n) in &next {
                let _ = tpl.add_partition_offset(&job.def.topic, *p, Offset::Offset(*n));
            }
            if let Err(e) = consumer.assign(&tpl) {
                job.set_other(format!("assigning partitions: {e}"));
                std::thread::sleep(interval);
                continue;
            }
            assigned = true;
        }
        {
            let mut st = job.lock();
            if st.state == RoutineLoadState::NeedSchedule {
                st.state = RoutineLoadState::Running;
            }
        }
        if last_watermarks.is_none_or(|t| t.elapsed() >= WATERMARK_EVERY) {
            refresh_watermarks(&consumer, job);
            last_watermarks = Some(Instant::now());
        }
        let batch = collect(&consumer, interval, job);
        if batch.is_empty() {
            continue;
        }
        if job.interrupted() {
            // Paused or stopped meanwhile: the task is dropped, progress unchanged.
            assigned = false;
            continue;
        }
        if !process(shared, job, batch) {
            std::thread::sleep(interval);
        }
    }
}

/// Resolves OFFSET_BEGINNING / OFFSET_END and checks that the partitions exist; a missing
/// partition pauses the job.
fn resolve(consumer: &BaseConsumer, job: &Job) -> Result<(), String> {
    let topic = &job.def.topic;
    let md = consumer
        .fetch_metadata(Some(topic), KAFKA_CALL_TIMEOUT)
        .map_err(|e| format!("fetching the metadata of {topic}: {e}"))?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    let existing: Vec<i32> =
        t.map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    if let Some(missing) = job.def.partitions.iter().find(|p| !existing.contains(p)) {
        if t.is_some_and(|t| t.error().is_none()) {
            job.lock().pause(error_reason(
                101,
                &format!("partition {missing} does not exist in kafka topic {topic}"),
            ));
            return Ok(());
        }
        return Err(format!("kafka topic {topic} (partition {missing}) is not available yet"));
    }
    let mut resolved = BTreeMap::new();
    let next = job.lock().next.clone();
    for (p, n) in next {
        let n = if n < 0 {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, KAFKA_CALL_TIMEOUT)
                .map_err(|e| format!("fetching the watermarks of {topic}/{p}: {e}"))?;
            if n == -2 { low } else { high }
        } else {
            n
        };
        resolved.insert(p, n);
    }
    let mut st = job.lock();
    st.next = resolved;
    st.resolved = true;
    Ok(())
}

fn refresh_watermarks(consumer: &BaseConsumer, job: &Job) {
    let mut latest = BTreeMap::new();
    for p in &job.def.partitions {
        if let Ok((_, high)) = consumer.fetch_watermarks(&job.def.topic, *p, KAFKA_CALL_TIMEOUT) {
            latest.insert(*p, high);
        }
    }
    job.lock().latest.extend(latest);
}

/// Polls until idle for `interval` (or ten intervals, or [`MAX_BATCH_MESSAGES`]).
fn collect(consumer: &BaseConsumer, interval: Duration, job: &Job) -> Vec<Msg> {
    let start = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    loop {
        if job.interrupted() {
            return out;
        }
        match consumer.poll(Duration::from_millis(10)) {
            Some(Ok(m)) if m.topic() == job.def.topic => {
                out.push(Msg {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp: m.timestamp().to_millis(),
                });
                last = Instant::now();
                if out.len() >= MAX_BATCH_MESSAGES {
                    return out;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => job.set_other(format!("consuming: {e}")),
            None => {}
        }
        let done = if out.is_empty() {
            start.elapsed() >= interval
        } else {
            last.elapsed() >= interval || start.elapsed() >= interval * 10
        };
        if done {
            return out;
        }
    }
}

/// Maps and applies one batch (a task). Returns `false` when the task failed and will be
/// retried.
fn process(shared: &Arc<Shared>, job: &Job, batch: Vec<Msg>) -> bool {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut loaded = 0;
    let mut filtered: Vec<(String, &Msg)> = Vec::new();
    let mut fatal: Option<(String, &Msg)> = None;
    let msgs: Vec<&Msg>;
    {
        let mut cat = shared.catalog.lock();
        let table = cat.databases.get_mut(&job.db).and_then(|d| d.table_mut(&job.def.table));
        let Some(table) = table else {
            drop(cat);
            let mut st = job.lock();
            if st.state.is_final() {
                return true;
            }
            st.state = RoutineLoadState::Cancelled;
            st.end_time = Some(SystemTime::now());
            st.reason = Some(error_reason(
                100,
                &format!("table {}.{} does not exist", job.db, job.def.table),
            ));
            return true;
        };
        let bound = match job.def.bind(table) {
            Ok(b) => b,
            Err(e) => {
                drop(cat);
                job.lock().pause(error_reason(100, &e));
                return true;
            }
        };
        let next = job.lock().next.clone();
        // Drop messages a re-assignment delivered again.
        msgs = batch
            .iter()
            .filter(|m| next.get(&m.partition).is_some_and(|n| m.offset >= *n))
            .collect();
        for m in &msgs {
            match bound.map(m.value.as_deref()) {
                MessageOutcome::Row(r) => rows.push(r),
                MessageOutcome::Filtered(reason) => filtered.push((reason, m)),
                MessageOutcome::NoRow => {}
                MessageOutcome::ParseError(e) => {
                    fatal = Some((e, m));
                    break;
                }
            }
        }
        if fatal.is_none() {
            loaded = rows.len();
            txn::apply_rows(table, rows);
        }
    }
    if let Some((e, m)) = fatal {
        let mut st = job.lock();
        st.aborted += 1;
        let text = format!("{e} (partition {}, offset {})", m.partition, m.offset);
        st.errors.push(text.clone());
        st.other_msg = text;
        if job.def.pause_on_fatal_parse_error {
            st.pause(error_reason(104, &format!("PARSE_ERROR: {e}")));
            return true;
        }
        st.reseek = true;
        return false;
    }
    if msgs.is_empty() {
        return true;
    }
    let url = (!filtered.is_empty()).then(|| {
        let lines: Vec<String> = filtered
            .iter()
            .map(|(reason, m)| {
                let raw = m.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                format!("Error: {reason}. Row: {raw}")
            })
            .collect();
        shared.add_error_log(job.id, &lines)
    });
    let mut st = job.lock();
    for m in &msgs {
        let n = st.next.entry(m.partition).or_insert(0);
        *n = (*n).max(m.offset + 1);
        if let Some(ts) = m.timestamp {
            st.last_ts.insert(m.partition, ts);
        }
        st.received_bytes += m.value.as_ref().map_or(0, |v| v.len() as u64);
    }
    st.loaded += loaded as u64;
    st.filtered += filtered.len() as u64;
    st.committed += 1;
    st.task_ms += started.elapsed().as_millis() as u64;
    st.errors.extend(filtered.iter().map(|(r, _)| r.clone()));
    if let Some(url) = url {
        st.error_log_urls.push(url);
    }
    st.window_total += (loaded + filtered.len()) as u64;
    st.window_errors += filtered.len() as u64;
    let def = &job.def;
    let too_many = st.window_errors > def.max_error_number
        || (def.max_filter_ratio < 1.0
            && st.window_total > 0
            && st.window_errors as f64 / st.window_total as f64 > def.max_filter_ratio);
    let window_full = st.window_total > def.max_batch_rows * 10;
    if too_many {
        st.pause(error_reason(102, "current error rows is more than max error num"));
    } else if window_full {
        st.window_total = 0;
        st.window_errors = 0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_progress() {
        assert_eq!(fmt_time(UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(
            fmt_time(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29 12:34:56"
        );
        assert_eq!(progress_text(0), "OFFSET_ZERO");
        assert_eq!(progress_text(6), "5");
        assert_eq!(progress_text(-1), "OFFSET_END");
        assert_eq!(progress_text(-2), "OFFSET_BEGINNING");
    }
}
