//! Predicted against gold masks per finding, by ReXGroundingCT's definitions (ReXrank's leaderboard page):
//! - **Dice** per finding: `2|P∩G| / (|P| + |G|)` over the whole volume (1 when both are empty); the overall Dice is
//!   the mean over gold findings;
//! - **hit rate**: the share of gold findings with Dice ≥ 0.1;
//! - **instances**: connected components of each mask with full connectivity (scipy's
//!   `generate_binary_structure(3, 3)`, 26 neighbours); gold and predicted instances are paired one to one, greedily
//!   by decreasing Dice, and a pair with Dice ≥ 0.2 is a true positive; unpaired predicted instances are false
//!   positives, unpaired gold instances false negatives. Instance precision `TP/(TP+FP)`, recall `TP/(TP+FN)` and
//!   their harmonic mean F1, per finding and over all findings (counts summed); 0 where a denominator is 0.
//!
//! A finding is a NIfTI file (`.nii` or `.nii.gz`), named by its path relative to the folder without the extension
//! (`case_1/finding_3`), so any layout with one mask per finding works; voxels that are not 0 are foreground. A gold
//! finding without a prediction, or with one on another grid (shape or affine differs), scores 0 and is listed; a
//! prediction without a gold finding is listed and not scored.

use crate::{input_err, prf, Result};
use medgrain_imaging::nifti_read::{read_nifti, Voxels};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Dice at or above which a finding is a hit.
pub const HIT_DICE: f64 = 0.1;
/// Dice at or above which a paired instance is a true positive.
pub const INSTANCE_DICE: f64 = 0.2;

/// A binary mask on a grid.
#[derive(Debug, Clone)]
pub struct Mask {
    /// Array shape, last axis fastest (NIfTI's axes reversed).
    pub shape: Vec<usize>,
    pub affine: [[f64; 4]; 4],
    /// 1 for foreground, 0 for background (u32: what connected-component labelling reads, without a copy).
    pub fg: Vec<u32>,
}

/// 1 where `v * slope + inter` is not 0.
fn foreground<T: Copy>(v: &[T], scaling: Option<(f64, f64)>, as_f64: fn(T) -> f64, nonzero: fn(T) -> bool) -> Vec<u32> {
    match scaling {
        None => v.iter().map(|&x| nonzero(x) as u32).collect(),
        Some((s, i)) => v.iter().map(|&x| (as_f64(x) * s + i != 0.0) as u32).collect(),
    }
}

/// Reads a NIfTI mask: non-zero (after nibabel's scaling) is foreground; trailing axes of length 1 are dropped.
pub fn read_mask(path: &Path) -> std::result::Result<Mask, String> {
    let img = read_nifti(path).map_err(|e| e.to_string())?;
    let mut dims = img.header.shape.clone();
    while dims.len() > 3 && dims.last() == Some(&1) {
        dims.pop();
    }
    if dims.is_empty() || dims.len() > 3 {
        return Err(format!(
            "a mask must have 1 to 3 axes, this one has shape {:?}",
            img.header.shape
        ));
    }
    let sc = img.header.scaling();
    let fg = match &img.voxels {
        Voxels::U8(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::I8(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::I16(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::U16(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::I32(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::U32(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::I64(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::U64(v) => foreground(v, sc, |x| x as f64, |x| x != 0),
        Voxels::F32(v) => foreground(v, sc, |x| x as f64, |x| x != 0.0),
        Voxels::F64(v) => foreground(v, sc, |x| x, |x| x != 0.0),
        Voxels::Rgb8(_) => return Err("an RGB image is not a mask".into()),
    };
    let n: usize = dims.iter().product();
    if fg.len() != n {
        return Err(format!("{} voxels for shape {dims:?}", fg.len()));
    }
    dims.reverse();
    Ok(Mask {
        shape: dims,
        affine: img.header.best_affine(),
        fg,
    })
}

fn same_grid(a: &Mask, b: &Mask) -> Option<String> {
    if a.shape != b.shape {
        let rev = |s: &[usize]| s.iter().rev().copied().collect::<Vec<_>>();
        return Some(format!("shape {:?} against gold {:?}", rev(&b.shape), rev(&a.shape)));
    }
    let d = (0..3)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| (a.affine[i][j] - b.affine[i][j]).abs())
        .fold(0.0, f64::max);
    (d > 1e-3).then(|| format!("affine differs from the gold one by up to {d:.4}"))
}

/// The scores of one finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingScore {
    pub dice: f64,
    pub hit: bool,
    pub gold_voxels: u64,
    pub pred_voxels: u64,
    pub gold_instances: u64,
    pub pred_instances: u64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub instance_precision: f64,
    pub instance_recall: f64,
    pub instance_f1: f64,
    /// Why the finding scored 0 without comparison ("no prediction", "wrong grid: …").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn components(m: &Mask) -> (Vec<u32>, Vec<u64>) {
    // Full connectivity = the rank.
    match medgrain_roi::components::label_components(&m.fg, &m.shape, m.shape.len()) {
        Ok(l) => {
            let sizes = l.components.iter().map(|c| c.voxels).collect();
            (l.component_of, sizes)
        }
        // Shapes were checked when reading; an impossible labelling leaves no instances.
        Err(_) => (vec![0; m.fg.len()], Vec::new()),
    }
}

/// Scores a predicted mask against a gold mask on the same grid.
pub fn score(gold: &Mask, pred: &Mask) -> FindingScore {
    let (g, p) = (&gold.fg, &pred.fg);
    let gv: u64 = g.iter().map(|&b| b as u64).sum();
    let pv: u64 = p.iter().map(|&b| b as u64).sum();
    let inter: u64 = g.iter().zip(p).map(|(a, b)| (a & b) as u64).sum();
    let dice = if gv + pv == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (gv + pv) as f64
    };
    let (gl, gs) = components(gold);
    let (pl, ps) = components(pred);
    let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
    for (a, b) in gl.iter().zip(&pl) {
        if *a != 0 && *b != 0 {
            *pairs.entry((*a, *b)).or_insert(0) += 1;
        }
    }
    let mut cand: Vec<(f64, u32, u32)> = pairs
        .into_iter()
        .map(|((a, b), n)| {
            let d = 2.0 * n as f64 / (gs[a as usize - 1] + ps[b as usize - 1]) as f64;
            (d, a, b)
        })
        .filter(|(d, _, _)| *d >= INSTANCE_DICE)
        .collect();
    cand.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let (mut used_g, mut used_p) = (vec![false; gs.len() + 1], vec![false; ps.len() + 1]);
    let mut tp = 0u64;
    for (_, a, b) in cand {
        if !used_g[a as usize] && !used_p[b as usize] {
            used_g[a as usize] = true;
            used_p[b as usize] = true;
            tp += 1;
        }
    }
    let (gi, pi) = (gs.len() as u64, ps.len() as u64);
    let (fp, fn_) = (pi - tp, gi - tp);
    let (precision, recall, f1) = prf(tp, fp, fn_);
    FindingScore {
        dice,
        hit: dice >= HIT_DICE,
        gold_voxels: gv,
        pred_voxels: pv,
        gold_instances: gi,
        pred_instances: pi,
        tp,
        fp,
        fn_,
        instance_precision: precision,
        instance_recall: recall,
        instance_f1: f1,
        problem: None,
    }
}

/// Overall scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overall {
    pub dice: f64,
    pub hit_rate: f64,
    pub instance_precision: f64,
    pub instance_recall: f64,
    pub instance_f1: f64,
    pub findings: u64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// The result of `eval grounding`.
#[derive(Debug, Serialize)]
pub struct GroundingReport {
    pub overall: Overall,
    pub by_finding: BTreeMap<String, FindingScore>,
    /// Gold findings without a predicted mask (scored 0).
    pub missing: Vec<String>,
    /// Predicted masks without a gold finding (not scored).
    pub unmatched: Vec<String>,
    /// Findings whose predicted mask is on another grid (scored 0), with the difference.
    pub wrong_grid: Vec<String>,
    /// Files that could not be read, with the reason (gold: not scored; prediction: scored 0).
    pub unreadable: Vec<String>,
}

impl GroundingReport {
    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.unmatched.is_empty() && self.wrong_grid.is_empty() && self.unreadable.is_empty()
    }
}

/// Every `.nii` / `.nii.gz` under `dir`, by its key (relative path without the extension), sorted.
pub fn list_masks(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    if !dir.is_dir() {
        return Err(input_err(dir, "not a folder"));
    }
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| input_err(&d, e))? {
            let path = e.map_err(|e| input_err(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let key = rel.strip_suffix(".nii.gz").or_else(|| rel.strip_suffix(".nii"));
            if let Some(k) = key {
                out.insert(k.to_string(), path);
            }
        }
    }
    Ok(out)
}

fn zero(gold: Option<&Mask>, problem: String) -> FindingScore {
    let (gv, gi) = gold.map_or((0, 0), |g| {
        let gv: u64 = g.fg.iter().map(|&b| b as u64).sum();
        (gv, components(g).1.len() as u64)
    });
    FindingScore {
        dice: 0.0,
        hit: false,
        gold_voxels: gv,
        pred_voxels: 0,
        gold_instances: gi,
        pred_instances: 0,
        tp: 0,
        fp: 0,
        fn_: gi,
        instance_precision: 0.0,
        instance_recall: 0.0,
        instance_f1: 0.0,
        problem: Some(problem),
    }
}

enum Outcome {
    UnreadableGold(String),
    Scored {
        score: FindingScore,
        missing: bool,
        wrong_grid: Option<String>,
        unreadable: Option<String>,
    },
}

fn score_one(key: &str, gpath: &Path, ppath: Option<&PathBuf>) -> Outcome {
    let g = match read_mask(gpath) {
        Ok(g) => g,
        Err(e) => return Outcome::UnreadableGold(format!("{}: {e}", gpath.display())),
    };
    let (mut missing, mut wrong_grid, mut unreadable) = (false, None, None);
    let score = match ppath {
        None => {
            missing = true;
            zero(Some(&g), "no prediction".into())
        }
        Some(ppath) => match read_mask(ppath) {
            Err(e) => {
                unreadable = Some(format!("{}: {e}", ppath.display()));
                zero(Some(&g), format!("unreadable prediction: {e}"))
            }
            Ok(p) => match same_grid(&g, &p) {
                Some(why) => {
                    wrong_grid = Some(format!("{key}: {why}"));
                    zero(Some(&g), format!("wrong grid: {why}"))
                }
                None => score(&g, &p),
            },
        },
    };
    Outcome::Scored {
        score,
        missing,
        wrong_grid,
        unreadable,
    }
}

/// Scores every gold finding under `gold_dir` against the mask of the same key under `pred_dir`.
pub fn evaluate(pred_dir: &Path, gold_dir: &Path) -> Result<GroundingReport> {
    let gold = list_masks(gold_dir)?;
    let pred = list_masks(pred_dir)?;
    if gold.is_empty() {
        return Err(crate::layout_err(
            gold_dir,
            "no NIfTI masks (.nii, .nii.gz) in this folder: expected one mask per finding",
        ));
    }
    // Findings in parallel (one volume pair in memory per thread), results in key order.
    let scored: Vec<(String, Outcome)> = gold
        .par_iter()
        .map(|(key, gpath)| (key.clone(), score_one(key, gpath, pred.get(key))))
        .collect();
    let mut by_finding = BTreeMap::new();
    let (mut missing, mut wrong_grid, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    for (key, o) in scored {
        match o {
            Outcome::UnreadableGold(e) => unreadable.push(e),
            Outcome::Scored {
                score,
                missing: m,
                wrong_grid: w,
                unreadable: u,
            } => {
                if m {
                    missing.push(key.clone());
                }
                wrong_grid.extend(w);
                unreadable.extend(u);
                by_finding.insert(key, score);
            }
        }
    }
    let unmatched = pred.keys().filter(|k| !gold.contains_key(*k)).cloned().collect();
    let n = by_finding.len() as u64;
    let (tp, fp, fn_) = by_finding
        .values()
        .fold((0, 0, 0), |(a, b, c), s| (a + s.tp, b + s.fp, c + s.fn_));
    let (precision, recall, f1) = prf(tp, fp, fn_);
    let mean = |f: fn(&FindingScore) -> f64| {
        if n == 0 {
            0.0
        } else {
            by_finding.values().map(f).sum::<f64>() / n as f64
        }
    };
    Ok(GroundingReport {
        overall: Overall {
            dice: mean(|s| s.dice),
            hit_rate: mean(|s| s.hit as u8 as f64),
            instance_precision: precision,
            instance_recall: recall,
            instance_f1: f1,
            findings: n,
            tp,
            fp,
            fn_,
        },
        by_finding,
        missing,
        unmatched,
        wrong_grid,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(shape: &[usize], on: &[usize]) -> Mask {
        let mut fg = vec![0; shape.iter().product()];
        for &i in on {
            fg[i] = 1;
        }
        let mut affine = [[0.0; 4]; 4];
        for (i, row) in affine.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        Mask {
            shape: shape.to_vec(),
            affine,
            fg,
        }
    }

    /// Hand-derived on a 1×1×10 line: gold instances {0,1} and {5,6,7}; prediction {1,2} and {9}.
    /// Dice = 2·1/(5+3) = 0.25; pair (gold {0,1}, pred {1,2}) has Dice 2·1/4 = 0.5 → TP; pred {9} FP; gold {5,6,7} FN.
    #[test]
    fn by_hand() {
        let g = mask(&[1, 1, 10], &[0, 1, 5, 6, 7]);
        let p = mask(&[1, 1, 10], &[1, 2, 9]);
        let s = score(&g, &p);
        assert_eq!(s.dice, 0.25);
        assert!(s.hit);
        assert_eq!((s.gold_instances, s.pred_instances, s.tp, s.fp, s.fn_), (2, 2, 1, 1, 1));
        assert_eq!(s.instance_precision, 0.5);
        // Diagonal neighbours are one instance under full connectivity: (0,0,0) and (1,1,1) in 2×2×2.
        let d = mask(&[2, 2, 2], &[0, 7]);
        assert_eq!(score(&d, &d).gold_instances, 1);
        assert_eq!(score(&d, &d).dice, 1.0);
        // Both empty: Dice 1, no instances.
        let e = mask(&[2, 2, 2], &[]);
        assert_eq!(score(&e, &e).dice, 1.0);
    }

    /// One predicted instance touching two gold instances is paired with one only.
    #[test]
    fn one_to_one() {
        let g = mask(&[1, 1, 7], &[0, 1, 3, 4]);
        let p = mask(&[1, 1, 7], &[0, 1, 2, 3, 4]);
        let s = score(&g, &p);
        assert_eq!((s.gold_instances, s.pred_instances, s.tp, s.fp, s.fn_), (2, 1, 1, 0, 1));
    }
}
