//! `medgrain verify DIR`: re-checks every file `manifest.json` lists (`files`: size and SHA-256; also those of
//! `grounded_reports/manifest.json` when the demo wrote one) and every mask a grounded-reports row references (under
//! the input root the manifest names), and names each missing, truncated or altered file.

use crate::engine::fsio::{hash_file, io_err, FileEntry};
use crate::PipelineError;
use std::path::Path;

/// What `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Output files checked (size and SHA-256).
    pub files: usize,
    /// Distinct input paths referenced by rows and checked to exist.
    pub referenced: usize,
    /// One line per problem, naming the file.
    pub problems: Vec<String>,
}

fn check_files(dir: &Path, manifest: &str, report: &mut VerifyReport) -> Result<serde_json::Value, PipelineError> {
    let p = dir.join(manifest);
    let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| PipelineError::Usage(format!("{}: not a manifest medgrain can read: {e}", p.display())))?;
    let files: Vec<FileEntry> = v
        .get("files")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| PipelineError::Usage(format!("{}: files: {e}", p.display())))?
        .ok_or_else(|| {
            PipelineError::Usage(format!(
                "{} lists no files (written by a medgrain before `files` existed): build or merge again",
                p.display()
            ))
        })?;
    for e in files {
        report.files += 1;
        let path = dir.join(&e.path);
        match hash_file(&path) {
            Err(_) if !path.exists() => report.problems.push(format!("{}: missing", e.path)),
            Err(err) => report.problems.push(format!("{}: unreadable: {err}", e.path)),
            Ok((n, _)) if n != e.bytes => report.problems.push(format!(
                "{}: {n} bytes where the manifest says {} (truncated or rewritten)",
                e.path, e.bytes
            )),
            Ok((_, h)) if h != e.sha256 => report.problems.push(format!(
                "{}: altered (SHA-256 {} where the manifest says {})",
                e.path,
                &h[..16],
                &e.sha256[..16.min(e.sha256.len())]
            )),
            Ok(_) => {}
        }
    }
    Ok(v)
}

/// The masks grounded-report and VQA rows reference (`mask_ref`, relative to the input root), checked to exist.
fn check_references(dir: &Path, manifest: &serde_json::Value, report: &mut VerifyReport) {
    let Some(root) = manifest.pointer("/inputs/root").and_then(|r| r.as_str()) else {
        return;
    };
    let root = Path::new(root);
    let mut refs = std::collections::BTreeSet::new();
    for sub in ["grounded_reports", "vqa"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut parts: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        parts.sort();
        for part in parts {
            match medgrain_export::read::string_column(&part, "mask_ref") {
                Ok(v) => refs.extend(v.into_iter().flatten()),
                Err(e) => report.problems.push(e.to_string()),
            }
        }
    }
    for r in refs {
        report.referenced += 1;
        if !root.join(&r).is_file() {
            report
                .problems
                .push(format!("{r}: referenced by a row, missing under {}", root.display()));
        }
    }
}

/// Verifies the dataset in `dir` (see the module docs).
pub fn verify(dir: &Path) -> Result<VerifyReport, PipelineError> {
    let mut report = VerifyReport::default();
    let top = check_files(dir, "manifest.json", &mut report)?;
    check_references(dir, &top, &mut report);
    if dir.join("grounded_reports/manifest.json").is_file() {
        let m = check_files(dir, "grounded_reports/manifest.json", &mut report)?;
        check_references(dir, &m, &mut report);
    }
    Ok(report)
}
