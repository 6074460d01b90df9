//! `bluegreen-sim replay FILE`: re-drive the core from a journal (JSON lines of
//! `bluegreen_core::journal::JournalLine`, as the service writes them, possibly several
//! deployments interleaved) and report, per deployment, the first decision that differs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bluegreen_core::DeploymentId;
use bluegreen_core::journal::{JournalLine, ReplayError, ReplayReport, replay};

/// Why a journal file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JournalFileError {
    #[error("line {line}: not a journal line: {reason}")]
    Parse { line: usize, reason: String },
    #[error("deployment {deployment}: {source}")]
    Replay {
        deployment: String,
        source: ReplayError,
    },
    #[error("the journal has no lines")]
    Empty,
}

/// Parse JSON lines (blank lines skipped) into journal lines.
pub fn parse(text: &str) -> Result<Vec<JournalLine>, JournalFileError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: JournalLine = serde_json::from_str(line).map_err(|e| JournalFileError::Parse {
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(l);
    }
    if out.is_empty() {
        return Err(JournalFileError::Empty);
    }
    Ok(out)
}

/// Replay every deployment of a journal, in order of first appearance.
pub fn replay_all(lines: Vec<JournalLine>) -> Result<Vec<ReplayReport>, JournalFileError> {
    let mut order: Vec<DeploymentId> = Vec::new();
    let mut by: BTreeMap<DeploymentId, Vec<JournalLine>> = BTreeMap::new();
    for l in lines {
        if !by.contains_key(&l.deployment) {
            order.push(l.deployment.clone());
        }
        by.entry(l.deployment.clone()).or_default().push(l);
    }
    let mut reports = Vec::new();
    for id in order {
        let mut lines = by.remove(&id).unwrap_or_default();
        lines.sort_by_key(|l| l.seq);
        let r = replay(&lines).map_err(|source| JournalFileError::Replay {
            deployment: id.to_string(),
            source,
        })?;
        reports.push(r);
    }
    Ok(reports)
}

/// A human report of one replay.
pub fn describe(r: &ReplayReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{}: {} inputs, {} outputs replayed, ends {}",
        r.deployment, r.inputs, r.outputs, r.final_phase
    );
    match &r.divergence {
        None => s.push_str(": identical decisions"),
        Some(d) => {
            let show = |o: &Option<bluegreen_core::Output>| match o {
                Some(o) => serde_json::to_string(o).unwrap_or_else(|e| format!("<{e}>")),
                None => "nothing".into(),
            };
            let _ = write!(
                s,
                "\n  FIRST DIFFERENT DECISION at journal line seq {} ({}):\n    journal: {}\n    replay:  {}",
                d.seq,
                d.at,
                show(&d.journal),
                show(&d.replay)
            );
        }
    }
    s
}

/// Journal lines as the JSON-lines text a runner writes.
pub fn to_json_lines(lines: &[JournalLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&serde_json::to_string(l).expect("journal lines serialise"));
        out.push('\n');
    }
    out
}
