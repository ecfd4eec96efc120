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

/// Geodesic dilation of `mask` (a `h × w` window) by `radius` steps of the 3×3 square, never into `blocked`
/// pixels: the chessboard distance from the mask through unblocked pixels, by breadth-first search (the same sets as
/// `radius` successive one-step dilations, in time proportional to the window). Returns the distance per pixel
/// (`u16::MAX` beyond `radius`).
fn grow(mask: &[bool], h: usize, w: usize, blocked: &[bool], radius: usize) -> Vec<u16> {
    let mut dist = vec![u16::MAX; h * w];
    let mut frontier: Vec<usize> = Vec::new();
    for (i, &m) in mask.iter().enumerate() {
        if m {
            dist[i] = 0;
            frontier.push(i);
        }
    }
    let mut next = Vec::new();
    for step in 1..=radius as u16 {
        for &i in &frontier {
            let (r, c) = (i / w, i % w);
            for rr in r.saturating_sub(1)..(r + 2).min(h) {
                for cc in c.saturating_sub(1)..(c + 2).min(w) {
                    let j = rr * w + cc;
                    if dist[j] == u16::MAX && !blocked[j] {
                        dist[j] = step;
                        next.push(j);
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        std::mem::swap(&mut frontier, &mut next);
        next.clear();
    }
    dist
}

/// One erosion by the 4-neighbourhood cross, the window's frame counting as unset.
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

/// Where an ROI lies: its bounding box (`[lo, hi)` rows and columns) and pixel count.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub rows: [usize; 2],
    pub cols: [usize; 2],
    pub area: usize,
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
    let region = Region {
        rows: [r0, r1],
        cols: [c0, c1],
        area,
    };
    measure_region(
        luma,
        h,
        w,
        &region,
        &|r, c| in_roi[r * w + c],
        &|r, c| other_rois[r * w + c],
        t,
    )
}

/// [`measure`] for an ROI given by its region and a membership test: only a window around the ROI is visited, so
/// the cost is proportional to the ROI, not the image.
pub fn measure_region(
    luma: &[f32],
    h: usize,
    w: usize,
    region: &Region,
    in_roi: &dyn Fn(usize, usize) -> bool,
    other_rois: &dyn Fn(usize, usize) -> bool,
    t: AppearanceThresholds,
) -> Option<Appearance> {
    let area = region.area;
    if area == 0 {
        return None;
    }
    let ([r0, r1], [c0, c1]) = (region.rows, region.cols);
    let radius = ((area as f64 / std::f64::consts::PI).sqrt() * 0.6)
        .round()
        .clamp(3.0, 25.0) as usize;
    let (wr0, wc0) = (r0.saturating_sub(radius + 1), c0.saturating_sub(radius + 1));
    let (wr1, wc1) = ((r1 + radius + 1).min(h), (c1 + radius + 1).min(w));
    let (wh, ww) = (wr1 - wr0, wc1 - wc0);
    let at = |r: usize, c: usize| (wr0 + r) * w + wc0 + c;
    let roi: Vec<bool> = (0..wh * ww).map(|i| in_roi(wr0 + i / ww, wc0 + i % ww)).collect();
    let blocked: Vec<bool> = (0..wh * ww).map(|i| other_rois(wr0 + i / ww, wc0 + i % ww)).collect();
    let val = |i: usize| luma[at(i / ww, i % ww)] as f64;

    let dist = grow(&roi, wh, ww, &blocked, radius);
    // Erosions stay inside the ROI's box grown by one pixel (clipped to the window): pixels outside it are unset,
    // so the result is the same as eroding the whole window.
    let (br0, bc0) = ((r0 - wr0).saturating_sub(1), (c0 - wc0).saturating_sub(1));
    let (br1, bc1) = ((r1 - wr0 + 1).min(wh), (c1 - wc0 + 1).min(ww));
    let (bh, bw) = (br1 - br0, bc1 - bc0);
    let box_roi: Vec<bool> = (0..bh * bw).map(|i| roi[(br0 + i / bw) * ww + bc0 + i % bw]).collect();
    let eroded_once = erode(&box_roi, bh, bw);
    let mut core = eroded_once.clone();
    let core_steps = (radius / 2).max(1);
    for _ in 1..core_steps {
        let next = erode(&core, bh, bw);
        if !next.iter().any(|&v| v) {
            break;
        }
        core = next;
    }
    if !core.iter().any(|&v| v) {
        core = box_roi.clone();
    }
    let in_box = |i: usize| {
        let (r, c) = (i / ww, i % ww);
        (br0..br1).contains(&r) && (bc0..bc1).contains(&c)
    };
    let box_at = |i: usize| (i / ww - br0) * bw + (i % ww - bc0);
    let core_at = |i: usize| in_box(i) && core[box_at(i)];
    let eroded_at = |i: usize| in_box(i) && eroded_once[box_at(i)];

    let idx = 0..wh * ww;
    let (mean_in, _) = mean_std(idx.clone().filter(|&i| roi[i]).map(val))?;
    let (mean_ring, _) = mean_std(
        idx.clone()
            .filter(|&i| dist[i] as usize <= radius && !roi[i] && !blocked[i])
            .map(val),
    )?;
    let (_, std_core) = mean_std(idx.clone().filter(|&i| core_at(i)).map(val))?;
    let inner_band = mean_std(idx.clone().filter(|&i| roi[i] && !eroded_at(i)).map(val));
    let outer_band = mean_std(idx.filter(|&i| dist[i] <= 1 && !roi[i] && !blocked[i]).map(val));
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

    /// One step of the 3×3 dilation never entering `blocked` (how the ring was grown before `grow`).
    fn dilate_once(mask: &[bool], h: usize, w: usize, blocked: &[bool]) -> Vec<bool> {
        let mut out = mask.to_vec();
        for r in 0..h {
            for c in 0..w {
                let near = (r.saturating_sub(1)..(r + 2).min(h))
                    .any(|rr| (c.saturating_sub(1)..(c + 2).min(w)).any(|cc| mask[rr * w + cc]));
                if !mask[r * w + c] && near && !blocked[r * w + c] {
                    out[r * w + c] = true;
                }
            }
        }
        out
    }

    #[test]
    fn breadth_first_growth_equals_repeated_dilation() {
        let mut seed = 99u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for case in 0..200 {
            let (h, w) = (2 + next() % 20, 2 + next() % 20);
            let mask: Vec<bool> = (0..h * w).map(|_| next() % 17 == 0).collect();
            let blocked: Vec<bool> = (0..h * w).map(|i| !mask[i] && next() % 4 == 0).collect();
            let dist = grow(&mask, h, w, &blocked, 6);
            let mut g = mask.clone();
            for k in 1..=6u16 {
                g = dilate_once(&g, h, w, &blocked);
                let got: Vec<bool> = dist.iter().map(|&d| d <= k).collect();
                assert_eq!(got, g, "case {case}, step {k}");
            }
        }
    }

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
