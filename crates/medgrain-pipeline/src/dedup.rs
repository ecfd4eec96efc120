//! `medgrain dedup`: near-duplicates by perceptual hash, within a dataset and against reference image sets (a
//! user's VQA-RAD, SLAKE or PathVQA test images), so that benchmark test images never sit in training data unseen.
//!
//! Every row's image and every reference image is hashed with `imagehash`'s pHash ([`medgrain_imaging::phash`]);
//! pairs within `max_distance` bits (Hamming) are found with multi-index hashing: the 64 bits are cut into
//! `max_distance + 1` chunks, and by the pigeonhole principle two hashes that close agree exactly on at least one
//! chunk, so each query looks up one bucket per chunk instead of comparing with every hash (cost per query ≈
//! chunks × N / 2^(64 / chunks), not N). Results go to `DIR/dedup.jsonl`; rows gain the QC flags
//! `near_duplicate_of:NAME:FILE` and `duplicate_within:ID` (SPEC) in their Parquet part (rewritten; the flags of an
//! earlier dedup run are replaced), and `manifest.json` is updated to the new files.

use crate::engine::fsio::{io_err, write_atomic};
use crate::PipelineError;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Default maximum Hamming distance of a near-duplicate of a reference image (see README "Duplicates and benchmark
/// leakage": recall 0.99 on re-encoded, resized, cropped and brightened copies, no false match among distinct images).
pub const DEFAULT_MAX_DISTANCE: u32 = 10;
/// Default maximum distance between two rows of the dataset: smaller, because the within-dataset search is N × N
/// (5 chunks of 12–13 bits keep it practical at tens of millions of rows), and copies inside one dataset are
/// usually the same file or a re-encoding.
pub const DEFAULT_WITHIN_DISTANCE: u32 = 4;

/// The QC flag prefixes this command owns.
pub const FLAG_PREFIXES: [&str; 2] = ["near_duplicate_of:", "duplicate_within:"];

/// What to compare.
#[derive(Debug, Clone)]
pub struct DedupOptions {
    /// `(NAME, FOLDER)` reference image sets.
    pub against: Vec<(String, PathBuf)>,
    pub max_distance: u32,
    /// Distance for duplicates within the dataset.
    pub within_distance: u32,
}

/// What `dedup` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DedupSummary {
    pub rows: u64,
    pub reference_images: u64,
    pub unreadable: u64,
    /// (row, reference image) pairs within the distance.
    pub near_duplicates: u64,
    /// Rows that match at least one reference image.
    pub leaked_rows: u64,
    /// (row, earlier row) pairs within the distance.
    pub duplicates_within: u64,
    pub parts_rewritten: u64,
}

/// A multi-index hash table over 64-bit hashes.
pub struct MultiIndex {
    chunks: Vec<(u32, u64)>,
    tables: Vec<HashMap<u64, Vec<u32>>>,
    hashes: Vec<u64>,
}

impl MultiIndex {
    /// Chunks such that two hashes within `max_distance` share one chunk exactly.
    pub fn new(hashes: Vec<u64>, max_distance: u32) -> Self {
        let m = (max_distance + 1).clamp(1, 64);
        let (base, extra) = (64 / m, 64 % m);
        let mut chunks = Vec::new();
        let mut shift = 0;
        for i in 0..m {
            let bits = base + (i < extra) as u32;
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            chunks.push((shift, mask));
            shift += bits;
        }
        let mut tables: Vec<HashMap<u64, Vec<u32>>> = vec![HashMap::new(); chunks.len()];
        for (i, &h) in hashes.iter().enumerate() {
            for (t, &(s, mask)) in tables.iter_mut().zip(&chunks) {
                t.entry((h >> s) & mask).or_default().push(i as u32);
            }
        }
        MultiIndex { chunks, tables, hashes }
    }

    /// Indices of the hashes within `max_distance` of `h`, with their distance, ascending by index.
    pub fn query(&self, h: u64, max_distance: u32) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (t, &(s, mask)) in self.tables.iter().zip(&self.chunks) {
            if let Some(v) = t.get(&((h >> s) & mask)) {
                for &i in v {
                    let d = (self.hashes[i as usize] ^ h).count_ones();
                    if d <= max_distance {
                        out.push((i, d));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

const IMAGE_EXTS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp"];

fn image_files(root: &Path) -> Result<Vec<String>, PipelineError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| io_err(&d, e))? {
            let p = e.map_err(|e| io_err(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| IMAGE_EXTS.contains(&x.to_ascii_lowercase().as_str()))
            {
                out.push(p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A row id (or reference file) with its hash, or why it could not be hashed.
type Hashed = (String, Result<u64, String>);

/// Row ids and image bytes of one triplet part, hashed.
fn hash_part(path: &Path) -> Result<Vec<Hashed>, PipelineError> {
    let ids = medgrain_export::read::string_column(path, "id")?;
    let images = medgrain_export::read::image_bytes(path)?;
    Ok(ids
        .into_par_iter()
        .zip(images.into_par_iter())
        .map(|(id, bytes)| {
            let id = id.unwrap_or_default();
            let h = match bytes {
                Some(b) => medgrain_imaging::phash::phash_bytes(&b, Path::new(&id)).map_err(|e| e.to_string()),
                None => Err("the row has no image bytes".to_string()),
            };
            (id, h)
        })
        .collect())
}

/// Runs dedup on the dataset in `dir`.
pub fn dedup(dir: &Path, opts: &DedupOptions) -> Result<DedupSummary, PipelineError> {
    let tdir = dir.join("triplets");
    let mut parts: Vec<PathBuf> = match std::fs::read_dir(&tdir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect(),
        Err(_) => Vec::new(),
    };
    parts.sort();
    if parts.is_empty() {
        return Err(PipelineError::Usage(format!(
            "{} is not a triplet dataset: no Parquet parts in triplets/",
            dir.display()
        )));
    }
    let mut names = std::collections::HashSet::new();
    for (name, folder) in &opts.against {
        if !names.insert(name) {
            return Err(PipelineError::Usage(format!(
                "--against {name}=…: the name is given twice"
            )));
        }
        if name.is_empty() || name.contains(':') {
            return Err(PipelineError::Usage(format!(
                "--against {name}=…: a name must be non-empty, without ':'"
            )));
        }
        if !folder.is_dir() {
            return Err(PipelineError::Usage(format!(
                "--against {name}={}: not a folder",
                folder.display()
            )));
        }
    }
    let d = opts.max_distance;
    let mut lines: Vec<Value> = Vec::new();
    let mut summary = DedupSummary::default();
    // Dataset rows, in part order.
    let (mut ids, mut hashes) = (Vec::new(), Vec::new());
    for p in parts.iter() {
        for (id, h) in hash_part(p)? {
            summary.rows += 1;
            match h {
                Ok(h) => {
                    ids.push(id);
                    hashes.push(h);
                }
                Err(e) => {
                    summary.unreadable += 1;
                    lines.push(json!({"kind": "unreadable_row", "id": id, "error": e}));
                }
            }
        }
    }
    let mut flags: HashMap<String, Vec<String>> = HashMap::new();
    // Against each reference set.
    let mut leaked = std::collections::HashSet::new();
    for (name, folder) in &opts.against {
        let files = image_files(folder)?;
        let hashed: Vec<Hashed> = files
            .into_par_iter()
            .map(|rel| {
                let p = folder.join(&rel);
                let h = std::fs::read(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|b| medgrain_imaging::phash::phash_bytes(&b, &p).map_err(|e| e.to_string()));
                (rel, h)
            })
            .collect();
        let (mut refs, mut ref_hashes) = (Vec::new(), Vec::new());
        for (rel, h) in hashed {
            match h {
                Ok(h) => {
                    refs.push(rel);
                    ref_hashes.push(h);
                }
                Err(e) => {
                    summary.unreadable += 1;
                    lines.push(json!({"kind": "unreadable", "set": name, "file": rel, "error": e}));
                }
            }
        }
        summary.reference_images += refs.len() as u64;
        let index = MultiIndex::new(ref_hashes.clone(), d);
        let found: Vec<Vec<(u32, u32)>> = hashes.par_iter().map(|&h| index.query(h, d)).collect();
        for (i, matches) in found.into_iter().enumerate() {
            for (j, dist) in matches {
                let file = &refs[j as usize];
                summary.near_duplicates += 1;
                leaked.insert(i);
                flags
                    .entry(ids[i].clone())
                    .or_default()
                    .push(format!("near_duplicate_of:{name}:{file}"));
                lines.push(
                    json!({"kind": "near_duplicate_of", "id": ids[i], "set": name, "file": file,
                                  "distance": dist, "hash": medgrain_imaging::phash::hex(hashes[i]),
                                  "reference_hash": medgrain_imaging::phash::hex(ref_hashes[j as usize])}),
                );
            }
        }
    }
    summary.leaked_rows = leaked.len() as u64;
    // Within the dataset: each row against the earlier rows.
    let wd = opts.within_distance;
    let index = MultiIndex::new(hashes.clone(), wd);
    let within: Vec<Vec<(u32, u32)>> = hashes
        .par_iter()
        .enumerate()
        .map(|(i, &h)| {
            index
                .query(h, wd)
                .into_iter()
                .filter(|&(j, _)| (j as usize) < i)
                .collect()
        })
        .collect();
    for (i, matches) in within.into_iter().enumerate() {
        for (j, dist) in matches {
            summary.duplicates_within += 1;
            let other = &ids[j as usize];
            flags
                .entry(ids[i].clone())
                .or_default()
                .push(format!("duplicate_within:{other}"));
            lines.push(json!({"kind": "duplicate_within", "id": ids[i], "other": other, "distance": dist}));
        }
    }
    // dedup.jsonl, then the rows' flags, then the manifest.
    let mut text = Vec::new();
    for l in &lines {
        text.extend(serde_json::to_vec(l).map_err(|e| PipelineError::Internal(e.to_string()))?);
        text.push(b'\n');
    }
    write_atomic(&dir.join("dedup.jsonl"), &text)?;
    let mut changed = vec!["dedup.jsonl".to_string()];
    for p in &parts {
        if medgrain_export::rewrite_qc_flags(p, &flags, &FLAG_PREFIXES)? {
            summary.parts_rewritten += 1;
            changed.push(format!(
                "triplets/{}",
                p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
        }
    }
    update_markers(dir, &changed)?;
    update_manifest(dir, &changed)?;
    Ok(summary)
}

/// Keeps the triplet shard markers (`.medgrain/shards/*.json`) in step with rewritten parts: a marker records its
/// part's size, and a later `build` redoes a shard whose part changed size — which would drop the flags.
fn update_markers(dir: &Path, rels: &[String]) -> Result<(), PipelineError> {
    let shards = dir.join(".medgrain/shards");
    let Ok(rd) = std::fs::read_dir(&shards) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(mut m) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(file) = m.get("file").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        if rels.contains(&file) && m.get("part").is_some() {
            let entry = crate::engine::fsio::file_entry(dir, &file)?;
            m["part"] = serde_json::to_value(&entry).map_err(|e| PipelineError::Internal(e.to_string()))?;
            let bytes = serde_json::to_vec(&m).map_err(|e| PipelineError::Internal(e.to_string()))?;
            write_atomic(&p, &bytes)?;
        }
    }
    Ok(())
}

/// Updates (or adds) the `files` entries of `manifest.json` for the given paths.
fn update_manifest(dir: &Path, rels: &[String]) -> Result<(), PipelineError> {
    let path = dir.join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(()); // a dataset without a manifest (an older build): nothing to keep in step
    };
    let mut m: Value =
        serde_json::from_str(&text).map_err(|e| PipelineError::Input(format!("{}: {e}", path.display())))?;
    let Some(files) = m.get_mut("files").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for rel in rels {
        let e = crate::engine::fsio::file_entry(dir, rel)?;
        let v = serde_json::to_value(&e).map_err(|e| PipelineError::Internal(e.to_string()))?;
        match files
            .iter_mut()
            .find(|f| f.get("path").and_then(Value::as_str) == Some(rel))
        {
            Some(f) => *f = v,
            None => files.push(v),
        }
    }
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let bytes = serde_json::to_vec_pretty(&m).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&path, &bytes)
}

/// Row ids that match a reference set, from `DIR/dedup.jsonl` (for `export --exclude-leaks`).
pub fn leaked_ids(dir: &Path) -> Result<std::collections::HashSet<String>, PipelineError> {
    let path = dir.join("dedup.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        PipelineError::Usage(format!(
            "{}: not found; run `medgrain dedup {} --against NAME=FOLDER` first",
            path.display(),
            dir.display()
        ))
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "near_duplicate_of")
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index finds exactly what a linear scan finds.
    #[test]
    fn multi_index_equals_linear_scan() {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut hashes: Vec<u64> = (0..3000).map(|_| next()).collect();
        // Near copies with 0..12 flipped bits.
        for k in 0..300 {
            let mut h = hashes[k];
            for b in 0..(k % 13) {
                h ^= 1 << ((b * 7 + k) % 64);
            }
            hashes.push(h);
        }
        for d in [0, 3, 8, 10] {
            let idx = MultiIndex::new(hashes.clone(), d);
            for (qi, &q) in hashes.iter().enumerate().step_by(17) {
                let want: Vec<(u32, u32)> = hashes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &h)| {
                        let dd = (h ^ q).count_ones();
                        (dd <= d).then_some((i as u32, dd))
                    })
                    .collect();
                assert_eq!(idx.query(q, d), want, "query {qi} at distance {d}");
            }
        }
    }
}
