//! The model-independent half of the ONNX locator: intensity normalisation, overlap-tile planning along one axis,
//! and decoding a model's class scores into classes and confidences. Pure functions, tested without ONNX Runtime.

use serde::{Deserialize, Serialize};

/// How voxel values (HU for CT) become model input, fitted per volume (a 2D image is a volume of depth 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Values as stored (after the file's rescale slope/intercept).
    #[default]
    None,
    /// `clamp((x − (centre − width/2)) / width, 0, 1)` with `window = [centre, width]`.
    Window,
    /// `(x − min) / (max − min)` over the volume (0 when the volume is constant).
    Minmax,
    /// `(x − mean) / std` over the volume (population std; 0 when the volume is constant).
    Zscore,
}

/// A fitted normalisation: `x' = x · mul + add`, then clamped to [0, 1] for windows; then `(x' − mean) / std` when
/// the config gives `scale = [mean, std]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalizer {
    mul: f64,
    add: f64,
    clamp: bool,
    scale: Option<[f64; 2]>,
}

impl Normalizer {
    /// Fits `how` to `values`; `window` is `[centre, width]` (required for [`Normalize::Window`], width > 0).
    pub fn fit(how: Normalize, window: Option<[f64; 2]>, scale: Option<[f64; 2]>, values: &[f64]) -> Normalizer {
        let (mul, add, clamp) = match how {
            Normalize::None => (1.0, 0.0, false),
            Normalize::Window => {
                let [c, w] = window.unwrap_or([0.0, 1.0]);
                let w = if w > 0.0 { w } else { 1.0 };
                (1.0 / w, -(c - w / 2.0) / w, true)
            }
            Normalize::Minmax => {
                let (lo, hi) = values
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                if hi > lo {
                    (1.0 / (hi - lo), -lo / (hi - lo), false)
                } else {
                    (0.0, 0.0, false)
                }
            }
            Normalize::Zscore => {
                let finite = || values.iter().filter(|v| v.is_finite());
                let n = finite().count().max(1) as f64;
                let mean = finite().sum::<f64>() / n;
                let var = finite().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                if var > 0.0 {
                    let sd = var.sqrt();
                    (1.0 / sd, -mean / sd, false)
                } else {
                    (0.0, 0.0, false)
                }
            }
        };
        Normalizer { mul, add, clamp, scale }
    }

    /// The model input for voxel value `x` (0 for a value that is not a finite number, like padding).
    pub fn apply(&self, x: f64) -> f32 {
        if !x.is_finite() {
            return 0.0;
        }
        let mut y = x * self.mul + self.add;
        if self.clamp {
            y = y.clamp(0.0, 1.0);
        }
        if let Some([m, s]) = self.scale {
            y = (y - m) / s;
        }
        y as f32
    }
}

/// One tile along an axis of length `len`: the model reads input `[start, start + tile)` (positions outside the
/// image are padding, 0 after normalisation) and its output `[from, from + count)` (tile-local) is written to
/// `[to, to + count)` in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSpan {
    pub start: isize,
    pub from: usize,
    pub to: usize,
    pub count: usize,
}

/// The overlap-tile plan along one axis: tiles of `tile` pixels whose outer `margin` pixels on each side are read
/// but not written, so every written pixel saw at least `margin` pixels of real context (or the image border) on
/// each side. A model whose receptive field radius is ≤ `margin` gives the same output as on the whole image at once.
/// Returns `None` when `tile ≤ 2·margin` (no core to write).
pub fn plan_axis(len: usize, tile: usize, margin: usize) -> Option<Vec<TileSpan>> {
    let core = tile.checked_sub(2 * margin).filter(|&c| c > 0)?;
    let mut spans = Vec::new();
    let mut to = 0;
    while to < len {
        let count = core.min(len - to);
        spans.push(TileSpan {
            start: to as isize - margin as isize,
            from: margin,
            to,
            count,
        });
        to += core;
    }
    Some(spans)
}

/// How a model's output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// Raw scores: one channel → sigmoid, several → softmax over the channel axis.
    #[default]
    Logits,
    /// Probabilities already (one channel: foreground probability; several: per class).
    Probabilities,
    /// A class index per pixel (integer or float tensor, `[N, H, W]` or `[N, 1, H, W]`).
    Labels,
}

/// Decides one pixel from its `k` channel values: (class, confidence). Class 0 is background. One channel: the
/// foreground probability `p` (sigmoid of a logit) gives class 1 when `p ≥ threshold`, confidence `p`. Several
/// channels: the first channel with the highest score (numpy's argmax), confidence its softmax probability (or the
/// given probability). Labels: the value rounded to a class, no confidence.
pub fn decide(scores: &[f32], kind: OutputKind, threshold: f64) -> (u32, Option<f64>) {
    match (kind, scores.len()) {
        (OutputKind::Labels, _) => {
            let v = scores.first().copied().unwrap_or(0.0);
            (if v.is_finite() && v > 0.0 { v.round() as u32 } else { 0 }, None)
        }
        (_, 0) => (0, None),
        (_, 1) => {
            let x = scores[0] as f64;
            let p = if kind == OutputKind::Logits {
                1.0 / (1.0 + (-x).exp())
            } else {
                x
            };
            (u32::from(p >= threshold), Some(p))
        }
        (_, _) => {
            let mut best = 0;
            for (i, &v) in scores.iter().enumerate() {
                if v > scores[best] {
                    best = i;
                }
            }
            let p = if kind == OutputKind::Logits {
                let m = scores[best] as f64;
                let denom: f64 = scores.iter().map(|&v| (v as f64 - m).exp()).sum();
                1.0 / denom
            } else {
                scores[best] as f64
            };
            (best as u32, Some(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_maps_the_window_to_unit_range() {
        let n = Normalizer::fit(Normalize::Window, Some([40.0, 400.0]), None, &[]);
        assert_eq!(n.apply(-160.0), 0.0);
        assert_eq!(n.apply(240.0), 1.0);
        assert!((n.apply(40.0) - 0.5).abs() < 1e-7);
        assert_eq!(n.apply(-1000.0), 0.0);
        let s = Normalizer::fit(Normalize::Window, Some([40.0, 400.0]), Some([0.5, 0.25]), &[]);
        assert!((s.apply(240.0) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn minmax_and_zscore_are_fitted_to_the_volume() {
        let v = [2.0, 4.0, 6.0, 8.0];
        let m = Normalizer::fit(Normalize::Minmax, None, None, &v);
        assert_eq!((m.apply(2.0), m.apply(8.0), m.apply(5.0)), (0.0, 1.0, 0.5));
        let z = Normalizer::fit(Normalize::Zscore, None, None, &v);
        // mean 5, population variance (9 + 1 + 1 + 9) / 4 = 5
        assert!((z.apply(5.0)).abs() < 1e-7);
        assert!((z.apply(8.0) - (3.0 / 5f64.sqrt()) as f32).abs() < 1e-6);
        assert_eq!(
            Normalizer::fit(Normalize::Zscore, None, None, &[3.0, 3.0]).apply(3.0),
            0.0
        );
        // values that are not numbers are left out of the fit and fed as 0
        let m = Normalizer::fit(Normalize::Minmax, None, None, &[2.0, f64::NAN, 6.0]);
        assert_eq!((m.apply(4.0), m.apply(f64::NAN)), (0.5, 0.0));
        let z = Normalizer::fit(Normalize::Zscore, None, None, &[1.0, f64::INFINITY, 3.0]);
        assert_eq!((z.apply(2.0), z.apply(3.0)), (0.0, 1.0));
    }

    #[test]
    fn tiles_cover_every_pixel_once_with_context() {
        for (len, tile, margin) in [(100, 64, 8), (48, 64, 8), (1, 16, 2), (129, 32, 0), (200, 17, 8)] {
            let spans = plan_axis(len, tile, margin).expect("plan");
            let mut hit = vec![0; len];
            for s in &spans {
                assert_eq!(
                    s.start + s.from as isize,
                    s.to as isize,
                    "local offset lands on the target"
                );
                assert!(s.from + s.count <= tile);
                for h in &mut hit[s.to..s.to + s.count] {
                    *h += 1;
                }
                // every written pixel has `margin` pixels of tile on each side (or lies at the image border)
                let first_ctx = s.to as isize - s.start;
                assert!(first_ctx >= margin as isize);
                let last = s.to + s.count; // exclusive
                assert!((s.start + tile as isize) - last as isize >= margin as isize || last == len);
            }
            assert!(hit.iter().all(|&h| h == 1), "{len} {tile} {margin}");
        }
        assert_eq!(plan_axis(10, 16, 8), None);
    }

    #[test]
    fn decisions_follow_numpy_argmax_and_sigmoid() {
        assert_eq!(decide(&[0.0], OutputKind::Logits, 0.5), (1, Some(0.5)));
        assert_eq!(decide(&[-0.1], OutputKind::Logits, 0.5).0, 0);
        assert_eq!(decide(&[0.7], OutputKind::Probabilities, 0.8), (0, Some(0.7f32 as f64)));
        // ties go to the first channel; softmax of (1, 3, 3) for class 1 = e^3 / (e + 2e^3)
        let (c, p) = decide(&[1.0, 3.0, 3.0], OutputKind::Logits, 0.5);
        assert_eq!(c, 1);
        let e = std::f64::consts::E;
        assert!((p.unwrap_or(0.0) - e.powi(3) / (e + 2.0 * e.powi(3))).abs() < 1e-12);
        assert_eq!(decide(&[2.0], OutputKind::Labels, 0.5), (2, None));
        assert_eq!(decide(&[-1.0], OutputKind::Labels, 0.5), (0, None));
    }
}
