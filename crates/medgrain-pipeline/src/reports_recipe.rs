//! The grounded-reports recipe (RadGenome-Chest CT): ground every sentence of a CT-RATE CSV, write grounded-report
//! rows (sentence × anatomy node and its ancestors, with the node's mask file) and rule-based VQA pairs, as
//! Parquet (`OUT/grounded_reports/`, `OUT/vqa/`) and as CSVs with RadGenome's column names.

use crate::run::{io_err, write_atomic};
use crate::PipelineError;
use medgrain_export::reports::{write_grounded, write_vqa};
use medgrain_records::{GroundedRow, VqaRow};
use medgrain_reports::grounded::{grounded_rows, vqa_for_volume};
use medgrain_reports::{ground_csv, GroundedSentence, Ontology};
use std::path::Path;

/// What the recipe wrote.
#[derive(Debug, Clone, Default)]
pub struct ReportsSummary {
    pub volumes: usize,
    pub sentences: usize,
    pub abnormal_sentences: usize,
    pub grounded_rows: usize,
    pub vqa_rows: usize,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs the recipe: `reports` (CT-RATE CSV), masks found as `root/masks_dir/{volume stem}/{class}.nii.gz`.
pub fn build_grounded_reports(
    reports: &Path,
    root: &Path,
    masks_dir: &str,
    out: &Path,
) -> Result<ReportsSummary, PipelineError> {
    let ont = Ontology::embedded().map_err(|e| PipelineError::Internal(e.to_string()))?;
    let mut by_volume: Vec<(String, Vec<GroundedSentence>)> = Vec::new();
    ground_csv(&ont, reports, &mut |g| match by_volume.last_mut() {
        Some((v, list)) if *v == g.volume_id => list.push(g),
        _ => by_volume.push((g.volume_id.clone(), vec![g])),
    })
    .map_err(|e| PipelineError::Usage(e.to_string()))?;
    let mut summary = ReportsSummary {
        volumes: by_volume.len(),
        ..Default::default()
    };
    let mut grounded: Vec<GroundedRow> = Vec::new();
    let mut vqa: Vec<VqaRow> = Vec::new();
    for (volume, sentences) in &by_volume {
        let stem = volume.trim_end_matches(".gz").trim_end_matches(".nii");
        let mask_of = |path: &str| -> Option<String> {
            let node = ont.node(path)?;
            node.totalseg.iter().find_map(|class| {
                let rel = format!("{masks_dir}/{stem}/{class}.nii.gz");
                root.join(&rel).is_file().then_some(rel)
            })
        };
        for g in sentences {
            summary.sentences += 1;
            summary.abnormal_sentences += usize::from(g.grounding.abnormal);
            grounded.extend(grounded_rows(g, &mask_of));
        }
        vqa.extend(vqa_for_volume(volume, sentences, &mask_of));
    }
    summary.grounded_rows = grounded.len();
    summary.vqa_rows = vqa.len();
    for dir in ["grounded_reports", "vqa"] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
    }
    write_grounded(&out.join("grounded_reports/part-00000.parquet"), &grounded)?;
    write_vqa(&out.join("vqa/part-00000.parquet"), &vqa)?;
    // RadGenome-style CSVs so existing loaders read them.
    let mut g_csv = String::from("Volumename,Anatomy,Sentence\n");
    for r in &grounded {
        g_csv.push_str(&format!(
            "{},{},{}\n",
            csv_field(&r.volume_id),
            csv_field(&r.anatomy),
            csv_field(&r.sentence)
        ));
    }
    write_atomic(&out.join("grounded_reports/grounded_reports.csv"), g_csv.as_bytes())?;
    let mut v_csv = String::from("Volumename,Anatomy,Question,Answer\n");
    for r in &vqa {
        v_csv.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(&r.volume_id),
            csv_field(r.anatomy.as_deref().unwrap_or("")),
            csv_field(&r.question),
            csv_field(&r.answer)
        ));
    }
    write_atomic(&out.join("vqa/vqa.csv"), v_csv.as_bytes())?;
    Ok(summary)
}
