//! Appearance of a 2D ROI measured against its surroundings, so that words such as "brighter",
//! "heterogeneous" or "ill-defined margin" are backed by numbers:
//! - contrast: mean intensity inside minus mean of a ring around the ROI (other ROIs excluded);
//! - texture: standard deviation of the ROI core (the ROI eroded so that a soft edge does not count as texture),
//!   a first-order statistic in the sense of IBSI (intensity-based statistics, "standard deviation");
//! - margin sharpness: contrast between the one-pixel bands just inside and just outside the border, relative to
//!   the interior–ring contrast (1 for a step edge, towards 0 for a gradual one).
//!
//! Intensities are in 0..1 of the display range.

use medgrain_records::Appearance;

/// Thresholds (0..1 intensity units) that turn measurements into words.
#[derive(Debug, Clone, Copy)]
pub struct AppearanceThresholds {
    /// |inside − ring| below this is "similar".
    pub contrast: f64,
    /// Core standard deviation above this is "heterogeneous".
    pub heterogeneity: f64,
    /// Edge sharpness at or above this is "well-defined".
    pub sharp_edge: f64,
}

impl Default for AppearanceThresholds {
    fn default() -> Self {
        AppearanceThresholds {
            contrast: 0.04,
            heterogeneity: 0.06,
            sharp_edge: 0.5,
        }
    }
}

fn dilate(mask: &[bool], h: usize, w: usize, blocked: &[bool]) -> Vec<bool> {
    let mut out = mask.to_vec();
    for r in 0..h {
        for c in 0..w {
            if mask[r * w + c] {
                continue;
            }
            let r0 = r.saturating_sub(1);
            let c0 = c.saturating_sub(1);
            'n: for rr in r0..(r + 2).min(h) {
                for cc in c0..(c + 2).min(w) {
                    if mask[rr * w + cc] && !blocked[r * w + c] {
                        out[r * w + c] = true;
                        break 'n;
                    }
                }
            }
        }
    }
    out
}

fn erode(mask: &[bool], h: usize, w: usize) -> Vec<bool> {
    (0..h * w)
        .map(|i| mask[i] && !crate::is_border_pixel(mask, w, h, i / w, i % w))
        .collect()
}

fn mean_std(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for v in values {
        n += 1.0;
        s += v;
        s2 += v * v;
    }
    if n == 0.0 {
        return None;
    }
    let m = s / n;
    Some((m, (s2 / n - m * m).max(0.0).sqrt()))
}

/// Measures the appearance of the ROI `in_roi` (row-major, `h × w`) in the image `luma`; `other_rois` marks
/// pixels of other ROIs, which are left out of the ring. Returns `None` when the ROI is empty or the image has
/// no pixels around it.
pub fn measure(
    luma: &[f32],
    h: usize,
    w: usize,
    in_roi: &[bool],
    other_rois: &[bool],
    t: AppearanceThresholds,
) -> Option<Appearance> {
    let area = in_roi.iter().filter(|&&v| v).count();
    if area == 0 {
        return None;
    }
    // Work in a window around the ROI to keep the cost proportional to the ROI, not the image.
    let (mut r0, mut r1, mut c0, mut c1) = (h, 0, w, 0);
    for r in 0..h {
        for c in 0..w {
            if in_roi[r * w + c] {
                r0 = r0.min(r);
                r1 = r1.max(r + 1);
                c0 = c0.min(c);
                c1 = c1.max(c + 1);
            }
        }
    }
    let radius = ((area as f64 / std::f64::consts::PI).sqrt() * 0.6)
        .round()
        .clamp(3.0, 25.0) as usize;
    let (wr0, wc0) = (r0.saturating_sub(radius + 1), c0.saturating_sub(radius + 1));
    let (wr1, wc1) = ((r1 + radius + 1).min(h), (c1 + radius + 1).min(w));
    let (wh, ww) = (wr1 - wr0, wc1 - wc0);
    let at = |r: usize, c: usize| (wr0 + r) * w + wc0 + c;
    let roi: Vec<bool> = (0..wh * ww).map(|i| in_roi[at(i / ww, i % ww)]).collect();
    let blocked: Vec<bool> = (0..wh * ww).map(|i| other_rois[at(i / ww, i % ww)]).collect();
    let val = |i: usize| luma[at(i / ww, i % ww)] as f64;

    let grown_once = dilate(&roi, wh, ww, &blocked);
    let mut grown = grown_once.clone();
    for _ in 1..radius {
        grown = dilate(&grown, wh, ww, &blocked);
    }
    let eroded_once = erode(&roi, wh, ww);
    let mut core = eroded_once.clone();
    let core_steps = (radius / 2).max(1);
    for _ in 1..core_steps {
        let next = erode(&core, wh, ww);
        if !next.iter().any(|&v| v) {
            break;
        }
        core = next;
    }
    if !core.iter().any(|&v| v) {
        core = roi.clone();
    }

    let idx = 0..wh * ww;
    let (mean_in, _) = mean_std(idx.clone().filter(|&i| roi[i]).map(val))?;
    let (mean_ring, _) = mean_std(idx.clone().filter(|&i| grown[i] && !roi[i] && !blocked[i]).map(val))?;
    let (_, std_core) = mean_std(idx.clone().filter(|&i| core[i]).map(val))?;
    let inner_band = mean_std(idx.clone().filter(|&i| roi[i] && !eroded_once[i]).map(val));
    let outer_band = mean_std(idx.filter(|&i| grown_once[i] && !roi[i] && !blocked[i]).map(val));
    let diff = mean_in - mean_ring;
    let edge_sharpness = match (inner_band, outer_band) {
        (Some((a, _)), Some((b, _))) if diff.abs() > 1e-9 => ((a - b) / diff).clamp(0.0, 1.5),
        _ => 0.0,
    };
    let contrast = if diff > t.contrast {
        "brighter"
    } else if diff < -t.contrast {
        "darker"
    } else {
        "similar"
    };
    let texture = if std_core > t.heterogeneity {
        "heterogeneous"
    } else {
        "homogeneous"
    };
    let margin = if contrast == "similar" {
        "indistinct"
    } else if edge_sharpness >= t.sharp_edge {
        "well-defined"
    } else {
        "ill-defined"
    };
    Some(Appearance {
        mean_inside: mean_in,
        mean_ring,
        std_inside: std_core,
        edge_sharpness,
        contrast: contrast.into(),
        texture: texture.into(),
        margin: margin.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(h: usize, w: usize, cy: f64, cx: f64, r: f64) -> Vec<bool> {
        (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f64 + 0.5, (i % w) as f64 + 0.5);
                (y - cy).powi(2) + (x - cx).powi(2) <= r * r
            })
            .collect()
    }

    #[test]
    fn sharp_bright_disc_on_flat_background() {
        let (h, w) = (64, 64);
        let m = disc(h, w, 32.0, 32.0, 10.0);
        let luma: Vec<f32> = m.iter().map(|&v| if v { 0.8 } else { 0.2 }).collect();
        let a = measure(&luma, h, w, &m, &vec![false; h * w], Default::default()).unwrap();
        assert_eq!(a.contrast, "brighter");
        assert_eq!(a.texture, "homogeneous");
        assert_eq!(a.margin, "well-defined");
        assert!((a.mean_inside - 0.8).abs() < 1e-6 && (a.mean_ring - 0.2).abs() < 1e-6);
    }

    #[test]
    fn soft_dark_disc_is_ill_defined() {
        let (h, w) = (64, 64);
        let m = disc(h, w, 32.0, 32.0, 12.0);
        // intensity ramps linearly over 8 px on each side of the border
        let luma: Vec<f32> = (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f64 + 0.5, (i % w) as f64 + 0.5);
                let d = ((y - 32.0).powi(2) + (x - 32.0).powi(2)).sqrt() - 12.0;
                let t = ((d + 8.0) / 16.0).clamp(0.0, 1.0);
                (0.2 + 0.5 * t) as f32
            })
            .collect();
        let a = measure(&luma, h, w, &m, &vec![false; h * w], Default::default()).unwrap();
        assert_eq!(a.contrast, "darker");
        assert_eq!(a.margin, "ill-defined");
    }

    #[test]
    fn empty_roi_gives_none() {
        let z = vec![false; 16];
        assert!(measure(&[0.0; 16], 4, 4, &z, &z, Default::default()).is_none());
    }
}
