//! Parsing StarRocks' answers leniently: keys are matched case-insensitively and unknown
//! keys ignored (spec §1.3; the Flink SDK does the same), because key names differ between
//! releases (`StreamLoadPlanTimeMs` vs `StreamLoadPutTimeMs`) and between the BE's
//! Stream Load result and the FE's REST results (`Status` vs `status`).

use serde_json::{Map, Value};

/// The fields of a Stream Load result the sink acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LoadResult {
    pub(crate) status: String,
    pub(crate) existing_job_status: Option<String>,
    pub(crate) message: String,
    pub(crate) total_rows: u64,
    pub(crate) loaded_rows: u64,
    pub(crate) filtered_rows: u64,
    pub(crate) unselected_rows: u64,
    pub(crate) error_url: Option<String>,
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn get_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match get(obj, key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn get_u64(obj: &Map<String, Value>, key: &str) -> u64 {
    match get(obj, key) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Parses a JSON answer body into an object; `None` when it is not a JSON object.
pub(crate) fn object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

impl LoadResult {
    /// Parses a Stream Load result (BE `to_json`, or the FE's early `{"Status","Message"}`
    /// and `{"status","msg"}` shapes).
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let obj = object(body)?;
        let status = get_str(&obj, "Status")?;
        let message = get_str(&obj, "Message").or_else(|| get_str(&obj, "msg")).unwrap_or_default();
        let error_url = get_str(&obj, "ErrorURL").filter(|s| !s.is_empty());
        Some(Self {
            status,
            existing_job_status: get_str(&obj, "ExistingJobStatus"),
            message,
            total_rows: get_u64(&obj, "NumberTotalRows"),
            loaded_rows: get_u64(&obj, "NumberLoadedRows"),
            filtered_rows: get_u64(&obj, "NumberFilteredRows"),
            unselected_rows: get_u64(&obj, "NumberUnselectedRows"),
            error_url,
        })
    }
}

/// The `state` of a `get_load_state` answer (spec §1.4), upper-cased.
pub(crate) fn load_state(body: &[u8]) -> Option<String> {
    let obj = object(body)?;
    get_str(&obj, "state").map(|s| s.to_ascii_uppercase())
}

/// A readable message from a FE REST answer (`msg`/`message`/`Message`), for errors.
pub(crate) fn rest_message(body: &[u8]) -> String {
    match object(body) {
        Some(obj) => get_str(&obj, "Message")
            .or_else(|| get_str(&obj, "msg"))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        None => String::from_utf8_lossy(body).chars().take(500).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_be_result_in_any_case() {
        let body = br#"{
    "TxnId": 1003,
    "Label": "l1",
    "Status": "Label Already Exists",
    "ExistingJobStatus": "FINISHED",
    "Message": "Label [l1] has already been used.",
    "NumberTotalRows": 0,
    "NumberLoadedRows": 0,
    "NumberFilteredRows": 0,
    "NumberUnselectedRows": 0,
    "LoadBytes": 0,
    "LoadTimeMs": 0,
    "BeginTxnTimeMs": 0,
    "StreamLoadPutTimeMs": 0,
    "ReadDataTimeMs": 0,
    "WriteDataTimeMs": 0,
    "CommitAndPublishTimeMs": 0
}"#;
        let r = LoadResult::parse(body).unwrap();
        assert_eq!(r.status, "Label Already Exists");
        assert_eq!(r.existing_job_status.as_deref(), Some("FINISHED"));
        let r = LoadResult::parse(br#"{"status":"FAILED","msg":"m","code":"1"}"#).unwrap();
        assert_eq!((r.status.as_str(), r.message.as_str()), ("FAILED", "m"));
        assert!(LoadResult::parse(b"<html>").is_none());
        assert_eq!(
            load_state(
                br#"{"status":"OK","code":"0","msg":"Success","message":"OK","state":"VISIBLE"}"#
            )
            .as_deref(),
            Some("VISIBLE")
        );
    }
}
