//! Regions of interest: connected components of label maps ([`components`]), COCO RLE ([`rle`]), positions in
//! words ([`position`]) and appearance against surroundings ([`appearance`]); [`rois_2d`] turns a 2D label map
//! into the ROI entries of a triplet record.

pub mod appearance;
pub mod boxmask;
pub mod components;
pub mod locate;
pub mod measure;
pub mod organ;
pub mod polygon;
pub mod position;
pub mod report;
pub mod rle;
pub mod shape;

pub use appearance::AppearanceThresholds;
pub use components::{group_by_label, label_components, Component, Labeling};

use medgrain_records::RoiRecord;

/// Whether pixel `(r, c)` of a row-major `h × w` mask is set and on its border: on the frame, or next to an unset
/// pixel (4-neighbourhood).
pub fn is_border_pixel(mask: &[bool], w: usize, h: usize, r: usize, c: usize) -> bool {
    mask[r * w + c]
        && (r == 0
            || c == 0
            || r + 1 == h
            || c + 1 == w
            || !mask[(r - 1) * w + c]
            || !mask[(r + 1) * w + c]
            || !mask[r * w + c - 1]
            || !mask[r * w + c + 1])
}

/// Errors of the ROI layer.
#[derive(Debug, thiserror::Error)]
pub enum RoiError {
    #[error("connectivity {connectivity} is outside 1..={rank} for a rank-{rank} array")]
    Connectivity { connectivity: usize, rank: usize },
    #[error("bad shape: {0}")]
    Shape(String),
    #[error("bad RLE: {0}")]
    Rle(String),
}

/// Whether one ROI is made per connected component or per label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoiUnit {
    /// One ROI per connected component of each label (lesion masks: label 1 = every lesion).
    #[default]
    Component,
    /// One ROI per label value, all its components together (organ masks).
    Label,
}

/// How ROIs are derived from a 2D label map.
#[derive(Debug, Clone, Copy)]
pub struct RoiOptions {
    /// scipy connectivity; 2 (full) by default in 2D.
    pub connectivity: usize,
    pub unit: RoiUnit,
    /// Components smaller than this are ignored (speckle in hand-drawn masks).
    pub min_area_px: u64,
    pub thresholds: AppearanceThresholds,
}

impl Default for RoiOptions {
    fn default() -> Self {
        RoiOptions {
            connectivity: 2,
            unit: RoiUnit::Component,
            min_area_px: 1,
            thresholds: AppearanceThresholds::default(),
        }
    }
}

/// ROI entries for a `height × width` label map (row-major). `luma` (0..1, same size) enables appearance
/// measurements; `name_of` names a label value. ROIs come ordered by label, then largest first.
pub fn rois_2d(
    labels: &[u32],
    height: usize,
    width: usize,
    luma: Option<&[f32]>,
    name_of: &dyn Fn(u32) -> String,
    opts: &RoiOptions,
) -> Result<Vec<RoiRecord>, RoiError> {
    let labeling = label_components(labels, &[height, width], opts.connectivity)?;
    let groups = group_by_label(&labeling.components);
    // Each ROI is a set of component ids.
    let mut units: Vec<(u32, Vec<u32>)> = Vec::new();
    for (label, comps) in &groups {
        let kept: Vec<&&Component> = comps.iter().filter(|c| c.voxels >= opts.min_area_px).collect();
        match opts.unit {
            RoiUnit::Component => units.extend(kept.iter().map(|c| (*label, vec![c.id]))),
            RoiUnit::Label if !kept.is_empty() => units.push((*label, kept.iter().map(|c| c.id).collect())),
            RoiUnit::Label => {}
        }
    }
    // Every unit's pixels in one pass over the image (row-major, the order all sums below use); from here on the
    // work per ROI is proportional to its bounding box, not to the image.
    let mut unit_of = vec![u32::MAX; labeling.components.len() + 1];
    for (u, (_, ids)) in units.iter().enumerate() {
        for &id in ids {
            unit_of[id as usize] = u as u32;
        }
    }
    let mut unit_pixels: Vec<Vec<(usize, usize)>> = units
        .iter()
        .map(|(_, ids)| {
            let n: u64 = ids.iter().map(|&id| labeling.components[id as usize - 1].voxels).sum();
            Vec::with_capacity(n as usize)
        })
        .collect();
    for (i, &comp) in labeling.component_of.iter().enumerate() {
        if comp != 0 {
            let u = unit_of[comp as usize];
            if u != u32::MAX {
                unit_pixels[u as usize].push((i / width, i % width));
            }
        }
    }
    let total = (height * width) as f64;
    let mut out = Vec::with_capacity(units.len());
    for ((label, _), pixels) in units.into_iter().zip(unit_pixels) {
        let n = pixels.len() as i64;
        let (mut sx, mut sy) = (0f64, 0f64);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for &(r, c) in &pixels {
            sx += c as f64;
            sy += r as f64;
            x0 = x0.min(c);
            y0 = y0.min(r);
            x1 = x1.max(c + 1);
            y1 = y1.max(r + 1);
        }
        let (cx, cy) = (sx / n as f64, sy / n as f64);
        let bw = x1 - x0;
        let mut in_box = vec![false; (y1 - y0) * bw];
        for &(r, c) in &pixels {
            in_box[(r - y0) * bw + (c - x0)] = true;
        }
        let inside = |r: usize, c: usize| r >= y0 && r < y1 && c >= x0 && c < x1 && in_box[(r - y0) * bw + (c - x0)];
        let measurements = shape_measurements(
            &pixels,
            luma.map(|l| pixels.iter().map(|&(r, c)| l[r * width + c] as f64).collect::<Vec<_>>())
                .as_deref(),
        );
        let appearance = luma.and_then(|l| {
            let region = appearance::Region {
                rows: [y0, y1],
                cols: [x0, x1],
                area: pixels.len(),
            };
            appearance::measure_region(
                l,
                height,
                width,
                &region,
                &inside,
                &|r, c| labels[r * width + c] != 0 && !inside(r, c),
                opts.thresholds,
            )
        });
        out.push(RoiRecord {
            label: name_of(label),
            label_id: Some(label as i32),
            bbox_xyxy: [x0 as i32, y0 as i32, x1 as i32, y1 as i32],
            mask_rle: rle::encode_window(height, width, [y0, y1], [x0, x1], inside),
            area_px: n,
            area_fraction: n as f64 / total,
            centroid_xy: [cx as f32, cy as f32],
            position: position::position_words(cx + 0.5, cy + 0.5, width as f64, height as f64),
            side: position::image_side(cx + 0.5, width as f64).map(str::to_string),
            side_frame: "image".into(),
            origin: "annotation".into(),
            score: None,
            measurements,
            appearance,
            organ_context: None,
            patient_position: None,
        });
    }
    Ok(out)
}

/// Shape figures of a 2D ROI and, given its intensities, IBSI entropy and uniformity (32 bins).
pub fn shape_measurements(pixels: &[(usize, usize)], values: Option<&[f64]>) -> Option<medgrain_records::Measurements> {
    let s = shape::shape_2d(pixels)?;
    let eu = values.and_then(|v| shape::entropy_uniformity(v, 32));
    Some(medgrain_records::Measurements {
        circularity: Some(s.circularity),
        solidity: Some(s.solidity),
        eccentricity: Some(s.eccentricity),
        elongation: (s.major_axis_length > 0.0).then(|| s.minor_axis_length / s.major_axis_length),
        entropy_bits: eu.map(|e| e.0),
        uniformity: eu.map(|e| e.1),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_blobs_one_label_by_component_and_by_label() {
        let (h, w) = (10, 20);
        let mut labels = vec![0u32; h * w];
        for r in 1..4 {
            for c in 1..5 {
                labels[r * w + c] = 1; // 12 px, upper left
            }
        }
        for r in 6..9 {
            for c in 15..17 {
                labels[r * w + c] = 1; // 6 px, lower right
            }
        }
        let name = |l: u32| format!("L{l}");
        let by_comp = rois_2d(&labels, h, w, None, &name, &RoiOptions::default()).unwrap();
        assert_eq!(by_comp.len(), 2);
        assert_eq!(by_comp[0].bbox_xyxy, [1, 1, 5, 4]);
        assert_eq!(by_comp[0].area_px, 12);
        assert_eq!(by_comp[0].position, "left, upper");
        assert_eq!(by_comp[0].side.as_deref(), Some("left"));
        assert_eq!(by_comp[1].bbox_xyxy, [15, 6, 17, 9]);
        assert_eq!(by_comp[1].position, "right, lower");
        let opts = RoiOptions {
            unit: RoiUnit::Label,
            ..Default::default()
        };
        let by_label = rois_2d(&labels, h, w, None, &name, &opts).unwrap();
        assert_eq!(by_label.len(), 1);
        assert_eq!(by_label[0].bbox_xyxy, [1, 1, 17, 9]);
        assert_eq!(by_label[0].area_px, 18);
        let decoded = rle::decode(&by_label[0].mask_rle).unwrap();
        assert_eq!(decoded, labels.iter().map(|&v| v == 1).collect::<Vec<_>>());
    }

    #[test]
    fn min_area_drops_specks() {
        let mut labels = vec![0u32; 25];
        labels[0] = 3;
        let opts = RoiOptions {
            min_area_px: 2,
            ..Default::default()
        };
        assert!(rois_2d(&labels, 5, 5, None, &|l| l.to_string(), &opts)
            .unwrap()
            .is_empty());
    }
}
