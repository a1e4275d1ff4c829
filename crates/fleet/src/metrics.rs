//! `sshca metrics`: the server side of sshca's telemetry, in the Prometheus text format, for
//! node_exporter's textfile collector. Run by a timer every minute, it reads only the log lines
//! written since its last run (a cursor kept beside the output), keeps its counters across runs,
//! and replaces the output file atomically.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ssh_key::Certificate;

use crate::auth_log::{Scanner, Series, CERT_AUTH, KEY_AUTH};
use crate::sshd::EffectiveConfig;

/// What survives between runs, next to the output (`<output>.state`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The log file this cursor is in (a new inode means it was rotated: read it from the start).
    inode: u64,
    /// How far the log was read.
    offset: u64,
    /// Every series counted so far, as `metric{labels}` → count.
    counters: BTreeMap<String, u64>,
}

/// Where to read and write.
#[derive(Debug, Clone)]
pub struct Paths {
    /// sshd's log; `None`: standard input, the new lines only (as `journalctl --cursor-file`
    /// gives them, which keeps its own cursor).
    pub log: Option<PathBuf>,
    pub output: PathBuf,
    /// The cursor and counters; default `<output>.state`.
    pub state: PathBuf,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub new_lines: usize,
    pub counted: usize,
}

/// Reads the log lines added since the last run, counts them, and writes every metric.
pub fn update(paths: &Paths, config: Option<&EffectiveConfig>, now: u64) -> Result<Run, String> {
    let mut state: State = match std::fs::read(&paths.state) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| format!("{} is corrupt ({err}): delete it to count the log from its start", paths.state.display()))?,
        Err(_) => State::default(),
    };
    let added = match &paths.log {
        Some(log) => read_since(log, &mut state)?,
        None => {
            let mut added = Vec::new();
            std::io::stdin().read_to_end(&mut added).map_err(|err| format!("reading standard input: {err}"))?;
            added
        }
    };
    let text = String::from_utf8_lossy(&added);
    let mut scanner = Scanner::default();
    let mut run = Run { new_lines: 0, counted: 0 };
    for line in text.lines() {
        run.new_lines += 1;
        if let Some(series) = scanner.scan(line) {
            *state.counters.entry(render_series(&series)).or_default() += 1;
            run.counted += 1;
        }
    }
    let rendered = render(&state.counters, config, now);
    // The state first: a run that stops between the two writes leaves old metrics, never counts
    // the same lines twice.
    write_atomically(&paths.state, &serde_json::to_vec(&state).expect("state serializes"))?;
    write_atomically(&paths.output, rendered.as_bytes())?;
    Ok(run)
}

/// The complete lines `log` gained since `state`'s cursor, which moves past them; a rotated or
/// truncated log is read from its start.
fn read_since(path: &Path, state: &mut State) -> Result<Vec<u8>, String> {
    let mut log = std::fs::File::open(path).map_err(|err| format!("cannot read the sshd log {}: {err}", path.display()))?;
    let metadata = log.metadata().map_err(|err| err.to_string())?;
    if metadata.ino() != state.inode || metadata.len() < state.offset {
        state.inode = metadata.ino();
        state.offset = 0;
    }
    log.seek(SeekFrom::Start(state.offset)).map_err(|err| err.to_string())?;
    let mut added = Vec::new();
    log.read_to_end(&mut added).map_err(|err| format!("reading {}: {err}", path.display()))?;
    // A line still being written is read next time, whole.
    added.truncate(added.iter().rposition(|&b| b == b'\n').map_or(0, |last| last + 1));
    state.offset += added.len() as u64;
    Ok(added)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    sshca_proto::fs::write_atomically(path, bytes).map_err(|err| err.to_string())
}

/// `metric{label="value",…}`, with label values escaped as the text format wants.
pub fn render_series(series: &Series) -> String {
    let labels: Vec<String> = series.labels.iter().map(|(name, value)| format!("{name}=\"{}\"", escape(value))).collect();
    format!("{}{{{}}}", series.metric, labels.join(","))
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Every metric, in the Prometheus text format.
pub fn render(counters: &BTreeMap<String, u64>, config: Option<&EffectiveConfig>, now: u64) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    };
    family(
        &mut out,
        CERT_AUTH,
        "counter",
        "Logins with an SSH certificate, by principal (the account), CA fingerprint and result (accepted, or why not).",
    );
    for (series, count) in counters.iter().filter(|(s, _)| s.starts_with(&format!("{CERT_AUTH}{{"))) {
        out.push_str(&format!("{series} {count}\n"));
    }
    family(&mut out, KEY_AUTH, "counter", "Logins with a plain key (no certificate): should stay 0 where AuthorizedKeysFile is none.");
    for result in ["accepted", "rejected"] {
        let series = render_series(&Series { metric: KEY_AUTH, labels: vec![("result", result.to_owned())] });
        out.push_str(&format!("{series} {}\n", counters.get(&series).copied().unwrap_or(0)));
    }
    let Some(config) = config else {
        return out;
    };
    let certificates: Vec<(&String, Certificate)> = config
        .all("hostcertificate")
        .iter()
        .filter_map(|path| Some((path, Certificate::from_openssh(std::fs::read_to_string(path).ok()?.trim()).ok()?)))
        .collect();
    family(&mut out, "ssh_ca_cert_age_seconds", "gauge", "Seconds since the host certificate became valid.");
    for (path, certificate) in &certificates {
        out.push_str(&format!(
            "ssh_ca_cert_age_seconds{{certificate=\"{}\"}} {}\n",
            escape(path),
            now as i64 - certificate.valid_after() as i64
        ));
    }
    family(&mut out, "ssh_ca_cert_expiry_seconds", "gauge", "Seconds the host certificate has left (negative: expired).");
    for (path, certificate) in &certificates {
        out.push_str(&format!(
            "ssh_ca_cert_expiry_seconds{{certificate=\"{}\"}} {}\n",
            escape(path),
            certificate.valid_before() as i64 - now as i64
        ));
    }
    if let Some(path) = config.get("revokedkeys") {
        let summary = std::fs::read(path).ok().and_then(|bytes| sshca_proto::krl::summarize(&bytes).ok());
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if let (Some(summary), Some(modified)) = (summary, modified) {
            let refreshed = modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            family(&mut out, "ssh_revoked_certs_total", "gauge", "Certificates and keys the server's KRL revokes.");
            out.push_str(&format!("ssh_revoked_certs_total{{krl=\"{}\"}} {}\n", escape(path), summary.revoked));
            family(&mut out, "ssh_krl_age_seconds", "gauge", "Seconds since the server's KRL was last refreshed.");
            out.push_str(&format!("ssh_krl_age_seconds{{krl=\"{}\"}} {}\n", escape(path), now.saturating_sub(refreshed)));
        }
    }
    out
}
