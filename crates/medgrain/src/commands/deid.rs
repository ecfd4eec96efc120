//! `medgrain deid` (all work in `medgrain_deid`): walks the inputs, de-identifies each DICOM file in parallel,
//! writes `deid.jsonl` (one line per input file) and `errors.jsonl` (one per failed file).

use crate::cli::DeidArgs;
use crate::error::CliError;
use medgrain_deid::{Deidentifier, Keys, Options};
use rayon::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().map(|d| d.join(p)).unwrap_or(p.to_path_buf()))
}

/// Folders that could not be listed, with why.
type Problems = Vec<(PathBuf, String)>;

/// Every regular file under the inputs, sorted, without duplicates; unreadable folders are reported.
fn walk(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Problems), CliError> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for i in inputs {
        let meta = std::fs::metadata(i).map_err(|e| CliError::Usage(format!("{}: {e}", i.display())))?;
        if meta.is_file() {
            files.push(i.clone());
            continue;
        }
        let mut stack = vec![i.clone()];
        while let Some(d) = stack.pop() {
            match std::fs::read_dir(&d) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        let p = e.path();
                        match e.file_type() {
                            Ok(t) if t.is_dir() => stack.push(p),
                            Ok(_) if p.is_file() => files.push(p),
                            _ => {}
                        }
                    }
                }
                Err(e) => problems.push((d.clone(), format!("cannot list the folder: {e}"))),
            }
        }
    }
    files.sort();
    files.dedup();
    Ok((files, problems))
}

pub(crate) fn run(a: DeidArgs) -> Result<ExitCode, CliError> {
    let keys = Keys::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
    let out = absolute(&a.out);
    for i in &a.inputs {
        if !i.exists() {
            return Err(CliError::Usage(format!("{}: no such file or folder", i.display())));
        }
        let ai = absolute(i);
        if out.starts_with(&ai) {
            return Err(CliError::Usage(format!(
                "--out {} lies inside the input {}: deid never writes into its input",
                a.out.display(),
                i.display()
            )));
        }
        if ai.starts_with(&out) {
            return Err(CliError::Usage(format!(
                "the input {} lies inside --out {}: deid never writes over its input",
                i.display(),
                a.out.display()
            )));
        }
    }
    let logs = a.log_dir.as_ref().map_or(out.clone(), |d| absolute(d));
    for d in [&out, &logs] {
        std::fs::create_dir_all(d).map_err(|source| CliError::Io {
            path: d.clone(),
            source,
        })?;
    }
    let (files, problems) = walk(&a.inputs)?;
    let d = Deidentifier::new(
        keys,
        Options {
            modified_dates: a.modified_dates,
            patient_characteristics: a.patient_characteristics,
            clean_descriptors: a.clean_descriptors,
        },
        a.allow_burned_in,
    );
    let started = std::time::Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let n = files.len();
    let results: Vec<(PathBuf, Result<medgrain_deid::FileOutcome, String>)> = files
        .par_iter()
        .map(|f| {
            let r = d.file(f, &out).map_err(|e| e.to_string());
            let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if k.is_multiple_of(1000) {
                tracing::info!("{k}/{n} files");
            }
            (f.clone(), r)
        })
        .collect();
    // Two input files with one SOPInstanceUID (copies, or test files derived from one another) would share an
    // output name: the first (in path order) keeps it, the others are written again as SOP-2.dcm, SOP-3.dcm, ...
    let mut by_output: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    for (k, (_, r)) in results.iter().enumerate() {
        if let Ok(medgrain_deid::FileOutcome { output: Some(rel), .. }) = r {
            by_output.entry(rel.clone()).or_default().push(k);
        }
    }
    let mut results = results;
    for ks in by_output.values().filter(|ks| ks.len() > 1) {
        for (n, &k) in ks.iter().enumerate() {
            let f = results[k].0.clone();
            results[k].1 = d.file_as(&f, &out, n + usize::from(n > 0)).map_err(|e| e.to_string());
        }
    }
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let (mut written, mut excluded, mut failed) = (0usize, 0usize, 0usize);
    for (p, e) in &problems {
        errors.push(json!({"path": p, "error": e}));
        failed += 1;
    }
    for (f, r) in results {
        match r {
            Ok(o) => {
                let status = if o.output.is_some() {
                    written += 1;
                    "written"
                } else {
                    excluded += 1;
                    "excluded"
                };
                lines.push(json!({"input": f, "output": o.output, "status": status,
                                  "burned_in_risk": o.burned_in_risk, "applied": o.applied}));
            }
            Err(e) => {
                failed += 1;
                lines.push(json!({"input": f, "output": null, "status": "failed", "error": e}));
                errors.push(json!({"path": f, "error": e}));
            }
        }
    }
    write_jsonl(&logs.join("deid.jsonl"), &lines)?;
    write_jsonl(&logs.join("errors.jsonl"), &errors)?;
    let secs = started.elapsed().as_secs_f64();
    outln!(
        "medgrain deid: {n} files: {written} written, {excluded} excluded (burned-in text risk{}), {failed} failed \
         ({:.1} files/s) -> {}",
        if a.allow_burned_in { ", kept" } else { "" },
        n as f64 / secs.max(1e-9),
        a.out.display()
    );
    outln!("  per file: {}", logs.join("deid.jsonl").display());
    if failed > 0 {
        outln!("  failures: {}", logs.join("errors.jsonl").display());
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_jsonl(path: &Path, lines: &[serde_json::Value]) -> Result<(), CliError> {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l.to_string());
        s.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, s)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| CliError::Io {
            path: path.to_path_buf(),
            source,
        })
}
