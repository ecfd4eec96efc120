//! The grounded-reports recipe (RadGenome-Chest CT): ground every sentence of a CT-RATE CSV, write grounded-report
//! rows (sentence × anatomy node and its ancestors, with the node's mask file) and rule-based VQA pairs, as
//! Parquet (`OUT/grounded_reports/`, `OUT/vqa/`) and as CSVs with RadGenome's column names.

use crate::run::{io_err, write_atomic};
use crate::PipelineError;
use medgrain_export::reports::{write_grounded, write_vqa};
use medgrain_imaging::nifti_read::read_nifti;
use medgrain_records::{GroundedRow, VqaRow};
use medgrain_reports::grounded::{grounded_rows, vqa_for_volume, LesionFact};
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
    pub lesions_measured: usize,
    pub size_disagreements: usize,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Lesion masks of one volume (`root/lesions_dir/{stem}/*.nii.gz`, finding name from the file name), each measured
/// (long axis) and placed in the anatomy node of the organ mask that holds most of it. Unreadable masks are skipped
/// with a warning: they only enrich the VQA sizes.
fn lesion_facts(ont: &Ontology, root: &Path, masks_dir: &str, lesions_dir: &str, stem: &str) -> Vec<LesionFact> {
    let list = |dir: &Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with(".nii.gz"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let lesion_files = list(&root.join(lesions_dir).join(stem));
    if lesion_files.is_empty() {
        return Vec::new();
    }
    let organs: Vec<(String, Vec<bool>)> = list(&root.join(masks_dir).join(stem))
        .into_iter()
        .filter_map(|p| {
            let class = p.file_name()?.to_string_lossy().trim_end_matches(".nii.gz").to_string();
            let img = read_nifti(&p).ok()?;
            Some((class, img.voxels.values().map(|v| v > 0.0).collect()))
        })
        .collect();
    let mut out = Vec::new();
    for lf in lesion_files {
        let img = match read_nifti(&lf) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("skipping lesion mask: {e}");
                continue;
            }
        };
        let shape: [usize; 3] = match img.header.shape.as_slice() {
            [x, y, z, ..] => [*x, *y, *z],
            _ => continue,
        };
        let voxels: Vec<usize> = img
            .voxels
            .values()
            .enumerate()
            .filter(|(_, v)| *v > 0.0)
            .map(|(i, _)| i)
            .collect();
        if voxels.is_empty() {
            continue;
        }
        let best = organs
            .iter()
            .map(|(c, m)| {
                (
                    c,
                    voxels.iter().filter(|&&i| m.get(i).copied().unwrap_or(false)).count(),
                )
            })
            .max_by_key(|(_, n)| *n)
            .filter(|(_, n)| *n > 0);
        let Some(node) = best.and_then(|(c, _)| ont.node_for_class(c)) else {
            continue;
        };
        let affine = img.header.best_affine();
        let m = medgrain_roi::measure::measure_component(
            &voxels,
            medgrain_roi::measure::Grid { shape, affine: &affine },
            None,
            10.0,
        );
        let name = lf
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let finding = crate::volume_source::mask_name(&lf);
        if let Some(long) = m.long_axis_mm {
            out.push(LesionFact {
                finding,
                anatomy: node.path.clone(),
                long_axis_mm: long,
                mask_ref: format!("{lesions_dir}/{stem}/{name}"),
            });
        }
    }
    out
}

/// Runs the recipe: `reports` (CT-RATE CSV), organ masks found as `root/masks_dir/{volume stem}/{class}.nii.gz`,
/// lesion masks (optional) as `root/lesions_dir/{volume stem}/*.nii.gz`.
pub fn build_grounded_reports(
    reports: &Path,
    root: &Path,
    masks_dir: &str,
    lesions_dir: Option<&str>,
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
        let lesions = lesions_dir
            .map(|d| lesion_facts(&ont, root, masks_dir, d, stem))
            .unwrap_or_default();
        summary.lesions_measured += lesions.len();
        vqa.extend(vqa_for_volume(volume, sentences, &mask_of, &lesions));
    }
    summary.grounded_rows = grounded.len();
    summary.vqa_rows = vqa.len();
    summary.size_disagreements = vqa.iter().filter(|r| !r.qc_flags.is_empty()).count();
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
