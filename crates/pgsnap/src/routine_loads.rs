//! The Routine Loads a handoff creates through the FE, and what it records of them in the
//! manifest ([`HandoffState`]).
//!
//! The rules, one job at a time (`SHOW ALL ROUTINE LOAD FOR <db>.<name>` lists every job that
//! held the name, STOPPED and CANCELLED ones included):
//! - **not created yet** (no `job_id` recorded): created when StarRocks knows no job of that
//!   name; a job holding it, whatever its state, is refused with both named (pgsnap never
//!   replaces or reuses a name);
//! - **created by this handoff** (`job_id` recorded): a live job with that id is reported
//!   `already_there`; the same job STOPPED or CANCELLED, gone, or another job holding the name
//!   is refused with both named;
//! - a rerun renders each job again and compares the statement's hash with the recorded
//!   `definition_hash`, never with `SHOW ROUTINE LOAD` (whose progress moves): another
//!   definition is refused with both hashes named.
//!
//! Secrets reach StarRocks only in the text sent ([`StarRocksSink::create_routine_load`]); the
//! manifest and the report hold the statements with placeholders.

use serde::Serialize;
use sha2::{Digest, Sha256};

use pgsnap_core::{HandoffState, RoutineLoadRecord};
use pgsnap_kafka::KafkaClientConfig;
use pgsnap_sink_starrocks::StarRocksSink;
use pgsnap_sink_starrocks::routine_load::RoutineLoadInfo;

/// SHA-256 (hex) of a rendered statement: [`RoutineLoadRecord::definition_hash`].
pub(crate) fn definition_hash(sql: &str) -> String {
    Sha256::digest(sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What happened to one Routine Load of a handoff (JSON `routine_load_jobs[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoutineLoadJob {
    /// The job's name.
    pub name: String,
    /// The PostgreSQL table it continues (`schema.table`).
    pub source: String,
    /// The StarRocks table it loads.
    pub table: String,
    /// The topic it consumes.
    pub topic: String,
    /// StarRocks' job id, once created.
    pub job_id: Option<String>,
    /// `created`, `already_there`, `not_created` (only rendered, or refused: see `error`).
    pub status: &'static str,
    /// Why it was not created, when it should have been.
    pub error: Option<String>,
}

impl RoutineLoadJob {
    fn of(r: &RoutineLoadRecord, status: &'static str, error: Option<String>) -> Self {
        Self {
            name: r.name.clone(),
            source: r.source.clone(),
            table: r.table.clone(),
            topic: r.topic.clone(),
            job_id: r.job_id.clone(),
            status,
            error,
        }
    }

    /// Only rendered (the handoff was not asked to create it).
    pub(crate) fn rendered(r: &RoutineLoadRecord) -> Self {
        Self::of(r, "not_created", None)
    }
}

/// `(placeholder, value)` of every secret the statements hold as a placeholder.
pub(crate) fn secrets(config: &KafkaClientConfig, database: &str) -> Vec<(String, String)> {
    let Ok(k) = pgsnap_kafka::render::routine_load::routine_load_kafka(config, database) else {
        return Vec::new();
    };
    k.placeholders
        .iter()
        .filter_map(|(placeholder, setting)| {
            config.get(setting).map(|v| (placeholder.clone(), v.to_owned()))
        })
        .collect()
}

/// `<db>.<name> (id <id>, <state>, table <table>)`, for refusals.
fn describe(database: &str, info: &RoutineLoadInfo) -> String {
    format!(
        "{database}.{} (id {}, {}, table {})",
        info.name,
        info.id,
        info.state.as_str(),
        info.table
    )
}

/// The jobs that already hold the names of `records` (none created yet): one refusal line per
/// name, naming both jobs. Checked before the snapshot copies anything, with one
/// `SHOW ALL ROUTINE LOAD FROM <db>` whatever the number of records.
pub(crate) async fn names_taken(
    sink: &StarRocksSink,
    records: &[RoutineLoadRecord],
) -> Result<Vec<String>, pgsnap_sink_starrocks::Error> {
    let mut taken = Vec::new();
    if records.is_empty() {
        return Ok(taken);
    }
    let jobs = sink.show_all_routine_loads().await?;
    for r in records {
        // The newest job holding the name (`jobs` is oldest first).
        if let Some(existing) = jobs.iter().rfind(|j| j.name == r.name) {
            taken.push(format!(
                "the Routine Load for {} ({} from topic {}) would be named {}, which job {} holds; \
                 pgsnap never replaces a job, and StarRocks keeps the name of a STOPPED or \
                 CANCELLED job until it cleans the job up: map the table to another StarRocks \
                 table (another job name)",
                r.source,
                r.table,
                r.topic,
                r.name,
                describe(sink.database(), existing)
            ));
        }
    }
    Ok(taken)
}

/// Creates the Routine Loads of `state` that are not there yet, by the rules of the module
/// docs; records the new job ids in `state`. Returns one entry per job; a refusal or a failure
/// is an entry with `status` `not_created` and its `error`.
pub(crate) async fn create_all(
    sink: &StarRocksSink,
    state: &mut HandoffState,
    secrets: &[(String, String)],
) -> Vec<RoutineLoadJob> {
    let database = sink.database().to_owned();
    let mut out = Vec::with_capacity(state.routine_loads.len());
    for r in &mut state.routine_loads {
        let fail = |r: &RoutineLoadRecord, e: String| RoutineLoadJob::of(r, "not_created", Some(e));
        let rows = match sink.show_routine_loads(&r.name).await {
            Ok(rows) => rows,
            Err(e) => {
                out.push(fail(r, format!("SHOW ROUTINE LOAD {database}.{}: {e}", r.name)));
                continue;
            }
        };
        if let Some(id) = r.job_id.clone() {
            let ours = rows.iter().find(|i| i.id == id);
            let live_other = rows.iter().find(|i| i.id != id && !i.state.is_final());
            let entry = match (ours, live_other) {
                (Some(job), _) if !job.state.is_final() => {
                    RoutineLoadJob::of(r, "already_there", None)
                }
                (Some(job), _) => fail(
                    r,
                    format!(
                        "the Routine Load this handoff created, {}, is {}{}; pgsnap does not \
                         replace it: fix the cause, then create a job at the recorded handoff \
                         offsets by hand (or re-snapshot the table)",
                        describe(&database, job),
                        job.state.as_str(),
                        job.reason.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
                    ),
                ),
                (None, Some(other)) => fail(
                    r,
                    format!(
                        "job {} holds the name, but this handoff created job id {id}: pgsnap \
                         does not replace another job",
                        describe(&database, other)
                    ),
                ),
                (None, None) => fail(
                    r,
                    format!(
                        "the Routine Load this handoff created ({database}.{}, id {id}) is gone; \
                         pgsnap does not create it again from the handoff offsets, which would \
                         replay changes already loaded: create it by hand if that is what you \
                         want (on a Primary Key table the replay converges)",
                        r.name
                    ),
                ),
            };
            out.push(entry);
            continue;
        }
        if let Some(existing) = rows.last() {
            out.push(fail(
                r,
                format!(
                    "job {} holds the name {}; pgsnap never replaces a job (definition {})",
                    describe(&database, existing),
                    r.name,
                    r.definition_hash
                ),
            ));
            continue;
        }
        if let Err(e) = sink.create_routine_load(&r.name, &r.definition, secrets).await {
            out.push(fail(r, e.to_string()));
            continue;
        }
        match sink.show_routine_loads(&r.name).await {
            Ok(rows) => match rows.last() {
                Some(job) if !job.state.is_final() => {
                    r.job_id = Some(job.id.clone());
                    tracing::info!(job = %r.name, id = %job.id, table = %r.table, "Routine Load created");
                    out.push(RoutineLoadJob::of(r, "created", None));
                }
                // StarRocks took the statement, then cancelled the job (bad Kafka properties,
                // a missing FILE, ...).
                Some(job) => {
                    r.job_id = Some(job.id.clone());
                    let reason = job.reason.as_deref().unwrap_or("no reason given");
                    out.push(fail(
                        r,
                        format!("created, then {} by StarRocks: {reason}", job.state.as_str()),
                    ));
                }
                None => {
                    out.push(fail(r, "created, but SHOW ROUTINE LOAD does not list it".to_owned()))
                }
            },
            Err(e) => out.push(fail(
                r,
                format!("created, but SHOW ROUTINE LOAD cannot read its id back: {e}"),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            definition_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(definition_hash("a"), definition_hash("b"));
    }

    #[test]
    fn secrets_come_from_the_client_config() {
        let config = KafkaClientConfig::new()
            .with_setting("security.protocol", "SASL_SSL")
            .with_setting("sasl.mechanism", "SCRAM-SHA-512")
            .with_setting("sasl.username", "u")
            .with_setting("sasl.password", "hunter2");
        let s = secrets(&config, "db");
        assert_eq!(s, vec![("${KAFKA_SASL_PASSWORD}".to_owned(), "hunter2".to_owned())]);
        assert!(secrets(&KafkaClientConfig::new(), "db").is_empty());
    }
}
