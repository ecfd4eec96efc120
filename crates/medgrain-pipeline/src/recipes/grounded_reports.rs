//! The grounded-reports recipe (RadGenome-Chest CT): ground every sentence of a CT-RATE CSV, write grounded-report
//! rows (sentence × anatomy node and its ancestors, with the node's mask file), rule-based VQA pairs, and RadGPT-style
//! structured findings measured on the masks (organ volume and HU, lesions with size, volume and attenuation) with
//! the report/mask contradictions in `qc.flags`.
//!
//! Streaming and resumable: the CSV is read one row at a time and cut into shards of `shard_volumes` reports; each
//! shard is processed in parallel (rayon, per volume) and written as `grounded_reports/part-NNNNN.parquet`,
//! `vqa/part-NNNNN.parquet`, `structured_findings/part-NNNNN.jsonl` plus a completion marker
//! (`.medgrain/shards/reports-NNNNN.json`) that records a hash of the shard's rows and of the recipe settings. A rerun
//! keeps every shard whose marker matches and redoes the rest. The RadGenome-style CSVs
//! (`grounded_reports/grounded_reports.csv`, `vqa/vqa.csv`) are assembled from per-shard parts at the end.

use crate::config::LoadedConfig;
use crate::engine::fsio::{file_entry, io_err, remove_temporaries, same_size, sha256_hex, write_atomic, FileEntry};
use crate::engine::plan::{Plan, PlanInput, ShardState, Status};
use crate::engine::shards::{run_some_shards, MarkerStore, ShardLimits, ShardTimeout, ShardWork};
use crate::PipelineError;
use medgrain_export::reports::{write_grounded, write_vqa};
use medgrain_records::{ErrorRecord, GroundedRow, LesionFindings, OrganFindings, Qc, VolumeFindings, VqaRow};
use medgrain_reports::grounded::{grounded_rows, report_mask_flags, vqa_for_volume, LesionFact};
use medgrain_reports::{read_reports, GroundedSentence, Ontology, ReportRecord};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the recipe's output; part of every shard key, so a change of the rules redoes old shards.
const RECIPE_VERSION: &str = "grounded-reports-v2";

/// Inputs and settings of one run of the recipe.
#[derive(Debug, Clone)]
pub struct ReportsJob {
    /// CT-RATE CSV (`VolumeName`, `Findings_EN`, `Impressions_EN`, optional `ClinicalInformation_EN`, `Technique_EN`).
    pub csv: PathBuf,
    /// The input root that mask paths (and `mask_ref`) are relative to.
    pub root: PathBuf,
    /// Organ masks: `root/masks/{volume stem}/{class}.nii.gz`.
    pub masks: String,
    /// Lesion masks, optional: `root/lesions/{volume stem}/*.nii.gz`, finding name from the file name.
    pub lesions: Option<String>,
    /// CT volumes, optional: `root/volumes/{VolumeName}`; enables HU figures.
    pub volumes: Option<String>,
    /// Reports per shard.
    pub shard_volumes: usize,
    /// `[splits]`: every row gets its volume's split (key: the volume's file name, as the triplet recipe's volume
    /// splits use it). Patient and study splits need a key this recipe does not read yet (refused at load).
    pub splits: Option<crate::config::SplitsConfig>,
    /// Write `manifest.json`, `stats.json` and `errors.jsonl` at the top of `out` (a run of this recipe alone);
    /// otherwise under `out/grounded_reports/` with errors appended to `out/errors.jsonl` (the demo, after triplets).
    pub top_level_files: bool,
    /// Scrub identifying spans from the report text before anything reads it (`[reports] deid`).
    pub deid: bool,
}

/// What the recipe wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReportsSummary {
    pub volumes: usize,
    pub sentences: usize,
    pub abnormal_sentences: usize,
    pub grounded_rows: usize,
    pub vqa_rows: usize,
    pub lesions_measured: usize,
    pub size_disagreements: usize,
    /// Volumes whose masks contradict their report (any `qc.flags`).
    pub volumes_flagged: usize,
    pub errors: usize,
    pub shards: usize,
    pub shards_resumed: usize,
    /// Identifying spans replaced in the report text, per kind (with `deid`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub deid_spans: std::collections::BTreeMap<String, u64>,
    /// The config's hash, for a run from a config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

impl ReportsSummary {
    fn add(&mut self, o: &ReportsSummary) {
        self.volumes += o.volumes;
        self.sentences += o.sentences;
        self.abnormal_sentences += o.abnormal_sentences;
        self.grounded_rows += o.grounded_rows;
        self.vqa_rows += o.vqa_rows;
        self.lesions_measured += o.lesions_measured;
        self.size_disagreements += o.size_disagreements;
        self.volumes_flagged += o.volumes_flagged;
        self.errors += o.errors;
        for (k, v) in &o.deid_spans {
            *self.deid_spans.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// Completion marker of one shard.
#[derive(Debug, Serialize, Deserialize)]
struct ShardMarker {
    key: String,
    counts: ReportsSummary,
    errors: Vec<ErrorRecord>,
    /// Size and SHA-256 of the shard's grounded-reports, VQA and structured-findings parts (`manifest.json`'s
    /// `files`).
    #[serde(default)]
    files: Vec<FileEntry>,
}

impl ShardMarker {
    /// Whether the shard's parts are on disk as they were written (present, with the sizes the marker recorded).
    fn intact(&self, out: &Path, k: usize) -> bool {
        self.files.len() == 3
            && self.files.iter().all(|e| same_size(out, e))
            && ReportsWork::paths_in(out, k).iter().all(|p| p.is_file())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn nifti_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".nii.gz") || p.to_string_lossy().ends_with(".nii"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn class_of(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.trim_end_matches(".gz").trim_end_matches(".nii").to_string()
}

/// Everything one volume contributes.
struct VolumeOutput {
    grounded: Vec<GroundedRow>,
    vqa: Vec<VqaRow>,
    findings: VolumeFindings,
    counts: ReportsSummary,
    errors: Vec<ErrorRecord>,
}

fn shape3(shape: &[usize]) -> Option<[usize; 3]> {
    match shape {
        [x, y, z] => Some([*x, *y, *z]),
        [x, y, z, rest @ ..] if rest.iter().all(|&d| d == 1) => Some([*x, *y, *z]),
        _ => None,
    }
}

/// A mask file's header, voxels (non-zero bytes only for gzip'd uint8 masks, else the stored bytes in `scratch`,
/// reused from mask to mask) and 3D shape.
fn read_mask<'a>(
    p: &Path,
    scratch: &'a mut Vec<u8>,
) -> Result<
    (
        medgrain_imaging::nifti_read::NiftiHeader,
        medgrain_imaging::nifti_read::MaskVoxels<'a>,
        [usize; 3],
    ),
    String,
> {
    let (header, raw) = medgrain_imaging::nifti_read::read_nifti_mask(p, scratch).map_err(|e| e.to_string())?;
    let shape = shape3(&header.shape).ok_or_else(|| format!("not a 3D mask: shape {:?}", header.shape))?;
    Ok((header, raw, shape))
}

/// Organ masks (as one label volume), CT statistics per organ, and every lesion measured and placed.
fn measure_volume(
    ont: &Ontology,
    job: &ReportsJob,
    report: &ReportRecord,
    stem: &str,
    errors: &mut Vec<ErrorRecord>,
) -> (Vec<OrganFindings>, Vec<LesionFindings>) {
    let mut err = |path: &Path, stage: &str, e: String| {
        errors.push(ErrorRecord {
            source: "reports".into(),
            source_path: path.strip_prefix(&job.root).unwrap_or(path).display().to_string(),
            stage: stage.into(),
            error: e,
        })
    };
    // The CT and every mask are read into two buffers reused from volume to volume (shards run on threads of
    // their own, so the pool is shared): a 512×512×300 volume then costs no fresh pages (zeroing them was a
    // third of the time).
    let (mut ct_buf, mut scratch) = SCRATCH.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
    let ct_path = job
        .volumes
        .as_ref()
        .map(|d| job.root.join(d).join(&report.volume_id))
        .filter(|p| p.is_file());
    let ct = ct_path.and_then(
        |p| match medgrain_imaging::nifti_read::read_nifti_raw(&p, &mut ct_buf) {
            Ok(x) => Some(x),
            Err(e) => {
                err(&p, "volume", e.to_string());
                None
            }
        },
    );
    // HU read in place from the stored bytes (no f64 copy of a 512×512×300 volume)
    let ct_values: Option<&medgrain_imaging::nifti_read::RawVoxels<'_>> = ct.as_ref().map(|(_, raw)| raw);
    let ct_shape = ct.as_ref().and_then(|(h, _)| shape3(&h.shape));
    let mut grid: Option<([usize; 3], [[f64; 4]; 4])> = ct
        .as_ref()
        .and_then(|(h, _)| Some((shape3(&h.shape)?, h.best_affine())));
    let mut labels: Vec<u16> = Vec::new();
    let mut organs: Vec<OrganFindings> = Vec::new();
    for p in nifti_files(&job.root.join(&job.masks).join(stem)) {
        let (header, raw, shape) = match read_mask(&p, &mut scratch) {
            Ok(x) => x,
            Err(e) => {
                err(&p, "mask", e);
                continue;
            }
        };
        match grid {
            Some((s, _)) if s != shape => {
                err(
                    &p,
                    "mask",
                    format!("mask grid {shape:?} differs from the volume's {s:?}"),
                );
                continue;
            }
            None => grid = Some((shape, header.best_affine())),
            _ => {}
        }
        if labels.is_empty() {
            labels = vec![0; shape.iter().product()];
        }
        let k = organs.len() as u16 + 1;
        let affine = header.best_affine();
        let voxel_mm3 = medgrain_roi::measure::voxel_volume_mm3(&affine);
        let (mut n, mut sum, mut sum2) = (0usize, 0.0f64, 0.0f64);
        let hu = ct_values.filter(|_| ct_shape == Some(shape));
        // the mask's voxels only, zero runs skipped a word at a time
        raw.for_each_positive(|i| {
            n += 1;
            if let Some(l) = labels.get_mut(i) {
                if *l == 0 {
                    *l = k;
                }
            }
            if let Some(h) = hu.and_then(|c| c.get(i)) {
                sum += h;
                sum2 += h * h;
            }
        });
        let with_hu = ct_values.is_some() && ct_shape == Some(shape) && n > 0;
        let mean = sum / n.max(1) as f64;
        let class = class_of(&p);
        organs.push(OrganFindings {
            anatomy: ont.node_for_class(&class).map(|n| n.path.clone()),
            class,
            volume_ml: n as f64 * voxel_mm3 / 1000.0,
            mean_hu: with_hu.then_some(mean),
            std_hu: with_hu.then(|| (sum2 / n as f64 - mean * mean).max(0.0).sqrt()),
            lesions: Vec::new(),
        });
    }
    let mut lesions = Vec::new();
    let Some(dir) = &job.lesions else {
        drop(ct);
        give_back(ct_buf, scratch);
        return (organs, lesions);
    };
    for p in nifti_files(&job.root.join(dir).join(stem)) {
        let (header, raw, shape) = match read_mask(&p, &mut scratch) {
            Ok(x) => x,
            Err(e) => {
                err(&p, "lesion", e);
                continue;
            }
        };
        if grid.is_some_and(|(s, _)| s != shape) {
            err(&p, "lesion", "lesion mask grid differs from the volume's".into());
            continue;
        }
        let mut voxels: Vec<usize> = Vec::new();
        raw.for_each_positive(|i| voxels.push(i));
        if voxels.is_empty() {
            continue;
        }
        let finding = crate::sources::volume::mask_name(&p);
        // The organ holding most of the lesion, else the finding's usual place (an effusion lies outside the lung).
        let mut votes = vec![0usize; organs.len() + 1];
        for &i in &voxels {
            if let Some(&l) = labels.get(i) {
                votes[l as usize] += 1;
            }
        }
        let best = (1..votes.len()).filter(|&k| votes[k] > 0).max_by_key(|&k| votes[k]);
        let anatomy = best
            .and_then(|k| organs[k - 1].anatomy.clone())
            .or_else(|| ont.usual_anatomy(&finding).map(str::to_string))
            .unwrap_or_else(|| "others".into());
        let affine = header.best_affine();
        let hu_at = |i: usize| ct_values.and_then(|c| c.get(i)).unwrap_or(f64::NAN);
        let image = ct_values
            .filter(|_| ct_shape == Some(shape))
            .map(|_| &hu_at as &dyn Fn(usize) -> f64);
        let m = medgrain_roi::measure::measure_component(
            &voxels,
            medgrain_roi::measure::Grid { shape, affine: &affine },
            image,
            10.0,
        );
        let rel = p.strip_prefix(&job.root).unwrap_or(&p).display().to_string();
        let lesion = LesionFindings {
            finding,
            anatomy,
            measurements: m,
            mask_ref: rel,
            reported: String::new(),
            reported_size_mm: None,
        };
        lesions.push(lesion);
    }
    drop(ct);
    give_back(ct_buf, scratch);
    (organs, lesions)
}

/// The CT and mask buffers of [`measure_volume`]: one pair per volume in flight, kept for the next (constant
/// memory per worker: the largest volume's bytes and the largest mask's).
static SCRATCH: std::sync::Mutex<Vec<(Vec<u8>, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());

fn give_back(ct: Vec<u8>, mask: Vec<u8>) {
    if let Ok(mut p) = SCRATCH.lock() {
        p.push((ct, mask));
    }
}

fn organ_block(organs: &mut [OrganFindings], lesions: &[LesionFindings]) -> String {
    for l in lesions {
        if let Some(o) = organs
            .iter_mut()
            .find(|o| o.anatomy.as_deref() == Some(l.anatomy.as_str()))
        {
            o.lesions.push(l.clone());
        }
    }
    let mut lines = Vec::new();
    for o in organs.iter() {
        let mut line = format!("{}: {:.0} ml", o.class.replace('_', " "), o.volume_ml);
        if let Some(h) = o.mean_hu {
            line.push_str(&format!(", mean {h:.0} HU"));
        }
        for (k, l) in o.lesions.iter().enumerate() {
            line.push_str(&format!("; lesion {}: {}", k + 1, lesion_text(l)));
        }
        lines.push(line);
    }
    for l in lesions
        .iter()
        .filter(|l| !organs.iter().any(|o| o.anatomy.as_deref() == Some(l.anatomy.as_str())))
    {
        lines.push(format!(
            "{}: {}",
            l.anatomy.rsplit('/').next().unwrap_or(&l.anatomy),
            lesion_text(l)
        ));
    }
    lines.join("\n")
}

fn lesion_text(l: &LesionFindings) -> String {
    let m = &l.measurements;
    let mut s = l.finding.clone();
    if let (Some(a), Some(b)) = (m.long_axis_mm, m.short_axis_mm) {
        s.push_str(&format!(", {a:.0} × {b:.0} mm"));
    }
    if let Some(v) = m.volume_mm3 {
        s.push_str(&format!(", {:.1} ml", v / 1000.0));
    }
    if let Some(h) = m.mean_hu {
        s.push_str(&format!(", mean {h:.0} HU"));
    }
    if let Some(a) = &m.attenuation {
        s.push_str(&format!(", {a}"));
    }
    s.push_str(&format!(" (report: {})", l.reported));
    s
}

fn process_volume(ont: &Ontology, job: &ReportsJob, report: &ReportRecord) -> VolumeOutput {
    let sentences: Vec<GroundedSentence> = report.ground(ont);
    let stem = report
        .volume_id
        .trim_end_matches(".gz")
        .trim_end_matches(".nii")
        .to_string();
    // The volume's mask files, listed once (not a stat per grounded row).
    let present: std::collections::HashSet<String> = nifti_files(&job.root.join(&job.masks).join(&stem))
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    let mask_of = |path: &str| -> Option<String> {
        let node = ont.node(path)?;
        node.totalseg.iter().find_map(|class| {
            let file = format!("{class}.nii.gz");
            present.contains(&file).then(|| format!("{}/{stem}/{file}", job.masks))
        })
    };
    let mut counts = ReportsSummary {
        volumes: 1,
        ..Default::default()
    };
    let mut grounded = Vec::new();
    for g in &sentences {
        counts.sentences += 1;
        counts.abnormal_sentences += usize::from(g.grounding.abnormal);
        grounded.extend(grounded_rows(g, &mask_of));
    }
    let mut errors = Vec::new();
    let (mut organs, mut lesions) = measure_volume(ont, job, report, &stem, &mut errors);
    let flags = report_mask_flags(&sentences, &mut lesions, job.lesions.is_some());
    let facts: Vec<LesionFact> = lesions
        .iter()
        .filter_map(|l| {
            Some(LesionFact {
                finding: l.finding.clone(),
                anatomy: l.anatomy.clone(),
                long_axis_mm: l.measurements.long_axis_mm?,
                mask_ref: l.mask_ref.clone(),
            })
        })
        .collect();
    counts.lesions_measured = facts.len();
    let mut vqa = vqa_for_volume(&report.volume_id, &sentences, &mask_of, &facts);
    if let Some(s) = &job.splits {
        let split = s.assign(&crate::config::volume_split_key(&report.volume_id));
        grounded.iter_mut().for_each(|r| r.split = Some(split.to_string()));
        vqa.iter_mut().for_each(|r| r.split = Some(split.to_string()));
    }
    counts.size_disagreements = vqa.iter().filter(|r| !r.qc_flags.is_empty()).count();
    counts.grounded_rows = grounded.len();
    counts.vqa_rows = vqa.len();
    counts.volumes_flagged = usize::from(!flags.is_empty());
    counts.errors = errors.len();
    let summary = organ_block(&mut organs, &lesions);
    VolumeOutput {
        grounded,
        vqa,
        findings: VolumeFindings {
            volume_id: report.volume_id.clone(),
            clinical_information: report.clinical_information.clone(),
            technique: report.technique.clone(),
            organs,
            summary,
            qc: Qc {
                passed: flags.is_empty(),
                flags,
            },
        },
        counts,
        errors,
    }
}

fn part_name(k: usize, ext: &str) -> String {
    format!("part-{k:05}.{ext}")
}

/// The grounded-reports recipe's shards for the engine's runner: a shard is `shard_volumes` consecutive reports of
/// the CSV, its key the hash of the recipe version, the settings and the reports' text.
struct ReportsWork<'a> {
    ont: Ontology,
    job: &'a ReportsJob,
    out: &'a Path,
    settings: String,
}

impl ReportsWork<'_> {
    fn paths(&self, k: usize) -> [PathBuf; 5] {
        Self::paths_in(self.out, k)
    }

    /// Shard `k`'s parts in `o`.
    fn paths_in(o: &Path, k: usize) -> [PathBuf; 5] {
        [
            o.join("grounded_reports").join(part_name(k, "parquet")),
            o.join("vqa").join(part_name(k, "parquet")),
            o.join("structured_findings").join(part_name(k, "jsonl")),
            o.join(".medgrain/parts").join(format!("grounded-{k:05}.csv")),
            o.join(".medgrain/parts").join(format!("vqa-{k:05}.csv")),
        ]
    }
}

impl ShardWork for ReportsWork<'_> {
    type Input = Vec<ReportRecord>;
    type Marker = ShardMarker;

    fn prefix(&self) -> &'static str {
        "reports"
    }

    fn key(&self, _k: usize, reports: &Vec<ReportRecord>) -> Result<String, PipelineError> {
        let hashes = reports.iter().map(report_hash).collect::<Result<Vec<_>, _>>()?;
        Ok(shard_key(&self.settings, &hashes))
    }

    fn keep(&self, k: usize, key: &str, m: &ShardMarker) -> bool {
        m.key == key && m.intact(self.out, k)
    }

    fn remove_parts(&self, k: usize) -> Result<(), PipelineError> {
        for p in self.paths(k) {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    fn process(&self, k: usize, reports: Vec<ReportRecord>, key: String) -> Result<ShardMarker, PipelineError> {
        let paths = self.paths(k);
        let mut spans = std::collections::BTreeMap::new();
        let reports = if self.job.deid {
            reports.into_iter().map(|r| scrub_report(r, &mut spans)).collect()
        } else {
            reports
        };
        let outputs: Vec<VolumeOutput> = reports
            .par_iter()
            .map(|r| process_volume(&self.ont, self.job, r))
            .collect();
        let mut counts = ReportsSummary {
            deid_spans: spans,
            ..ReportsSummary::default()
        };
        let (mut grounded, mut vqa, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let mut jsonl = String::new();
        for o in outputs {
            counts.add(&o.counts);
            grounded.extend(o.grounded);
            vqa.extend(o.vqa);
            errors.extend(o.errors);
            jsonl.push_str(&serde_json::to_string(&o.findings).map_err(|e| PipelineError::Internal(e.to_string()))?);
            jsonl.push('\n');
        }
        // the writers write to a temporary name, sync and rename themselves
        write_grounded(&paths[0], &grounded)?;
        write_vqa(&paths[1], &vqa)?;
        write_atomic(&paths[2], jsonl.as_bytes())?;
        let mut g_csv = String::new();
        for r in &grounded {
            g_csv.push_str(&format!(
                "{},{},{}\n",
                csv_field(&r.volume_id),
                csv_field(&r.anatomy),
                csv_field(&r.sentence)
            ));
        }
        write_atomic(&paths[3], g_csv.as_bytes())?;
        let mut v_csv = String::new();
        for r in &vqa {
            v_csv.push_str(&format!(
                "{},{},{},{}\n",
                csv_field(&r.volume_id),
                csv_field(r.anatomy.as_deref().unwrap_or("")),
                csv_field(&r.question),
                csv_field(&r.answer)
            ));
        }
        write_atomic(&paths[4], v_csv.as_bytes())?;
        tracing::info!(
            "reports shard {k}: {} volumes, {} grounded rows, {} VQA pairs",
            counts.volumes,
            counts.grounded_rows,
            counts.vqa_rows
        );
        let rel = |p: &Path| {
            p.strip_prefix(self.out)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        };
        let files = paths[..3]
            .iter()
            .map(|p| file_entry(self.out, &rel(p)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ShardMarker {
            key,
            counts,
            errors,
            files,
        })
    }
}

/// Concatenates the per-shard CSV parts under one header (streaming, one part in memory at a time).
fn assemble_csv(out: &Path, dest: &Path, header: &str, prefix: &str, shards: usize) -> Result<(), PipelineError> {
    use std::io::Write;
    let tmp = medgrain_export::temp_path(dest);
    let f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let mut w = std::io::BufWriter::new(f);
    w.write_all(header.as_bytes()).map_err(|e| io_err(&tmp, e))?;
    for k in 0..shards {
        let p = out.join(".medgrain/parts").join(format!("{prefix}-{k:05}.csv"));
        let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
        w.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
    }
    w.flush().map_err(|e| io_err(&tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, dest).map_err(|e| io_err(dest, e))
}

/// The hash of one report's text (every field the recipe reads).
/// The report with every identifying span of its text replaced (see [`medgrain_deid::text`]), counted in `spans`.
fn scrub_report(mut r: ReportRecord, spans: &mut std::collections::BTreeMap<String, u64>) -> ReportRecord {
    let mut one = |t: &mut String| {
        let s = medgrain_deid::text::scrub(t);
        for (k, v) in s.counts {
            *spans.entry(k).or_insert(0) += v;
        }
        *t = s.text;
    };
    one(&mut r.findings);
    one(&mut r.impressions);
    if let Some(c) = r.clinical_information.as_mut() {
        one(c);
    }
    if let Some(t) = r.technique.as_mut() {
        one(t);
    }
    r
}

fn report_hash(r: &ReportRecord) -> Result<String, PipelineError> {
    let json = serde_json::to_string(r).map_err(|e| PipelineError::Internal(e.to_string()))?;
    Ok(sha256_hex([json]))
}

/// A shard's key: the recipe version, the settings and its reports' hashes.
fn shard_key(settings: &str, report_hashes: &[String]) -> String {
    sha256_hex(
        [RECIPE_VERSION, settings]
            .into_iter()
            .chain(report_hashes.iter().map(String::as_str)),
    )
}

impl ReportsJob {
    /// The job a `recipe = "grounded-reports"` config describes (its `[reports]` table).
    pub fn from_config(loaded: &LoadedConfig) -> Result<ReportsJob, PipelineError> {
        let r = loaded.config.reports.as_ref().ok_or_else(|| PipelineError::Config {
            path: loaded.path.clone(),
            reason: "recipe = \"grounded-reports\" needs a [reports] table (csv, root)".into(),
        })?;
        Ok(ReportsJob {
            csv: loaded.resolve(&r.csv),
            root: loaded.resolve(&r.root),
            masks: r.masks.clone(),
            lesions: r.lesions.clone(),
            volumes: r.volumes.clone(),
            shard_volumes: r.shard_volumes,
            splits: loaded.config.splits.clone(),
            top_level_files: true,
            deid: loaded.reports_deid(),
        })
    }

    /// The settings every shard key includes.
    fn settings(&self) -> String {
        let mut s = serde_json::json!({
            "masks": self.masks, "lesions": self.lesions, "volumes": self.volumes,
            "root": self.root, "shard_volumes": self.shard_volumes, "splits": self.splits,
        });
        // only when on, so that the keys of shards built before the option existed stay valid
        if self.deid {
            s["deid"] = serde_json::json!(true);
        }
        s.to_string()
    }

    /// The work of one report for the plan: the bytes of its mask files, lesion masks and CT volume.
    fn input_bytes(&self, volume_id: &str) -> u64 {
        let stem = volume_id.trim_end_matches(".gz").trim_end_matches(".nii");
        let dir_bytes = |d: &Path| -> u64 {
            nifti_files(d)
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum()
        };
        let mut n = dir_bytes(&self.root.join(&self.masks).join(stem));
        if let Some(l) = &self.lesions {
            n += dir_bytes(&self.root.join(l).join(stem));
        }
        if let Some(v) = &self.volumes {
            n += std::fs::metadata(self.root.join(v).join(volume_id)).map_or(0, |m| m.len());
        }
        n
    }

    /// Every report of the CSV as a plan input (its volume name and work), with its text's hash, in CSV order.
    fn list_inputs(&self) -> Result<(Vec<PlanInput>, Vec<String>), PipelineError> {
        let (mut inputs, mut hashes) = (Vec::new(), Vec::new());
        let mut failed = None;
        read_reports(&self.csv, &mut |r| {
            match report_hash(&r) {
                Ok(h) => hashes.push(h),
                Err(e) => failed = Some(e),
            }
            inputs.push(PlanInput {
                source: "reports".into(),
                bytes: self.input_bytes(&r.volume_id),
                path: r.volume_id,
            });
        })
        .map_err(|e| PipelineError::Usage(e.to_string()))?;
        match failed {
            Some(e) => Err(e),
            None => Ok((inputs, hashes)),
        }
    }
}

/// Options of a run of the recipe that are not part of its inputs.
#[derive(Default, Clone, Copy)]
pub struct ReportsOptions {
    /// Discard this recipe's previous output in OUT (and its plan) and start over.
    pub force: bool,
    /// Run only worker `I` of `N`'s shards (`k % N == I`) of the plan in OUT, and leave assembling to [`merge`].
    pub worker: Option<(usize, usize)>,
    /// What happens when a shard runs longer than a limit (`--shard-timeout`).
    pub shard_timeout: Option<ShardTimeout>,
}

/// The folders the recipe writes into OUT.
const DIRS: [&str; 4] = ["grounded_reports", "vqa", "structured_findings", ".medgrain/parts"];

/// Runs the recipe (see the module docs) in one process, without a plan.
pub fn build_grounded_reports(job: &ReportsJob, out: &Path) -> Result<ReportsSummary, PipelineError> {
    run(job, out, &ReportsOptions::default(), None, None)
}

/// Runs the recipe a config describes into `out`: with the plan in `out` when there is one (made by [`make_plan`];
/// refused when the config or the reports changed since), as one worker of many with `opts.worker`.
pub fn build(loaded: &LoadedConfig, out: &Path, opts: &ReportsOptions) -> Result<ReportsSummary, PipelineError> {
    let job = ReportsJob::from_config(loaded)?;
    let chash = loaded.hash()?;
    if opts.force && opts.worker.is_some() {
        return Err(PipelineError::Usage(
            "--force with --worker would delete the other workers' shards: start over with `plan --force` and a \
             plain build, or remove OUT"
                .into(),
        ));
    }
    if opts.force {
        for name in DIRS
            .iter()
            .chain(&[".medgrain/shards", "manifest.json", "errors.jsonl", "plan.json"])
        {
            let p = out.join(name);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
            } else if p.exists() {
                std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
    }
    // A plain run into an OUT built from another config goes on: every shard key holds the settings and the
    // reports' text, so only the shards they change are redone.
    let plan = Plan::read(out)?;
    match (&plan, opts.worker) {
        (None, Some(_)) => {
            return Err(PipelineError::Usage(format!(
                "--worker needs a plan in {0}: run `medgrain plan {1} --out {0}` first",
                out.display(),
                loaded.path.display()
            )))
        }
        (Some(p), _) => check_plan(p, &chash, &job, out)?,
        (None, None) => {}
    }
    let mut s = run(&job, out, opts, plan.as_ref(), Some(&chash))?;
    s.config_hash = Some(chash);
    Ok(s)
}

/// A plan made for another config, or for other reports, is refused (exit 2) with what changed.
fn check_plan(p: &Plan, chash: &str, job: &ReportsJob, out: &Path) -> Result<(), PipelineError> {
    if p.recipe != "grounded-reports" {
        return Err(PipelineError::Usage(format!(
            "the plan in {} is for the {} recipe, not grounded-reports; choose another --out",
            out.display(),
            p.recipe
        )));
    }
    p.refuse_for_other_config(chash, "config", out)?;
    let (now, hashes) = job.list_inputs()?;
    let mut changes = p.input_changes(&now, 10);
    if changes.is_empty() {
        // same volumes and sizes: a report's text may still have changed
        let settings = job.settings();
        for (k, s) in p.shards.iter().enumerate() {
            if shard_key(&settings, &hashes[s.first..s.first + s.count]) != s.key {
                let names: Vec<&str> = now[s.first..s.first + s.count]
                    .iter()
                    .map(|i| i.path.as_str())
                    .take(5)
                    .collect();
                changes.push(format!("the report text of shard {k} ({})", names.join(", ")));
                if changes.len() >= 10 {
                    break;
                }
            }
        }
    }
    Plan::refuse_changes(&changes, out)
}

/// `medgrain plan` for the recipe: every report of the CSV with its work (mask, lesion and volume bytes), in shards
/// balanced by work (as many as `shard_volumes` reports per shard would give), each with its key. An existing plan
/// whose config or reports differ is refused unless `force`.
pub fn make_plan(loaded: &LoadedConfig, out: &Path, force: bool) -> Result<Plan, PipelineError> {
    let job = ReportsJob::from_config(loaded)?;
    let chash = loaded.hash()?;
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    if let (Some(old), false) = (Plan::read(out)?, force) {
        check_plan(&old, &chash, &job, out)?;
        return Ok(old);
    }
    let (inputs, hashes) = job.list_inputs()?;
    let settings = job.settings();
    let count = inputs.len().div_ceil(job.shard_volumes.max(1));
    let plan = Plan::balanced("grounded-reports", &loaded.path, chash, inputs, count, |first, n| {
        shard_key(&settings, &hashes[first..first + n])
    });
    plan.write(out)?;
    Ok(plan)
}

/// The run itself: shards of `shard_volumes` reports in CSV order, or the plan's shards.
fn run(
    job: &ReportsJob,
    out: &Path,
    opts: &ReportsOptions,
    plan: Option<&Plan>,
    config_hash: Option<&str>,
) -> Result<ReportsSummary, PipelineError> {
    let ont = Ontology::embedded().map_err(|e| PipelineError::Internal(e.to_string()))?;
    for dir in DIRS {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
    }
    let settings = job.settings();
    let work = ReportsWork {
        ont,
        job,
        out,
        settings: settings.clone(),
    };
    let size = job.shard_volumes.max(1);
    // How many reports each shard takes: the plan's counts, else `size` each.
    let counts: Option<Vec<usize>> = plan.map(|p| p.shards.iter().map(|s| s.count).collect());
    // The CSV is read on its own thread and handed over one shard at a time (a bounded channel: memory stays at
    // a few shards whatever the CSV's size).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<ReportRecord>, PipelineError>>(1);
    let csv = job.csv.clone();
    let reader = std::thread::spawn(move || {
        let want = |k: usize| counts.as_ref().map_or(size, |c| c.get(k).copied().unwrap_or(0));
        let mut buffer: Vec<ReportRecord> = Vec::with_capacity(want(0));
        let mut sent = 0usize;
        let mut extra = false;
        let read = read_reports(&csv, &mut |r| {
            if counts.as_ref().is_some_and(|c| sent >= c.len()) {
                extra = true;
                return;
            }
            buffer.push(r);
            if buffer.len() == want(sent) {
                let _ = tx.send(Ok(std::mem::take(&mut buffer)));
                sent += 1;
            }
        });
        let short = counts
            .as_ref()
            .is_some_and(|c| sent + usize::from(!buffer.is_empty()) < c.len());
        match read {
            Err(e) => {
                let _ = tx.send(Err(PipelineError::Usage(e.to_string())));
            }
            Ok(_) if extra || short => {
                let _ = tx.send(Err(PipelineError::Usage(format!(
                    "{} has {} reports than the plan: rerun `medgrain plan` with --force",
                    csv.display(),
                    if extra { "more" } else { "fewer" }
                ))));
            }
            // an empty CSV is one empty shard, so that the outputs exist
            Ok(_) if !buffer.is_empty() || sent == 0 => {
                let _ = tx.send(Ok(buffer));
            }
            Ok(_) => {}
        }
    });
    let mine = opts.worker.map(|(i, n)| move |k: usize| k % n == i);
    let limits = ShardLimits {
        mine: mine.as_ref().map(|f| f as &(dyn Fn(usize) -> bool + Sync)),
        timeout: opts.shard_timeout,
    };
    let run = run_some_shards(&work, out, rx.into_iter(), None, limits);
    reader
        .join()
        .map_err(|_| PipelineError::Internal("the report reader stopped".into()))?;
    let run = run?;
    let mut total = ReportsSummary::default();
    for m in &run.markers {
        total.add(&m.counts);
    }
    total.shards = run.markers.len();
    total.shards_resumed = run.resumed();
    if opts.worker.is_some() {
        // a worker writes its shards and stops: `merge` assembles from every worker's markers
        return Ok(total);
    }
    assemble(job, out, &run.markers, plan.is_some(), config_hash)?;
    Ok(total)
}

/// Writes the RadGenome-style CSVs, `manifest.json` and `errors.jsonl` from the shards' markers (in shard order).
/// What a single-process run and `merge` both end with.
fn assemble(
    job: &ReportsJob,
    out: &Path,
    markers: &[ShardMarker],
    planned: bool,
    config_hash: Option<&str>,
) -> Result<ReportsSummary, PipelineError> {
    let shards = markers.len();
    let mut total = ReportsSummary::default();
    let mut errors = Vec::new();
    let mut entries: Vec<FileEntry> = Vec::new();
    for m in markers {
        total.add(&m.counts);
        errors.extend(m.errors.iter().cloned());
        entries.extend(m.files.iter().cloned());
    }
    // OUT itself too: the manifest and errors.jsonl may be written there
    for d in ["", DIRS[0], DIRS[1], DIRS[2], DIRS[3], ".medgrain/shards"] {
        remove_temporaries(&out.join(d))?;
    }
    assemble_csv(
        out,
        &out.join("grounded_reports/grounded_reports.csv"),
        "Volumename,Anatomy,Sentence\n",
        "grounded",
        shards,
    )?;
    assemble_csv(
        out,
        &out.join("vqa/vqa.csv"),
        "Volumename,Anatomy,Question,Answer\n",
        "vqa",
        shards,
    )?;
    total.shards = shards;
    let mut err_lines = String::new();
    for e in &errors {
        err_lines.push_str(&serde_json::to_string(e).map_err(|e| PipelineError::Internal(e.to_string()))?);
        err_lines.push('\n');
    }
    let mut manifest = serde_json::json!({
        "tool": "medgrain",
        "version": env!("CARGO_PKG_VERSION"),
        "recipe": "grounded-reports",
        "recipe_version": RECIPE_VERSION,
        "inputs": {"csv": job.csv, "root": job.root, "masks": job.masks, "lesions": job.lesions, "volumes": job.volumes},
        "shard_plan": {"shard_volumes": job.shard_volumes.max(1), "shards": shards, "planned": planned},
        "counts": total,
    });
    if let Some(chash) = config_hash {
        manifest["config_hash"] = serde_json::json!(chash);
    }
    // a run of this recipe alone writes its files at the top of OUT; the demo (after the triplets) under
    // grounded_reports/, so that the triplets' manifest stays true
    let (manifest_rel, errors_rel, stats_rel) = if job.top_level_files {
        ("manifest.json", "errors.jsonl", "stats.json")
    } else {
        (
            "grounded_reports/manifest.json",
            "grounded_reports/errors.jsonl",
            "grounded_reports/stats.json",
        )
    };
    write_atomic(&out.join(errors_rel), err_lines.as_bytes())?;
    let stats = serde_json::to_vec_pretty(&total).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&out.join(stats_rel), &stats)?;
    for rel in [
        "grounded_reports/grounded_reports.csv",
        "vqa/vqa.csv",
        errors_rel,
        stats_rel,
    ] {
        entries.push(file_entry(out, rel)?);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    manifest["files"] = serde_json::json!(entries);
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&out.join(manifest_rel), &manifest)?;
    Ok(total)
}

/// Which of a plan's shards are finished in OUT: a marker with the planned key and all its parts.
fn finished(plan: &Plan, out: &Path) -> Result<Vec<Option<(ShardMarker, ShardState)>>, PipelineError> {
    Ok(MarkerStore::open(out, "reports")?.finished(
        plan,
        |k, key, m: &ShardMarker| m.key == key && m.intact(out, k),
        |m| (m.counts.volumes as u64, m.counts.errors > 0),
    ))
}

/// `medgrain merge` for the recipe: assembles the CSVs, `manifest.json` and `errors.jsonl` from the markers on disk
/// of every shard of the plan; idempotent. Missing shards are an error naming them; a config that changed since
/// the plan is refused naming both hashes.
pub fn merge(out: &Path, plan: &Plan) -> Result<ReportsSummary, PipelineError> {
    let loaded = crate::config::load(&plan.config_path)?;
    let job = ReportsJob::from_config(&loaded)?;
    let chash = loaded.hash()?;
    plan.refuse_other_config(&chash, out)?;
    let markers: Vec<ShardMarker> = plan.all_finished(finished(plan, out)?, out)?;
    let mut total = assemble(&job, out, &markers, true, Some(&chash))?;
    total.shards_resumed = total.shards;
    total.config_hash = Some(chash);
    Ok(total)
}

/// `medgrain status` of a grounded-reports plan.
pub fn status(out: &Path, plan: &Plan) -> Result<Status, PipelineError> {
    let done: Vec<Option<ShardState>> = finished(plan, out)?.into_iter().map(|d| d.map(|(_, s)| s)).collect();
    Ok(Status::of(plan, &done))
}
