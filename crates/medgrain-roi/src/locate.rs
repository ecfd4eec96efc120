//! ROI locators for volumes without annotations (the [`RoiLocator`] trait, chosen per source in config as
//! `locator = "…"`; the ONNX-model locator lives in `medgrain-expert`).
//! The classical CT locators work on Hounsfield units with thresholds, hole filling and connected components:
//! - `classical:ct-body`: voxels above −500 HU, holes filled slice by slice (lungs and bowel gas are inside the
//!   body), the largest 3D component (6-connectivity) — the table and clothing fall away;
//! - `classical:ct-lung`: air (below −400 HU) inside the body, components of at least 0.05 % of the body and 1 cm³
//!   that look like lung parenchyma — median above −950 HU and below −600 HU: stomach and bowel gas is pure air
//!   (median ≈ −970 HU) and is left out — the two largest kept; a single component crossing the midline (lungs
//!   joined at the carina) is cut at it. Each lung's holes are filled slice by slice (vessels and nodules are part
//!   of the lung), and the masks are named `right lung` / `left lung` from their RAS centroid against the body's
//!   midline;
//! - `classical:ct-bone`: cortical bone (above 250 HU) inside the body as seeds, grown through the connected voxels
//!   above 100 HU (cancellous bone of vertebral bodies is often 150–250 HU, lower still at 3 mm partial volume),
//!   holes filled slice by slice (marrow inside the cortex), components of at least 1 cm³ (one mask `bone`).
//!
//! Data are first-axis-fastest (NIfTI order) with a RAS affine; slices for hole filling are taken across the axis
//! closest to superior–inferior.

use crate::components::label_components;
use crate::measure::{voxel_volume_mm3, Grid};

/// A mask a locator found: its name, one flag per voxel (first axis fastest) and the locator's confidence in it
/// (a model's mean class probability over the mask; `None` for the rule-based locators).
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedMask {
    pub name: String,
    pub mask: Vec<bool>,
    pub score: Option<f64>,
}

/// Why a locator could not run on a volume (the sample is recorded in `errors.jsonl`, the run goes on).
#[derive(Debug, thiserror::Error)]
#[error("{locator}: {message}")]
pub struct LocateError {
    pub locator: String,
    pub message: String,
}

/// A way of finding ROIs in an unannotated volume, chosen per source in config (`locator = "…"`). Implemented by
/// the rule-based [`ClassicalLocator`]s here and by `medgrain_expert::OnnxLocator` (a user's ONNX model).
pub trait RoiLocator: Send + Sync {
    /// The config name, recorded as the ROI's `origin` (e.g. `classical:ct-lung`, `expert:onnx`).
    fn name(&self) -> &str;
    /// Named binary masks found in `values` (first axis fastest, `grid.shape`; HU for CT). A 2D image is a volume
    /// of depth 1.
    fn locate(&self, values: &[f64], grid: Grid<'_>) -> Result<Vec<LocatedMask>, LocateError>;
}

/// Every locator a config, the CLI or a build can name — the one list of names (`locator = "…"`, `--locator …`).
/// The classical ones live here; `expert:onnx` is built by `medgrain-expert` from its model config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LocatorName {
    #[serde(rename = "classical:ct-body")]
    CtBody,
    #[serde(rename = "classical:ct-lung")]
    CtLung,
    #[serde(rename = "classical:ct-bone")]
    CtBone,
    #[serde(rename = "expert:onnx")]
    ExpertOnnx,
}

impl LocatorName {
    pub const ALL: [LocatorName; 4] = [
        LocatorName::CtBody,
        LocatorName::CtLung,
        LocatorName::CtBone,
        LocatorName::ExpertOnnx,
    ];

    /// The name as written in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LocatorName::CtBody => "classical:ct-body",
            LocatorName::CtLung => "classical:ct-lung",
            LocatorName::CtBone => "classical:ct-bone",
            LocatorName::ExpertOnnx => "expert:onnx",
        }
    }

    /// The rule-based locator of this name (none for `expert:onnx`).
    pub fn classical(self) -> Option<ClassicalLocator> {
        match self {
            LocatorName::CtBody => Some(ClassicalLocator::CtBody),
            LocatorName::CtLung => Some(ClassicalLocator::CtLung),
            LocatorName::CtBone => Some(ClassicalLocator::CtBone),
            LocatorName::ExpertOnnx => None,
        }
    }

    /// "classical:ct-body, classical:ct-lung, classical:ct-bone or expert:onnx" (for error messages).
    pub fn choices() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|l| l.as_str()).collect();
        format!("{} or {}", names[..names.len() - 1].join(", "), names[names.len() - 1])
    }
}

impl std::fmt::Display for LocatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LocatorName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("locator {s:?}: use {}", Self::choices()))
    }
}

/// The rule-based CT locators (Hounsfield-unit thresholds, hole filling, connected components).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicalLocator {
    CtBody,
    CtLung,
    CtBone,
}

impl ClassicalLocator {
    /// Parses a config value (`classical:ct-body`, `classical:ct-lung`, `classical:ct-bone`).
    pub fn parse(s: &str) -> Option<ClassicalLocator> {
        s.parse::<LocatorName>().ok().and_then(LocatorName::classical)
    }

    /// The config name, recorded as the ROI's `origin`.
    pub fn config_name(self) -> &'static str {
        match self {
            ClassicalLocator::CtBody => LocatorName::CtBody,
            ClassicalLocator::CtLung => LocatorName::CtLung,
            ClassicalLocator::CtBone => LocatorName::CtBone,
        }
        .as_str()
    }

    /// Named binary masks found in `hu` (first-axis-fastest, `grid.shape`).
    pub fn find(self, hu: &[f64], grid: Grid<'_>) -> Vec<(String, Vec<bool>)> {
        let body = body_mask(hu, grid);
        match self {
            ClassicalLocator::CtBody => vec![("body".into(), body)],
            ClassicalLocator::CtLung => lungs(hu, &body, grid),
            ClassicalLocator::CtBone => vec![("bone".into(), bone_mask(hu, &body, grid))],
        }
    }
}

impl RoiLocator for ClassicalLocator {
    fn name(&self) -> &str {
        self.config_name()
    }

    fn locate(&self, values: &[f64], grid: Grid<'_>) -> Result<Vec<LocatedMask>, LocateError> {
        let n = grid.shape.iter().product::<usize>();
        if values.len() != n {
            return Err(LocateError {
                locator: self.config_name().into(),
                message: format!("{} values for a {:?} grid", values.len(), grid.shape),
            });
        }
        Ok(self
            .find(values, grid)
            .into_iter()
            .map(|(name, mask)| LocatedMask {
                name,
                mask,
                score: None,
            })
            .collect())
    }
}

/// Keeps the 6- (connectivity 1) or fully connected components for which `keep(voxels, rank)` holds (rank 0 =
/// largest).
fn keep_components(
    mask: &[bool],
    shape: [usize; 3],
    connectivity: usize,
    keep: impl Fn(u64, usize) -> bool,
) -> Vec<bool> {
    let values: Vec<u32> = mask.iter().map(|&b| b as u32).collect();
    let Ok(lab) = label_components(&values, &[shape[2], shape[1], shape[0]], connectivity) else {
        return vec![false; mask.len()];
    };
    let mut order: Vec<&crate::Component> = lab.components.iter().collect();
    order.sort_by(|a, b| b.voxels.cmp(&a.voxels).then(a.id.cmp(&b.id)));
    let mut kept = vec![false; lab.components.len() + 1];
    for (rank, c) in order.iter().enumerate() {
        kept[c.id as usize] = keep(c.voxels, rank);
    }
    lab.component_of.iter().map(|&c| c > 0 && kept[c as usize]).collect()
}

fn index(shape: [usize; 3], p: [usize; 3]) -> usize {
    p[0] + shape[0] * (p[1] + shape[1] * p[2])
}

/// The two axes of a slice across `axis`, lower-numbered (faster-varying) first.
pub fn in_plane_axes(axis: usize) -> (usize, usize) {
    match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

/// Fills holes of `mask` in every slice across `axis` (2D background not reachable from the slice's border,
/// 4-connectivity).
pub fn fill_holes_per_slice(mask: &mut [bool], shape: [usize; 3], axis: usize) {
    let (a, b) = in_plane_axes(axis);
    let (na, nb) = (shape[a], shape[b]);
    let mut reached = vec![false; na * nb];
    let mut stack = Vec::new();
    for s in 0..shape[axis] {
        let at = |i: usize, j: usize| {
            let mut p = [0; 3];
            p[axis] = s;
            p[a] = i;
            p[b] = j;
            index(shape, p)
        };
        reached.iter_mut().for_each(|r| *r = false);
        for i in 0..na {
            for j in 0..nb {
                if (i == 0 || j == 0 || i + 1 == na || j + 1 == nb) && !mask[at(i, j)] {
                    reached[i * nb + j] = true;
                    stack.push((i, j));
                }
            }
        }
        while let Some((i, j)) = stack.pop() {
            let mut visit = |i2: usize, j2: usize| {
                if !reached[i2 * nb + j2] && !mask[at(i2, j2)] {
                    reached[i2 * nb + j2] = true;
                    stack.push((i2, j2));
                }
            };
            if i > 0 {
                visit(i - 1, j);
            }
            if i + 1 < na {
                visit(i + 1, j);
            }
            if j > 0 {
                visit(i, j - 1);
            }
            if j + 1 < nb {
                visit(i, j + 1);
            }
        }
        for i in 0..na {
            for j in 0..nb {
                if !reached[i * nb + j] {
                    mask[at(i, j)] = true;
                }
            }
        }
    }
}

fn body_mask(hu: &[f64], grid: Grid<'_>) -> Vec<bool> {
    let mut m: Vec<bool> = hu.iter().map(|&v| v > -500.0).collect();
    fill_holes_per_slice(&mut m, grid.shape, grid.slice_axis());
    keep_components(&m, grid.shape, 1, |_, rank| rank == 0)
}

/// HU above which a voxel is cortical bone (a seed), and above which it may belong to bone connected to a seed.
const BONE_SEED_HU: f64 = 250.0;
const BONE_GROW_HU: f64 = 100.0;

fn bone_mask(hu: &[f64], body: &[bool], grid: Grid<'_>) -> Vec<bool> {
    let shape = grid.shape;
    let cand: Vec<u32> = hu
        .iter()
        .zip(body)
        .map(|(&v, &b)| (b && v > BONE_GROW_HU) as u32)
        .collect();
    let Ok(lab) = label_components(&cand, &[shape[2], shape[1], shape[0]], 1) else {
        return vec![false; hu.len()];
    };
    let mut seeded = vec![false; lab.components.len() + 1];
    for (i, &c) in lab.component_of.iter().enumerate() {
        if c > 0 && hu[i] > BONE_SEED_HU {
            seeded[c as usize] = true;
        }
    }
    let mut bone: Vec<bool> = lab.component_of.iter().map(|&c| c > 0 && seeded[c as usize]).collect();
    fill_holes_per_slice(&mut bone, shape, grid.slice_axis());
    let min_voxels = (1000.0 / voxel_volume_mm3(grid.affine).max(1e-9)).ceil() as u64;
    keep_components(&bone, shape, 1, |v, _| v >= min_voxels)
}

/// Whether a component's HU values look like lung parenchyma rather than gas in the stomach or bowel.
fn parenchyma_like(values: &mut [f64]) -> bool {
    if values.is_empty() {
        return false;
    }
    let mid = values.len() / 2;
    let (_, median, _) = values.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *median > -950.0 && *median < -600.0
}

fn world_x(grid: Grid<'_>, i: usize) -> f64 {
    let [nx, ny, _] = grid.shape;
    let p = [i % nx, (i / nx) % ny, i / (nx * ny)];
    let a = grid.affine;
    a[0][0] * p[0] as f64 + a[0][1] * p[1] as f64 + a[0][2] * p[2] as f64 + a[0][3]
}

fn lungs(hu: &[f64], body: &[bool], grid: Grid<'_>) -> Vec<(String, Vec<bool>)> {
    let body_voxels = body.iter().filter(|&&b| b).count() as u64;
    let air: Vec<bool> = hu.iter().zip(body).map(|(&v, &b)| b && v < -400.0).collect();
    // a lung is at least 0.05 % of the body and at least 1 cm³ (air pockets in bowel or oesophagus are smaller)
    let min_cm3 = (1000.0 / voxel_volume_mm3(grid.affine).max(1e-9)).ceil() as u64;
    let min_voxels = (body_voxels / 2000).max(min_cm3).max(1);
    let shape = grid.shape;
    let air_u: Vec<u32> = air.iter().map(|&b| b as u32).collect();
    let Ok(lab) = label_components(&air_u, &[shape[2], shape[1], shape[0]], 1) else {
        return Vec::new();
    };
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); lab.components.len() + 1];
    for (i, &c) in lab.component_of.iter().enumerate() {
        if c > 0 {
            values[c as usize].push(hu[i]);
        }
    }
    let mut order: Vec<&crate::Component> = lab
        .components
        .iter()
        .filter(|c| c.voxels >= min_voxels && parenchyma_like(&mut values[c.id as usize]))
        .collect();
    order.sort_by(|a, b| b.voxels.cmp(&a.voxels).then(a.id.cmp(&b.id)));
    let mut kept = vec![false; lab.components.len() + 1];
    for c in order.iter().take(2) {
        kept[c.id as usize] = true;
    }
    drop(values);
    let both: Vec<bool> = lab.component_of.iter().map(|&c| c > 0 && kept[c as usize]).collect();
    // the body's midline: mean world x of the body voxels
    let (mut sx, mut n) = (0.0, 0.0);
    for (i, _) in body.iter().enumerate().filter(|(_, &b)| b) {
        sx += world_x(grid, i);
        n += 1.0;
    }
    let midline = if n > 0.0 { sx / n } else { 0.0 };
    let mut right = vec![false; hu.len()];
    let mut left = vec![false; hu.len()];
    for (i, _) in both.iter().enumerate().filter(|(_, &b)| b) {
        if world_x(grid, i) > midline {
            right[i] = true; // RAS: +x is the patient's right
        } else {
            left[i] = true;
        }
    }
    let axis = grid.slice_axis();
    let mut out = Vec::new();
    for (name, mut m) in [("right lung", right), ("left lung", left)] {
        // cutting at the midline may leave crumbs of the other lung: keep the largest piece
        m = keep_components(&m, grid.shape, 1, |_, rank| rank == 0);
        fill_holes_per_slice(&mut m, grid.shape, axis);
        if m.iter().any(|&b| b) {
            out.push((name.to_string(), m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40×40×10 phantom: body disc of soft tissue, two air "lungs" left and right of the centre, a bone rod, a
    /// 40 HU nodule inside the right lung; LPS-stored like the synthetic CTs (x → patient left).
    fn phantom() -> (Vec<f64>, [[f64; 4]; 4]) {
        let (nx, ny, nz) = (40, 40, 10);
        let mut hu = vec![-1000.0; nx * ny * nz];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let (dx, dy) = (x as f64 - 19.5, y as f64 - 19.5);
                    let i = x + nx * (y + ny * z);
                    if dx * dx + dy * dy < 18.0 * 18.0 {
                        hu[i] = 40.0;
                    }
                    // lungs: x 6..16 (image left = patient right with x → L) and 23..33
                    if (6..16).contains(&x) && (10..30).contains(&y) || (23..33).contains(&x) && (10..30).contains(&y) {
                        hu[i] = -850.0;
                    }
                    if (19..21).contains(&x) && (30..33).contains(&y) {
                        hu[i] = 700.0;
                    }
                    if (10..12).contains(&x) && (18..20).contains(&y) {
                        hu[i] = 40.0; // nodule
                    }
                }
            }
        }
        let affine = [
            [-10.0, 0.0, 0.0, 0.0],
            [0.0, -10.0, 0.0, 0.0],
            [0.0, 0.0, 10.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        (hu, affine)
    }

    #[test]
    fn phantom_lungs_bone_and_body() {
        let (hu, affine) = phantom();
        let grid = Grid {
            shape: [40, 40, 10],
            affine: &affine,
        };
        let lungs = ClassicalLocator::CtLung.find(&hu, grid);
        let names: Vec<&str> = lungs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["right lung", "left lung"]);
        let at = |x: usize, y: usize, z: usize| x + 40 * (y + 40 * z);
        // x 6..16 is patient right (x → L with a −10 mm column); the nodule is filled into the right lung
        assert!(lungs[0].1[at(8, 15, 5)] && lungs[0].1[at(10, 18, 5)]);
        assert!(lungs[1].1[at(28, 15, 5)] && !lungs[1].1[at(8, 15, 5)]);
        assert_eq!(lungs[0].1.iter().filter(|&&b| b).count(), 10 * 20 * 10);
        let bone = ClassicalLocator::CtBone.find(&hu, grid);
        assert_eq!(bone[0].1.iter().filter(|&&b| b).count(), 2 * 3 * 10); // 60 voxels × 1 cm³ each ≥ 1 cm³
        let body = ClassicalLocator::CtBody.find(&hu, grid);
        assert!(body[0].1[at(8, 15, 5)] && !body[0].1[at(0, 0, 5)]);
        assert_eq!(
            ClassicalLocator::parse("classical:ct-lung"),
            Some(ClassicalLocator::CtLung)
        );
        assert_eq!(ClassicalLocator::parse("ct-lung"), None);
        let located = ClassicalLocator::CtBody.locate(&hu, grid).expect("locate");
        assert_eq!(located[0].mask, body[0].1);
        assert!(ClassicalLocator::CtBody.locate(&hu[1..], grid).is_err());
    }
}
