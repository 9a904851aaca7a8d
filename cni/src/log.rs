//! The optional log file (`"logFile"` in the config): one line per call, appended, beside the
//! stderr line of a failed call. Never stdout.

use std::io::Write;
use std::path::PathBuf;

use crate::protocol::{CniError, Env};

/// The `logFile` the configuration names, if it is readable JSON and names one.
pub(crate) fn log_file(stdin: &[u8]) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    v.get("logFile")?.as_str().map(PathBuf::from)
}

/// Appends one line about this call to `path`; a log that cannot be written is reported on
/// stderr and otherwise ignored (it must not fail the call).
pub(crate) fn append(path: &PathBuf, env: &Env, outcome: Result<(), &CniError>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let what = |v: &Option<String>| v.clone().unwrap_or_default();
    let result = match outcome {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error {}: {} ({})", e.code, e.msg, e.details),
    };
    let line = format!(
        "{now:.3} pid={} {} container={} ifname={} netns={}: {result}\n",
        std::process::id(),
        what(&env.command),
        what(&env.container_id),
        what(&env.ifname),
        what(&env.netns),
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "underlay: cannot write the log file {}: {e}",
            path.display()
        );
    }
}
