//! `medgrain inspect DIR`: a summary of an output dataset read from the data itself (Parquet parts and
//! `errors.jsonl`), not from `stats.json`, so it also checks that the dataset is readable.

use crate::engine::fsio::io_err;
use crate::PipelineError;
use medgrain_export::read::{triplet_summaries, TripletSummary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub dir: String,
    pub tool_version: Option<String>,
    pub parquet_files: usize,
    pub rows: u64,
    pub rois: u64,
    pub qc_failed: u64,
    pub by_modality: BTreeMap<String, u64>,
    pub by_organ: BTreeMap<String, u64>,
    pub by_source: BTreeMap<String, u64>,
    /// Rows per split (empty for a dataset built without `[splits]`).
    pub by_split: BTreeMap<String, u64>,
    pub failures: u64,
    pub failures_by_stage: BTreeMap<String, u64>,
    /// Rows of `grounded_reports/*.parquet` and `vqa/*.parquet`, when present.
    pub grounded_report_rows: u64,
    pub vqa_rows: u64,
    pub samples: Vec<TripletSummary>,
    /// Rows per latest decision in `review.sqlite` (`medgrain review`); empty without one. Filled by the caller.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub review_decisions: BTreeMap<String, u64>,
}

fn bump(m: &mut BTreeMap<String, u64>, k: Option<&str>) {
    *m.entry(k.unwrap_or("unknown").to_string()).or_insert(0) += 1;
}

/// Reads the dataset in `dir`; `n_samples` rows are kept for display (spread over the dataset: the first row,
/// and the first rows with ROIs from different modalities).
pub fn inspect(dir: &Path, n_samples: usize) -> Result<Inspection, PipelineError> {
    if !dir.is_dir() {
        return Err(PipelineError::Usage(format!("{}: not a folder", dir.display())));
    }
    let manifest: Option<serde_json::Value> = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let parts_dir = dir.join("triplets");
    let mut parts: Vec<_> = match std::fs::read_dir(&parts_dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect(),
        Err(_) if manifest.is_none() => {
            return Err(PipelineError::Usage(format!(
                "{}: no manifest.json and no triplets/ — not a medgrain output folder",
                dir.display()
            )))
        }
        Err(_) => Vec::new(),
    };
    parts.sort();
    let mut ins = Inspection {
        dir: dir.display().to_string(),
        tool_version: manifest
            .as_ref()
            .and_then(|m| m.get("version"))
            .and_then(|v| v.as_str())
            .map(str::to_string),
        parquet_files: parts.len(),
        rows: 0,
        rois: 0,
        qc_failed: 0,
        by_modality: BTreeMap::new(),
        by_organ: BTreeMap::new(),
        by_source: BTreeMap::new(),
        by_split: BTreeMap::new(),
        failures: 0,
        failures_by_stage: BTreeMap::new(),
        grounded_report_rows: parquet_rows_in(&dir.join("grounded_reports"))?,
        vqa_rows: parquet_rows_in(&dir.join("vqa"))?,
        samples: Vec::new(),
        review_decisions: BTreeMap::new(),
    };
    let mut shown_modalities = std::collections::BTreeSet::new();
    for part in &parts {
        for r in triplet_summaries(part)? {
            ins.rows += 1;
            ins.rois += r.roi_labels.len() as u64;
            ins.qc_failed += u64::from(!r.qc_passed);
            bump(&mut ins.by_modality, r.modality.as_deref());
            bump(&mut ins.by_organ, r.organ.as_deref());
            bump(&mut ins.by_source, Some(&r.source));
            if let Some(s) = &r.split {
                bump(&mut ins.by_split, Some(s));
            }
            let modality = r.modality.clone().unwrap_or_default();
            let wanted = ins.samples.len() < n_samples
                && (ins.samples.is_empty() || (!r.roi_labels.is_empty() && !shown_modalities.contains(&modality)));
            if wanted {
                shown_modalities.insert(modality);
                ins.samples.push(r);
            }
        }
    }
    let errors_path = dir.join("errors.jsonl");
    if errors_path.exists() {
        let text = std::fs::read_to_string(&errors_path).map_err(|e| io_err(&errors_path, e))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            ins.failures += 1;
            let stage = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("stage").and_then(|s| s.as_str()).map(str::to_string));
            bump(&mut ins.failures_by_stage, stage.as_deref());
        }
    }
    Ok(ins)
}

fn parquet_rows_in(dir: &Path) -> Result<u64, PipelineError> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut n = 0;
    for e in rd.flatten() {
        if e.path().extension().is_some_and(|x| x == "parquet") {
            n += medgrain_export::read::parquet_rows(&e.path())?;
        }
    }
    Ok(n)
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn counts(title: &str, m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let body: Vec<String> = v.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{title:<10} {}\n", body.join(" · "))
}

impl Inspection {
    /// Human-readable rendering.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} — medgrain {}\n{} triplet rows in {} Parquet files, {} ROIs, {} failed samples, {} rows with QC flags\n\n",
            self.dir,
            self.tool_version.as_deref().unwrap_or("?"),
            self.rows,
            self.parquet_files,
            self.rois,
            self.failures,
            self.qc_failed
        );
        s.push_str(&counts("modality", &self.by_modality));
        s.push_str(&counts("organ", &self.by_organ));
        s.push_str(&counts("source", &self.by_source));
        if !self.by_split.is_empty() {
            s.push_str(&counts("split", &self.by_split));
        }
        if self.grounded_report_rows + self.vqa_rows > 0 {
            s.push_str(&format!(
                "{:<10} {} grounded-report rows · {} VQA pairs\n",
                "reports", self.grounded_report_rows, self.vqa_rows
            ));
        }
        if !self.failures_by_stage.is_empty() {
            s.push_str(&counts("failures", &self.failures_by_stage));
        }
        if !self.review_decisions.is_empty() {
            s.push_str(&counts("reviewed", &self.review_decisions));
        }
        for (i, r) in self.samples.iter().enumerate() {
            s.push_str(&format!(
                "\n── sample {} · {} · {}:{}\n",
                i + 1,
                r.id,
                r.source,
                r.source_path
            ));
            s.push_str(&format!(
                "   {} · {} · {}\n",
                r.modality.as_deref().unwrap_or("?"),
                r.organ.as_deref().unwrap_or("?"),
                if r.diseases.is_empty() {
                    "-".to_string()
                } else {
                    r.diseases.join(", ")
                }
            ));
            s.push_str(&format!("   caption: {}\n", r.coarse_caption));
            if !r.roi_labels.is_empty() {
                let rois: Vec<String> = r
                    .roi_labels
                    .iter()
                    .zip(&r.roi_positions)
                    .map(|(l, p)| format!("{l} ({p})"))
                    .collect();
                s.push_str(&format!("   rois: {}\n", rois.join("; ")));
            }
            s.push_str(&wrap(&r.description, 100, "   "));
            if !r.qc_flags.is_empty() {
                s.push_str(&format!("   qc flags: {}\n", r.qc_flags.join(", ")));
            }
        }
        s
    }
}
