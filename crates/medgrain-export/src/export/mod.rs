//! `medgrain export`: training-ready copies of a built dataset, each in the layout its consumer reads.
//!
//! | format | what it writes | read by |
//! |---|---|---|
//! | `llava` | `llava.json`: LLaVA-1.5 / LLaVA-Med conversations (caption task, fact questions, grounded VQA) | LLaVA's `LazySupervisedDataset` |
//! | `sharegpt` | `sharegpt.json`: `messages` (role/content) + `images` | LLaMA-Factory, TRL |
//! | `webdataset` | `shard-NNNNNN.tar`: `KEY.png`, `KEY.json`, `KEY.txt`, `KEY.mask.png` | `webdataset` |
//! | `coco` | `instances.json`: images, categories, annotations with RLE `segmentation` | pycocotools |
//! | `vqa` | `vqa.json`: VQA-RAD/SLAKE-style questions with `mask_ref` | LLaVA-Med / MedTrinity evaluation, `medgrain eval vqa` |
//! | `hf` | `README.md` dataset card + `data/CONFIG/SPLIT-*.parquet` | `datasets.load_dataset(DEST)` |
//!
//! Images (and, for grounded VQA, volumes and masks) are written once under content-addressed names
//! (`images/ab/abcdef….png`, the SHA-256 of the bytes), never altered; every file is written under a temporary name
//! and renamed, and `DEST/export.json` (written last) lists every file with its size and SHA-256.

pub mod rows;
pub mod tar;
pub mod tasks;

use crate::{ExportError, Result};
use rows::{image_ext, TripletRow};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use tasks::Qa;

/// An export format (one place to register a writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Llava,
    ShareGpt,
    WebDataset,
    Coco,
    Vqa,
    Hf,
    Recipe,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Llava,
        Format::ShareGpt,
        Format::WebDataset,
        Format::Coco,
        Format::Vqa,
        Format::Hf,
        Format::Recipe,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Format::Llava => "llava",
            Format::ShareGpt => "sharegpt",
            Format::WebDataset => "webdataset",
            Format::Coco => "coco",
            Format::Vqa => "vqa",
            Format::Hf => "hf",
            Format::Recipe => "recipe",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: Format,
    pub dest: PathBuf,
    /// Only rows of this split (rows carry `split` when the build had a `[splits]` table).
    pub split: Option<String>,
    /// WebDataset shard size limit.
    pub shard_mb: u64,
    /// Replace a previous export in `dest`.
    pub force: bool,
    /// Row ids left out (`--exclude-leaks`: rows that match a reference set in `dedup.jsonl`).
    pub exclude: std::collections::HashSet<String>,
    /// `--reviewed accepted`: only these row ids (accepted or edited in `review.sqlite`); an id mapped to sections
    /// (JSON, the five section names) was edited: the row is exported with them, and its description is the edited
    /// sections joined by spaces.
    pub reviewed: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// What an export did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportSummary {
    pub format: String,
    pub rows: u64,
    pub records: u64,
    pub files: u64,
    pub errors: u64,
    /// Rows left out by `exclude`.
    pub excluded: u64,
}

/// Why an export could not start (exit 2) or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportStartError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Export(#[from] ExportError),
}

fn io(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` under a temporary name, then renames (no fsync: an export is redone from the dataset,
/// and `export.json`, written last and synced, is what says it finished).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_renamed(path, bytes, false)
}

fn write_renamed(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        if sync {
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// The export's output folder: content-addressed assets, files written, errors.
struct Out {
    dest: PathBuf,
    written: BTreeMap<String, (u64, String)>,
    assets: HashSet<String>,
    errors: Vec<Value>,
}

impl Out {
    fn file(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.dest.join(rel), bytes)?;
        self.written
            .insert(rel.to_string(), (bytes.len() as u64, sha_hex(bytes)));
        Ok(())
    }
    /// `sub/ab/HASH.ext`, written once.
    fn asset(&mut self, sub: &str, bytes: &[u8], ext: &str) -> Result<String> {
        let h = sha_hex(bytes);
        let rel = format!("{sub}/{}/{h}.{ext}", &h[..2]);
        if self.assets.insert(rel.clone()) {
            write_atomic(&self.dest.join(&rel), bytes)?;
            self.written.insert(rel.clone(), (bytes.len() as u64, h));
        }
        Ok(rel)
    }
    fn asset_file(&mut self, sub: &str, src: &Path, ext: &str) -> Result<String> {
        let bytes = std::fs::read(src).map_err(|e| io(src, e))?;
        self.asset(sub, &bytes, ext)
    }
    fn error(&mut self, id: &str, stage: &str, message: String) {
        self.errors.push(json!({"id": id, "stage": stage, "error": message}));
    }
}

fn refuse(msg: String) -> ExportStartError {
    ExportStartError::Refused(msg)
}

/// Prepares DEST: refuses a non-empty folder unless `force` and it holds a previous export (its `export.json`).
fn prepare_dest(dir: &Path, opts: &ExportOptions) -> std::result::Result<(), ExportStartError> {
    let dest = &opts.dest;
    // DEST may not exist yet: resolve its nearest existing ancestor.
    let resolved = |p: &Path| -> Option<PathBuf> {
        let mut rest = Vec::new();
        let mut cur = p.to_path_buf();
        loop {
            if let Ok(c) = cur.canonicalize() {
                return Some(
                    rest.iter()
                        .rev()
                        .fold(c, |acc: PathBuf, n: &std::ffi::OsString| acc.join(n)),
                );
            }
            rest.push(cur.file_name()?.to_os_string());
            cur = match cur.parent() {
                Some(q) if !q.as_os_str().is_empty() => q.to_path_buf(),
                _ => std::env::current_dir().ok()?,
            };
        }
    };
    let (cd, cs) = (dir.canonicalize().ok(), resolved(dest));
    if let (Some(a), Some(b)) = (&cd, &cs) {
        if b.starts_with(a) || a.starts_with(b) {
            return Err(refuse(format!(
                "--to {} is inside the dataset {} (or holds it): export to another folder",
                dest.display(),
                dir.display()
            )));
        }
    }
    if dest.exists() {
        let non_empty = std::fs::read_dir(dest).map_err(|e| io(dest, e))?.next().is_some();
        if non_empty {
            if !opts.force {
                return Err(refuse(format!(
                    "{} is not empty: choose an empty or new folder, or --force to replace a previous export there",
                    dest.display()
                )));
            }
            if !dest.join("export.json").is_file() {
                return Err(refuse(format!(
                    "{} is not empty and holds no previous medgrain export (export.json): --force only replaces an export",
                    dest.display()
                )));
            }
            std::fs::remove_dir_all(dest).map_err(|e| io(dest, e))?;
        }
    }
    std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
    Ok(())
}

thread_local! {
    /// Rows left out by `ExportOptions::exclude` in this thread's current export (an export runs on one thread).
    static EXCLUDED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Every triplet row of the dataset (optionally of one split, without excluded ids), in part order.
fn for_each_triplet(
    dir: &Path,
    opts: &ExportOptions,
    f: &mut dyn FnMut(TripletRow) -> Result<()>,
) -> std::result::Result<u64, ExportStartError> {
    let split = opts.split.as_deref();
    let mut n = 0u64;
    let mut missing_split = false;
    for part in rows::parts(dir, "triplets")? {
        rows::for_each_row(&part, &mut |row| {
            if let Some(s) = split {
                match row.fields.get("split").and_then(Value::as_str) {
                    Some(x) if x == s => {}
                    Some(_) => return Ok(()),
                    None => {
                        missing_split = true;
                        return Ok(());
                    }
                }
            }
            if opts.exclude.contains(row.id()) {
                EXCLUDED.with(|c| c.set(c.get() + 1));
                return Ok(());
            }
            let mut row = row;
            if let Some(reviewed) = &opts.reviewed {
                match reviewed.get(row.id()) {
                    None => return Ok(()),
                    Some(None) => {}
                    Some(Some(edit)) => {
                        if let Ok(Value::Object(s)) = serde_json::from_str::<Value>(edit) {
                            let mut sections = row.fields.get("sections").cloned().unwrap_or(Value::Null);
                            if let Value::Object(m) = &mut sections {
                                for (k, v) in s {
                                    m.insert(k, v);
                                }
                            }
                            let joined: Vec<&str> = [
                                "modality",
                                "organ_detection",
                                "roi_analysis",
                                "lesion_texture",
                                "local_global",
                            ]
                            .iter()
                            .filter_map(|k| sections.get(*k).and_then(Value::as_str))
                            .collect();
                            row.fields.insert("description".into(), Value::String(joined.join(" ")));
                            row.fields.insert("sections".into(), sections);
                        }
                    }
                }
            }
            n += 1;
            f(row)
        })?;
    }
    if missing_split {
        return Err(refuse(format!(
            "--split {}: the rows of {} carry no split (build with a [splits] table)",
            split.unwrap_or(""),
            dir.display()
        )));
    }
    Ok(n)
}

/// A grounded VQA row.
struct GroundedQa {
    id: String,
    volume_id: String,
    anatomy: Option<String>,
    question_type: String,
    question: String,
    answer: String,
    mask_ref: Option<String>,
}

fn grounded_vqa(dir: &Path) -> Result<Vec<GroundedQa>> {
    let mut out = Vec::new();
    for part in rows::parts(dir, "vqa")? {
        rows::for_each_row(&part, &mut |r| {
            let s = |k: &str| r.str(k).map(str::to_string);
            out.push(GroundedQa {
                id: s("id").unwrap_or_default(),
                volume_id: s("volume_id").unwrap_or_default(),
                anatomy: s("anatomy"),
                question_type: s("question_type").unwrap_or_else(|| "unknown".into()),
                question: s("question").unwrap_or_default(),
                answer: s("answer").unwrap_or_default(),
                mask_ref: s("mask_ref"),
            });
            Ok(())
        })?;
    }
    Ok(out)
}

/// Why a row's image cannot be exported as it is, or `None`: the bytes must be PNG, JPEG, TIFF or BMP, decode
/// completely, and have the row's width and height.
fn image_problem(row: &TripletRow) -> Option<String> {
    if row.image.is_empty() {
        return Some("the row has no image bytes".into());
    }
    if image_ext(&row.image).is_none() {
        return Some(format!(
            "the image bytes are not PNG, JPEG, TIFF or BMP (first bytes {:02x?})",
            &row.image[..row.image.len().min(4)]
        ));
    }
    match medgrain_imaging::decode_raster(&row.image, Path::new(row.id())) {
        Err(e) => Some(format!("the image cannot be decoded: {e}")),
        Ok(r) if Some(r.width as i64) != row.int("width") || Some(r.height as i64) != row.int("height") => {
            Some(format!(
                "the image is {}×{}, the row says {}×{}",
                r.width,
                r.height,
                row.int("width").unwrap_or(-1),
                row.int("height").unwrap_or(-1)
            ))
        }
        Ok(_) => None,
    }
}

/// Writes the row's image once; `None` (and an error line) when it cannot be exported ([`image_problem`]).
fn image_of(out: &mut Out, row: &TripletRow) -> Result<Option<String>> {
    if let Some(msg) = image_problem(row) {
        out.error(row.id(), "image", msg);
        return Ok(None);
    }
    match image_ext(&row.image) {
        Some(ext) => Ok(Some(out.asset("images", &row.image, ext)?)),
        None => Ok(None),
    }
}

/// Decodes ROI `i`'s RLE.
fn roi_mask(row: &TripletRow, roi: &Value) -> std::result::Result<(usize, usize, Vec<bool>), String> {
    let rle = roi.get("mask_rle").ok_or("no mask_rle")?;
    let size: Vec<i64> = rle
        .get("size")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .ok_or("no mask_rle.size")?;
    let counts = rle.get("counts").and_then(Value::as_str).ok_or("no mask_rle.counts")?;
    if size.len() != 2 {
        return Err("mask_rle.size is not [h, w]".into());
    }
    let m = medgrain_records::MaskRle {
        size: [size[0] as i32, size[1] as i32],
        counts: counts.to_string(),
    };
    let bits = medgrain_roi::rle::decode(&m).map_err(|e| format!("{}: {e}", row.id()))?;
    Ok((size[0] as usize, size[1] as usize, bits))
}

fn conv_turns(first: &str, qas: &[(String, String)]) -> Vec<Value> {
    let mut v = Vec::new();
    for (k, (q, a)) in qas.iter().enumerate() {
        let q = if k == 0 {
            format!("<image>\n{first}{q}")
        } else {
            q.clone()
        };
        v.push(json!({"from": "human", "value": q}));
        v.push(json!({"from": "gpt", "value": a}));
    }
    v
}

/// One conversation: id, image, turns (question, answer).
struct Conversation {
    id: String,
    image: String,
    turns: Vec<(String, String)>,
}

fn conversations(
    dir: &Path,
    opts: &ExportOptions,
    out: &mut Out,
) -> std::result::Result<(Vec<Conversation>, u64), ExportStartError> {
    let mut convs = Vec::new();
    let n = for_each_triplet(dir, opts, &mut |row| {
        let Some(image) = image_of(out, &row)? else {
            return Ok(());
        };
        let description = row.str("description").unwrap_or("").to_string();
        if !description.is_empty() {
            convs.push(Conversation {
                id: row.id().to_string(),
                image: image.clone(),
                turns: vec![(tasks::caption_instruction(&row), description)],
            });
        }
        let facts: Vec<(String, String)> = tasks::fact_questions(&row)
            .into_iter()
            .map(|q| (q.question, q.answer))
            .collect();
        convs.push(Conversation {
            id: format!("{}-vqa", row.id()),
            image,
            turns: facts,
        });
        Ok(())
    })?;
    // Grounded VQA: one conversation per volume, the volume as the image (3D models: M3D, RadFM).
    if opts.split.is_none() {
        let g = grounded_vqa(dir)?;
        if !g.is_empty() {
            let inputs = rows::reports_inputs(dir);
            let mut by_volume: BTreeMap<String, Vec<&GroundedQa>> = BTreeMap::new();
            for q in &g {
                by_volume.entry(q.volume_id.clone()).or_default().push(q);
            }
            for (vol, qs) in by_volume {
                let src = inputs.as_ref().map(|i| i.volumes.join(&vol));
                let image = match src.filter(|p| p.is_file()) {
                    Some(p) => out.asset_file("volumes", &p, "nii.gz")?,
                    None => {
                        out.error(&vol, "volume", format!("the volume {vol} of the grounded VQA was not found (grounded_reports/manifest.json inputs)"));
                        continue;
                    }
                };
                convs.push(Conversation {
                    id: format!(
                        "{}-grounded-vqa",
                        vol.trim_end_matches(".nii.gz").trim_end_matches(".nii")
                    ),
                    image,
                    turns: qs.iter().map(|q| (q.question.clone(), q.answer.clone())).collect(),
                });
            }
        }
    }
    Ok((convs, n))
}

fn write_llava(dir: &Path, opts: &ExportOptions, out: &mut Out) -> std::result::Result<(u64, u64), ExportStartError> {
    let (convs, n) = conversations(dir, opts, out)?;
    let records: Vec<Value> = convs
        .iter()
        .map(|c| json!({"id": c.id, "image": c.image, "conversations": conv_turns("", &c.turns)}))
        .collect();
    let bytes = serde_json::to_vec_pretty(&records).map_err(|e| ExportError::Arrow(e.to_string()))?;
    out.file("llava.json", &bytes)?;
    Ok((n, records.len() as u64))
}

fn write_sharegpt(
    dir: &Path,
    opts: &ExportOptions,
    out: &mut Out,
) -> std::result::Result<(u64, u64), ExportStartError> {
    let (convs, n) = conversations(dir, opts, out)?;
    let records: Vec<Value> = convs
        .iter()
        .map(|c| {
            let mut msgs = Vec::new();
            for (k, (q, a)) in c.turns.iter().enumerate() {
                let q = if k == 0 { format!("<image>{q}") } else { q.clone() };
                msgs.push(json!({"role": "user", "content": q}));
                msgs.push(json!({"role": "assistant", "content": a}));
            }
            json!({"id": c.id, "messages": msgs, "images": [c.image]})
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&records).map_err(|e| ExportError::Arrow(e.to_string()))?;
    out.file("sharegpt.json", &bytes)?;
    Ok((n, records.len() as u64))
}

struct Shard {
    index: usize,
    buf: Vec<u8>,
}

fn flush_shard(out: &mut Out, shard: &mut Shard) -> Result<()> {
    if shard.buf.is_empty() {
        return Ok(());
    }
    tar::finish(&mut shard.buf).map_err(|e| io(&out.dest, e))?;
    let name = format!("shard-{:06}.tar", shard.index);
    let buf = std::mem::take(&mut shard.buf);
    out.file(&name, &buf)?;
    shard.index += 1;
    Ok(())
}

fn write_webdataset(
    dir: &Path,
    opts: &ExportOptions,
    out: &mut Out,
) -> std::result::Result<(u64, u64), ExportStartError> {
    let limit = opts.shard_mb.max(1) * 1024 * 1024;
    let mut shard = Shard {
        index: 0,
        buf: Vec::new(),
    };
    let mut samples = 0u64;
    let n = for_each_triplet(dir, opts, &mut |row| {
        let Some(ext) = image_ext(&row.image) else {
            out.error(
                row.id(),
                "image",
                "the image bytes are not PNG, JPEG, TIFF or BMP".into(),
            );
            return Ok(());
        };
        let key = row.id().replace('.', "_");
        // The ROI label map: 0 background, ROI i → i + 1 (up to 255 ROIs; later ROIs win where they overlap).
        let (w, h) = (
            row.int("width").unwrap_or(0).max(0) as usize,
            row.int("height").unwrap_or(0).max(0) as usize,
        );
        let mut map = vec![0u8; w * h];
        let mut values = Vec::new();
        for (i, roi) in row.rois().iter().enumerate() {
            match roi_mask(&row, roi) {
                Ok((mh, mw, bits)) if mh == h && mw == w => {
                    if i < 255 {
                        for (p, b) in map.iter_mut().zip(&bits) {
                            if *b {
                                *p = (i + 1) as u8;
                            }
                        }
                        values.push(json!(i + 1));
                    } else {
                        values.push(Value::Null);
                    }
                }
                Ok((mh, mw, _)) => {
                    out.error(
                        row.id(),
                        "mask",
                        format!("ROI {i}: RLE size {mh}×{mw} differs from the image {h}×{w}"),
                    );
                    values.push(Value::Null);
                }
                Err(e) => {
                    out.error(row.id(), "mask", format!("ROI {i}: {e}"));
                    values.push(Value::Null);
                }
            }
        }
        let mask_png = match medgrain_imaging::encode_png(w as u32, h as u32, 1, &map) {
            Ok(b) => b,
            Err(e) => {
                out.error(row.id(), "mask", e.to_string());
                return Ok(());
            }
        };
        let mut meta = row.fields.clone();
        meta.insert("mask_values".into(), Value::Array(values));
        let meta = serde_json::to_vec(&Value::Object(meta)).map_err(|e| ExportError::Arrow(e.to_string()))?;
        let text = row.str("description").unwrap_or("").as_bytes().to_vec();
        let members: [(String, &[u8]); 4] = [
            (format!("{key}.{ext}"), &row.image),
            (format!("{key}.json"), &meta),
            (format!("{key}.txt"), &text),
            (format!("{key}.mask.png"), &mask_png),
        ];
        let size: u64 = members.iter().map(|(_, d)| tar::member_size(d.len())).sum();
        if !shard.buf.is_empty() && shard.buf.len() as u64 + size + 1024 > limit {
            flush_shard(out, &mut shard)?;
        }
        for (name, data) in members {
            tar::append(&mut shard.buf, &name, data).map_err(|e| io(&out.dest, e))?;
        }
        samples += 1;
        Ok(())
    })?;
    flush_shard(out, &mut shard)?;
    Ok((n, samples))
}

fn write_coco(dir: &Path, opts: &ExportOptions, out: &mut Out) -> std::result::Result<(u64, u64), ExportStartError> {
    let (mut images, mut anns) = (Vec::new(), Vec::new());
    let mut labels: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<(u64, Value)> = Vec::new();
    let n = for_each_triplet(dir, opts, &mut |row| {
        let Some(file) = image_of(out, &row)? else {
            return Ok(());
        };
        let image_id = images.len() as u64 + 1;
        images.push(json!({"id": image_id, "file_name": file, "width": row.int("width"), "height": row.int("height"),
                           "medgrain_id": row.id(), "source_path": row.str("source_path"), "license": row.str("license")}));
        for roi in row.rois() {
            let label = roi.get("label").and_then(Value::as_str).unwrap_or("roi").to_string();
            labels.insert(label);
            pending.push((image_id, roi.clone()));
        }
        Ok(())
    })?;
    let cat_id: BTreeMap<&String, u64> = labels.iter().enumerate().map(|(i, l)| (l, i as u64 + 1)).collect();
    for (image_id, roi) in &pending {
        let label = roi.get("label").and_then(Value::as_str).unwrap_or("roi").to_string();
        let b: Vec<i64> = roi
            .get("bbox_xyxy")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        if b.len() != 4 {
            continue;
        }
        anns.push(json!({
            "id": anns.len() as u64 + 1,
            "image_id": image_id,
            "category_id": cat_id[&label],
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "segmentation": roi.get("mask_rle"),
            "area": roi.get("area_px"),
            "iscrowd": 0,
        }));
    }
    let categories: Vec<Value> = cat_id
        .iter()
        .map(|(l, i)| json!({"id": i, "name": l, "supercategory": "roi"}))
        .collect();
    let doc = json!({
        "info": {"description": format!("medgrain export of {}", dir.display()), "version": env!("CARGO_PKG_VERSION")},
        "images": images, "annotations": anns, "categories": categories,
    });
    let bytes = serde_json::to_vec(&doc).map_err(|e| ExportError::Arrow(e.to_string()))?;
    out.file("instances.json", &bytes)?;
    Ok((n, pending.len() as u64))
}

fn write_vqa(dir: &Path, opts: &ExportOptions, out: &mut Out) -> std::result::Result<(u64, u64), ExportStartError> {
    let mut items = Vec::new();
    let n = for_each_triplet(dir, opts, &mut |row| {
        let Some(image) = image_of(out, &row)? else {
            return Ok(());
        };
        for q in tasks::fact_questions(&row) {
            let Qa {
                kind,
                question,
                answer,
                closed,
                question_type,
                roi,
            } = q;
            let (location, mask_ref) = match roi.and_then(|i| row.rois().get(i)) {
                Some(r) => {
                    let loc = r.get("position").and_then(Value::as_str).map(str::to_string);
                    let mask = match roi_mask(&row, r) {
                        Ok((h, w, bits)) => {
                            let px: Vec<u8> = bits.iter().map(|&b| if b { 255 } else { 0 }).collect();
                            match medgrain_imaging::encode_png(w as u32, h as u32, 1, &px) {
                                Ok(png) => Some(out.asset("masks", &png, "png")?),
                                Err(e) => {
                                    out.error(row.id(), "mask", e.to_string());
                                    None
                                }
                            }
                        }
                        Err(e) => {
                            out.error(row.id(), "mask", e);
                            None
                        }
                    };
                    (loc, mask)
                }
                None => (row.str("organ").map(str::to_string), None),
            };
            items.push(json!({
                "qid": format!("{}-{kind}", row.id()),
                "image_name": image,
                "question": question,
                "answer": answer,
                "answer_type": if closed { "CLOSED" } else { "OPEN" },
                "question_type": question_type,
                "modality": row.str("modality"),
                "location": location,
                "mask_ref": mask_ref,
            }));
        }
        Ok(())
    })?;
    if opts.split.is_none() {
        let inputs = rows::reports_inputs(dir);
        let mut volumes: BTreeMap<String, Option<String>> = BTreeMap::new();
        for q in grounded_vqa(dir)? {
            if !volumes.contains_key(&q.volume_id) {
                let src = inputs
                    .as_ref()
                    .map(|i| i.volumes.join(&q.volume_id))
                    .filter(|p| p.is_file());
                let rel = match src {
                    Some(p) => Some(out.asset_file("volumes", &p, "nii.gz")?),
                    None => {
                        out.error(
                            &q.volume_id,
                            "volume",
                            "volume not found (grounded_reports/manifest.json inputs)".into(),
                        );
                        None
                    }
                };
                volumes.insert(q.volume_id.clone(), rel);
            }
            let Some(image) = volumes[&q.volume_id].clone() else {
                continue;
            };
            let mask_ref = match (&q.mask_ref, &inputs) {
                (Some(m), Some(i)) if i.root.join(m).is_file() => {
                    Some(out.asset_file("masks", &i.root.join(m), "nii.gz")?)
                }
                (Some(m), _) => {
                    out.error(&q.id, "mask", format!("mask {m} not found"));
                    None
                }
                (None, _) => None,
            };
            items.push(json!({
                "qid": q.id,
                "image_name": image,
                "question": q.question,
                "answer": q.answer,
                "answer_type": if tasks::grounded_closed(&q.answer) { "CLOSED" } else { "OPEN" },
                "question_type": q.question_type,
                "modality": "CT",
                "location": q.anatomy,
                "mask_ref": mask_ref,
            }));
        }
    }
    let bytes = serde_json::to_vec_pretty(&items).map_err(|e| ExportError::Arrow(e.to_string()))?;
    out.file("vqa.json", &bytes)?;
    Ok((n, items.len() as u64))
}

/// Hugging Face features of an Arrow field (the `image` struct as `Image`).
fn hf_feature(f: &arrow_schema::Field) -> Value {
    use arrow_schema::DataType as D;
    let inner = |dt: &D| -> Value {
        match dt {
            D::Utf8 | D::LargeUtf8 => json!({"dtype": "string"}),
            D::Boolean => json!({"dtype": "bool"}),
            D::Int32 => json!({"dtype": "int32"}),
            D::Int64 => json!({"dtype": "int64"}),
            D::Float32 => json!({"dtype": "float32"}),
            D::Float64 => json!({"dtype": "float64"}),
            D::Binary | D::LargeBinary => json!({"dtype": "binary"}),
            _ => json!({"dtype": "string"}),
        }
    };
    fn body(dt: &arrow_schema::DataType, inner: &dyn Fn(&arrow_schema::DataType) -> Value) -> Value {
        use arrow_schema::DataType as D;
        match dt {
            D::List(c) | D::LargeList(c) => match c.data_type() {
                D::Struct(fs) => json!({"list": fs.iter().map(|f| named(f, inner)).collect::<Vec<_>>()}),
                other => json!({"sequence": body(other, inner)}),
            },
            D::Struct(fs) => json!({"struct": fs.iter().map(|f| named(f, inner)).collect::<Vec<_>>()}),
            other => inner(other),
        }
    }
    fn named(f: &arrow_schema::Field, inner: &dyn Fn(&arrow_schema::DataType) -> Value) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(f.name()));
        if let Value::Object(b) = body(f.data_type(), inner) {
            m.extend(b);
        }
        Value::Object(m)
    }
    if f.name() == "image" {
        return json!({"name": "image", "dtype": "image"});
    }
    named(f, &inner)
}

/// A table copied: its Arrow schema, its rows, rows per split.
type Copied = (Option<arrow_schema::SchemaRef>, u64, BTreeMap<String, u64>);

/// Copies a table's Parquet parts into `data/CONFIG/`: as they are (`train-NNNNN-of-NNNNN.parquet`) when the rows
/// carry no split, else rewritten into one file per split (`SPLIT-00000-of-00001.parquet`, rows in order).
/// Returns the Arrow schema, the row count and rows per split.
fn copy_parts(parts: &[PathBuf], config: &str, out: &mut Out) -> std::result::Result<Copied, ExportStartError> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let pq = |p: &Path, e: &dyn std::fmt::Display| ExportError::Parquet {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let mut schema = None;
    let mut has_split = false;
    for p in parts {
        let file = std::fs::File::open(p).map_err(|e| io(p, e))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(p, &e))?;
        has_split |= b.schema().field_with_name("split").is_ok()
            && crate::read::string_column(p, "split")?.iter().any(Option::is_some);
        schema.get_or_insert_with(|| b.schema().clone());
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    if !has_split {
        let k = parts.len();
        for (i, p) in parts.iter().enumerate() {
            let bytes = std::fs::read(p).map_err(|e| io(p, e))?;
            let file = std::fs::File::open(p).map_err(|e| io(p, e))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(p, &e))?;
            *counts.entry("train".into()).or_default() += b.metadata().file_metadata().num_rows().max(0) as u64;
            out.file(&format!("data/{config}/train-{i:05}-of-{k:05}.parquet"), &bytes)?;
        }
        let n = counts.values().sum();
        return Ok((schema, n, counts));
    }
    let Some(sch) = schema.clone() else {
        return Ok((None, 0, counts));
    };
    let mut writers: BTreeMap<String, (PathBuf, PathBuf, parquet::arrow::ArrowWriter<std::fs::File>)> = BTreeMap::new();
    for p in parts {
        let file = std::fs::File::open(p).map_err(|e| io(p, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| pq(p, &e))?
            .with_batch_size(256)
            .build()
            .map_err(|e| pq(p, &e))?;
        for batch in reader {
            let batch = batch.map_err(|e| pq(p, &e))?;
            let col = batch
                .column_by_name("split")
                .and_then(|c| c.as_string_opt::<i32>().cloned());
            let Some(col) = col else { continue };
            let mut names: Vec<String> = (0..col.len())
                .map(|i| {
                    if col.is_null(i) {
                        "unassigned".to_string()
                    } else {
                        col.value(i).to_string()
                    }
                })
                .collect();
            names.sort();
            names.dedup();
            for name in names {
                let mask: arrow_array::BooleanArray = (0..col.len())
                    .map(|i| {
                        Some(if col.is_null(i) {
                            name == "unassigned"
                        } else {
                            col.value(i) == name
                        })
                    })
                    .collect();
                let part = arrow_select::filter::filter_record_batch(&batch, &mask).map_err(|e| pq(p, &e))?;
                if part.num_rows() == 0 {
                    continue;
                }
                *counts.entry(name.clone()).or_default() += part.num_rows() as u64;
                if !writers.contains_key(&name) {
                    let rel = format!("data/{config}/{name}-00000-of-00001.parquet");
                    let path = out.dest.join(&rel);
                    if let Some(d) = path.parent() {
                        std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
                    }
                    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                    let f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
                    let w = parquet::arrow::ArrowWriter::try_new(f, sch.clone(), None).map_err(|e| pq(&tmp, &e))?;
                    writers.insert(name.clone(), (path, tmp, w));
                }
                if let Some((_, tmp, w)) = writers.get_mut(&name) {
                    w.write(&part).map_err(|e| pq(tmp, &e))?;
                }
            }
        }
    }
    for (_, (path, tmp, w)) in writers {
        w.close().map_err(|e| pq(&tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let rel = path
            .strip_prefix(&out.dest)
            .unwrap_or(&path)
            .to_string_lossy()
            .to_string();
        out.written.insert(rel, (bytes.len() as u64, sha_hex(&bytes)));
    }
    let n = counts.values().sum();
    Ok((schema, n, counts))
}

fn write_hf(dir: &Path, opts: &ExportOptions, out: &mut Out) -> std::result::Result<(u64, u64), ExportStartError> {
    if opts.split.is_some() {
        return Err(refuse(
            "--split with --format hf: the dataset card lists every split; export without --split".into(),
        ));
    }
    let mut configs = Vec::new();
    let mut infos = Vec::new();
    let mut total = 0u64;
    let mut licenses = BTreeSet::new();
    for (sub, config) in [
        ("triplets", "triplets"),
        ("grounded_reports", "grounded_reports"),
        ("vqa", "vqa"),
    ] {
        let parts = rows::parts(dir, sub)?;
        if parts.is_empty() {
            continue;
        }
        let (schema, rows_n, splits) = copy_parts(&parts, config, out)?;
        if config == "triplets" {
            for p in &parts {
                if let Ok(v) = crate::read::string_column(p, "license") {
                    licenses.extend(v.into_iter().flatten());
                }
            }
        }
        total += rows_n;
        let features: Vec<Value> = schema
            .map(|s| s.fields().iter().map(|f| hf_feature(f)).collect())
            .unwrap_or_default();
        let data_files: Vec<Value> = splits
            .keys()
            .map(|sp| json!({"split": sp, "path": format!("data/{config}/{sp}-*.parquet")}))
            .collect();
        let mut c = json!({"config_name": config, "data_files": data_files});
        if config == "triplets" {
            c["default"] = json!(true);
        }
        configs.push(c);
        let split_info: Vec<Value> = splits
            .iter()
            .map(|(sp, n)| json!({"name": sp, "num_examples": n}))
            .collect();
        infos.push(json!({"config_name": config, "features": features, "splits": split_info}));
    }
    if configs.is_empty() {
        return Err(refuse(format!(
            "{} holds no Parquet rows (triplets/, grounded_reports/, vqa/)",
            dir.display()
        )));
    }
    let size = match total {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        10_000_000..100_000_000 => "10M<n<100M",
        _ => "100M<n<1B",
    };
    let spdx = |l: &str| l.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    let ids: BTreeSet<String> = licenses.iter().map(|l| spdx(l)).collect();
    let license = match ids.iter().next() {
        Some(l)
            if ids.len() == 1
                && [
                    "cc0-1.0",
                    "cc-by-4.0",
                    "cc-by-sa-4.0",
                    "cc-by-nc-4.0",
                    "cc-by-nc-sa-4.0",
                    "mit",
                    "apache-2.0",
                    "odbl",
                ]
                .contains(&l.as_str()) =>
        {
            l.clone()
        }
        _ => "other".into(),
    };
    // YAML front matter in JSON flow style (YAML 1.2 reads JSON).
    let yaml = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    let card = format!(
        "---\nlicense: {license}\ntask_categories: {}\ntags: {}\nsize_categories: {}\nconfigs: {}\ndataset_info: {}\n---\n\n\
# medgrain dataset\n\nBuilt by medgrain {} from `{}`. Configs: {}. Row licences: {}.\n\n\
```python\nfrom datasets import load_dataset\nds = load_dataset(\"PATH\")               # triplets (default)\nvqa = load_dataset(\"PATH\", \"vqa\")\n```\n",
        yaml(&json!(["image-to-text", "visual-question-answering", "image-segmentation"])),
        yaml(&json!(["medical", "medgrain"])),
        yaml(&json!([size])),
        yaml(&Value::Array(configs.clone())),
        yaml(&Value::Array(infos)),
        env!("CARGO_PKG_VERSION"),
        dir.display(),
        configs.iter().filter_map(|c| c["config_name"].as_str()).collect::<Vec<_>>().join(", "),
        if licenses.is_empty() { "not recorded".into() } else { licenses.iter().cloned().collect::<Vec<_>>().join("; ") },
    );
    out.file("README.md", card.as_bytes())?;
    Ok((total, total))
}

/// A row as the recipe keeps it: every field but the pixels, plus the image's SHA-256.
pub fn recipe_row(row: &TripletRow) -> Value {
    let mut f = row.fields.clone();
    f.insert("image_sha256".into(), json!(sha_hex(&row.image)));
    Value::Object(f)
}

/// `recipe`: the rows without pixels (`rows.jsonl`, each with its image's SHA-256), the input checksums
/// (`inputs.jsonl`) and the build config, so that someone with their own copy of the inputs rebuilds the dataset and
/// `medgrain verify THEIR_OUT --recipe DEST` proves it is the same.
fn write_recipe(dir: &Path, opts: &ExportOptions, out: &mut Out) -> std::result::Result<(u64, u64), ExportStartError> {
    let inputs = dir.join("inputs.jsonl");
    let Ok(inputs_bytes) = std::fs::read(&inputs) else {
        return Err(refuse(format!(
            "{} has no inputs.jsonl (built with --no-input-hash, or by an older medgrain): build again to record the inputs",
            dir.display()
        )));
    };
    let manifest: Value = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let config_path = manifest.get("config_path").and_then(Value::as_str).map(PathBuf::from);
    let mut rows_text = Vec::new();
    let n = for_each_triplet(dir, opts, &mut |row| {
        rows_text.extend(serde_json::to_vec(&recipe_row(&row)).map_err(|e| ExportError::Arrow(e.to_string()))?);
        rows_text.push(b'\n');
        Ok(())
    })?;
    out.file("rows.jsonl", &rows_text)?;
    out.file("inputs.jsonl", &inputs_bytes)?;
    if let Some(c) = config_path.filter(|c| c.is_file()) {
        let text = std::fs::read(&c).map_err(|e| io(&c, e))?;
        out.file("config.toml", &text)?;
    }
    let readme = format!(
        "# A medgrain dataset as a recipe\n\nRows without pixels (`rows.jsonl`, each with `image_sha256`), the size and SHA-256 of \
every input file (`inputs.jsonl`, paths relative to each source's root) and the build config (`config.toml`).\n\n\
To rebuild: put your own copy of the inputs where `config.toml`'s source roots point (edit `root`), then\n\n\
    medgrain build config.toml --out OUT\n    medgrain verify OUT --recipe {}\n\n\
`verify` names every input that differs from the recipe's and every row that does not come out the same.\n",
        opts.dest.display()
    );
    out.file("README.md", readme.as_bytes())?;
    Ok((n, n))
}

/// Exports the dataset in `dir`.
pub fn export(dir: &Path, opts: &ExportOptions) -> std::result::Result<ExportSummary, ExportStartError> {
    let has_rows = ["triplets", "vqa", "grounded_reports"]
        .iter()
        .any(|s| rows::parts(dir, s).map(|p| !p.is_empty()).unwrap_or(false));
    if !has_rows {
        return Err(refuse(format!(
            "{} is not a medgrain dataset: no Parquet parts in triplets/, vqa/ or grounded_reports/",
            dir.display()
        )));
    }
    prepare_dest(dir, opts)?;
    EXCLUDED.with(|c| c.set(0));
    let mut out = Out {
        dest: opts.dest.clone(),
        written: BTreeMap::new(),
        assets: HashSet::new(),
        errors: Vec::new(),
    };
    let (rows_n, records) = match opts.format {
        Format::Llava => write_llava(dir, opts, &mut out)?,
        Format::ShareGpt => write_sharegpt(dir, opts, &mut out)?,
        Format::WebDataset => write_webdataset(dir, opts, &mut out)?,
        Format::Coco => write_coco(dir, opts, &mut out)?,
        Format::Vqa => write_vqa(dir, opts, &mut out)?,
        Format::Hf => write_hf(dir, opts, &mut out)?,
        Format::Recipe => write_recipe(dir, opts, &mut out)?,
    };
    let errors: Vec<u8> = out
        .errors
        .iter()
        .flat_map(|e| {
            let mut l = serde_json::to_vec(e).unwrap_or_default();
            l.push(b'\n');
            l
        })
        .collect();
    out.file("errors.jsonl", &errors)?;
    let files: Vec<Value> = out
        .written
        .iter()
        .map(|(p, (b, h))| json!({"path": p, "bytes": b, "sha256": h}))
        .collect();
    let summary = ExportSummary {
        format: opts.format.name().into(),
        rows: rows_n,
        records,
        files: files.len() as u64,
        errors: out.errors.len() as u64,
        excluded: EXCLUDED.with(|c| c.get()),
    };
    let manifest = json!({
        "tool": "medgrain", "version": env!("CARGO_PKG_VERSION"), "format": opts.format.name(),
        "source": dir.display().to_string(), "split": opts.split, "rows": rows_n, "records": records,
        "excluded_leaks": summary.excluded,
        "errors": out.errors.len(), "files": files,
    });
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Arrow(e.to_string()))?;
    write_renamed(&opts.dest.join("export.json"), &bytes, true)?;
    Ok(summary)
}
