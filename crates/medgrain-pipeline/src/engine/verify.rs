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

/// `verify DIR --recipe RECIPE`: the dataset in DIR (rebuilt from another copy of the inputs) against a recipe that
/// `export --format recipe` wrote: every input file with the recipe's size and SHA-256, every row present with the
/// same fields and the same image bytes (SHA-256), no extra row.
pub fn verify_recipe(dir: &Path, recipe: &Path, report: &mut VerifyReport) -> Result<(), PipelineError> {
    use std::collections::BTreeMap;
    let read_lines = |p: &Path| -> Result<Vec<serde_json::Value>, PipelineError> {
        let text = std::fs::read_to_string(p).map_err(|e| io_err(p, e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| PipelineError::Usage(format!("{}: {e}", p.display()))))
            .collect()
    };
    let key = |v: &serde_json::Value| {
        format!(
            "{}/{}",
            v.get("source").and_then(|s| s.as_str()).unwrap_or(""),
            v.get("path").and_then(|s| s.as_str()).unwrap_or("")
        )
    };
    let want: BTreeMap<String, serde_json::Value> = read_lines(&recipe.join("inputs.jsonl"))?
        .into_iter()
        .map(|v| (key(&v), v))
        .collect();
    let here_path = dir.join("inputs.jsonl");
    if !here_path.is_file() {
        report
            .problems
            .push("inputs.jsonl: missing (built with --no-input-hash?): the inputs cannot be compared".into());
    } else {
        let have: BTreeMap<String, serde_json::Value> =
            read_lines(&here_path)?.into_iter().map(|v| (key(&v), v)).collect();
        for (k, w) in &want {
            match have.get(k) {
                None => report
                    .problems
                    .push(format!("input {k}: in the recipe, not used by this build")),
                Some(h) if h.get("sha256") != w.get("sha256") => report.problems.push(format!(
                    "input {k}: differs from the recipe's ({} bytes, SHA-256 {}… here; {} bytes, {}… in the recipe)",
                    h["bytes"],
                    h["sha256"].as_str().unwrap_or("").get(..16).unwrap_or(""),
                    w["bytes"],
                    w["sha256"].as_str().unwrap_or("").get(..16).unwrap_or("")
                )),
                Some(_) => {}
            }
        }
        for k in have.keys().filter(|k| !want.contains_key(*k)) {
            report
                .problems
                .push(format!("input {k}: used by this build, not in the recipe"));
        }
    }
    let mut rows: BTreeMap<String, serde_json::Value> = read_lines(&recipe.join("rows.jsonl"))?
        .into_iter()
        .map(|v| (v.get("id").and_then(|s| s.as_str()).unwrap_or("").to_string(), v))
        .collect();
    let mut parts: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("triplets"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    parts.retain(|p| p.extension().is_some_and(|x| x == "parquet"));
    parts.sort();
    let mut checked = 0usize;
    for p in parts {
        medgrain_export::export::rows::for_each_row(&p, &mut |row| {
            // through JSON text and back, as the recipe's rows were: numbers compare as parsed, not as computed
            let mine = medgrain_export::export::recipe_row(&row);
            let mine: serde_json::Value = serde_json::to_vec(&mine)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(mine);
            let id = row.id().to_string();
            checked += 1;
            match rows.remove(&id) {
                None => report.problems.push(format!("row {id}: not in the recipe")),
                Some(w) if w != mine => {
                    let (a, b) = (w.as_object(), mine.as_object());
                    let mut fields: Vec<&String> = a
                        .into_iter()
                        .flatten()
                        .filter(|(k, v)| b.and_then(|b| b.get(*k)) != Some(*v))
                        .map(|(k, _)| k)
                        .collect();
                    fields.extend(
                        b.into_iter()
                            .flatten()
                            .map(|(k, _)| k)
                            .filter(|k| a.is_none_or(|a| !a.contains_key(*k))),
                    );
                    report.problems.push(format!(
                        "row {id} ({}): differs from the recipe in {}",
                        row.str("source_path").unwrap_or(""),
                        fields.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                Some(_) => {}
            }
            Ok(())
        })?;
    }
    for id in rows.keys() {
        report
            .problems
            .push(format!("row {id}: in the recipe, not rebuilt here"));
    }
    report.referenced += checked;
    Ok(())
}
