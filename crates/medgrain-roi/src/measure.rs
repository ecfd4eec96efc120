//! Physical measurements of a 3D component (RadGPT/RECIST-style):
//! - **long axis**: the longest in-plane diameter over all slices of the acquisition plane (RECIST 1.1 measures
//!   lesions in the axial plane): the largest distance between two pixel centres of the component in one slice,
//!   plus one pixel (centre-to-centre distances under-measure a discrete object by about a pixel);
//! - **short axis**: in the slice of the long axis, the component's extent perpendicular to it, measured the same way;
//! - **volume**: voxel count × voxel volume;
//! - **mean / std HU** of the image under the component, and the **attenuation** class against a 2-voxel shell
//!   around it (IBSI "intensity-based statistics": mean, standard deviation): hypo- / iso- / hyperattenuating when
//!   the mean differs from the shell mean by more than `iso_band_hu`.
//!
//! Coordinates: voxel indices in array order (x fastest for NIfTI); distances through the affine, so oblique and
//! anisotropic grids are measured in millimetres.

use medgrain_records::Measurements;

/// A 3D grid: shape in array order and the voxel → world (mm) affine.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub shape: [usize; 3],
    pub affine: &'a [[f64; 4]; 4],
}

impl Grid<'_> {
    fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.shape[0] * (j + self.shape[1] * k)
    }

    fn column(&self, a: usize) -> [f64; 3] {
        [self.affine[0][a], self.affine[1][a], self.affine[2][a]]
    }

    /// The array axis closest to the patient's superior–inferior direction: slices across it are axial.
    pub fn slice_axis(&self) -> usize {
        (0..3)
            .max_by(|&a, &b| {
                let f = |ax: usize| {
                    let c = self.column(ax);
                    c[2].abs() / (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt().max(1e-12)
                };
                f(a).total_cmp(&f(b))
            })
            .unwrap_or(2)
    }
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Volume of one voxel (mm³): |det| of the affine's 3×3 part, so oblique grids are measured correctly.
pub fn voxel_volume_mm3(affine: &[[f64; 4]; 4]) -> f64 {
    let col = |j: usize| [affine[0][j], affine[1][j], affine[2][j]];
    let (a, b, c) = (col(0), col(1), col(2));
    (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0])).abs()
}

/// Measures one component given as flat voxel indices (x fastest). `image` (the value at a flat index of the same
/// grid) enables HU figures.
pub fn measure_component(
    voxels: &[usize],
    grid: Grid<'_>,
    image: Option<&dyn Fn(usize) -> f64>,
    iso_band_hu: f64,
) -> Measurements {
    let [nx, ny, _] = grid.shape;
    let coords: Vec<[usize; 3]> = voxels.iter().map(|&v| [v % nx, (v / nx) % ny, v / (nx * ny)]).collect();
    let s_ax = grid.slice_axis();
    let (u_ax, v_ax) = match s_ax {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let (cu, cv) = (grid.column(u_ax), grid.column(v_ax));
    let world = |du: f64, dv: f64| {
        [
            du * cu[0] + dv * cv[0],
            du * cu[1] + dv * cv[1],
            du * cu[2] + dv * cv[2],
        ]
    };
    let pixel = (norm(cu) + norm(cv)) / 2.0;
    // Group in-plane points per slice.
    let mut slices: std::collections::BTreeMap<usize, Vec<(f64, f64)>> = std::collections::BTreeMap::new();
    for c in &coords {
        slices
            .entry(c[s_ax])
            .or_default()
            .push((c[u_ax] as f64, c[v_ax] as f64));
    }
    // (diameter, end point a, end point b, slice)
    type Diameter = (f64, (f64, f64), (f64, f64), usize);
    let mut best: Option<Diameter> = None;
    for (&s, pts) in &slices {
        // Extreme points suffice for the diameter: keep the slice's boundary (points with a missing 4-neighbour).
        let set: std::collections::HashSet<(i64, i64)> = pts.iter().map(|&(u, v)| (u as i64, v as i64)).collect();
        let boundary: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|&(u, v)| {
                let (u, v) = (u as i64, v as i64);
                [(1, 0), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .any(|(du, dv)| !set.contains(&(u + du, v + dv)))
            })
            .collect();
        for a in 0..boundary.len() {
            for b in a..boundary.len() {
                let (p, q) = (boundary[a], boundary[b]);
                let d = norm(world(q.0 - p.0, q.1 - p.1));
                if best.is_none_or(|(bd, ..)| d > bd) {
                    best = Some((d, p, q, s));
                }
            }
        }
    }
    let (long_axis, short_axis) = match best {
        Some((d, p, q, s)) => {
            let dir = world(q.0 - p.0, q.1 - p.1);
            let len = norm(dir).max(1e-12);
            let dir = [dir[0] / len, dir[1] / len, dir[2] / len];
            // Perpendicular within the slice plane: the plane normal × dir.
            let n = {
                let (a, b) = (cu, cv);
                [
                    a[1] * b[2] - a[2] * b[1],
                    a[2] * b[0] - a[0] * b[2],
                    a[0] * b[1] - a[1] * b[0],
                ]
            };
            let perp = [
                n[1] * dir[2] - n[2] * dir[1],
                n[2] * dir[0] - n[0] * dir[2],
                n[0] * dir[1] - n[1] * dir[0],
            ];
            let pl = norm(perp).max(1e-12);
            let perp = [perp[0] / pl, perp[1] / pl, perp[2] / pl];
            let proj: Vec<f64> = slices[&s]
                .iter()
                .map(|&(u, v)| {
                    let w = world(u, v);
                    w[0] * perp[0] + w[1] * perp[1] + w[2] * perp[2]
                })
                .collect();
            let lo = proj.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = proj.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (Some(d + pixel), Some(hi - lo + pixel))
        }
        None => (None, None),
    };
    let voxel_volume = voxel_volume_mm3(grid.affine);
    let (mut mean_hu, mut std_hu, mut attenuation) = (None, None, None);
    if let Some(img) = image {
        let n = voxels.len() as f64;
        if n > 0.0 {
            let m = voxels.iter().map(|&v| img(v)).sum::<f64>() / n;
            let var = voxels.iter().map(|&v| (img(v) - m).powi(2)).sum::<f64>() / n;
            mean_hu = Some(m);
            std_hu = Some(var.sqrt());
            // Shell: voxels within 2 voxels (Chebyshev) of the component, outside it.
            let inside: std::collections::HashSet<usize> = voxels.iter().copied().collect();
            let mut shell = std::collections::HashSet::new();
            for c in &coords {
                for dk in -2i64..=2 {
                    for dj in -2i64..=2 {
                        for di in -2i64..=2 {
                            let (i, j, k) = (c[0] as i64 + di, c[1] as i64 + dj, c[2] as i64 + dk);
                            if i < 0 || j < 0 || k < 0 {
                                continue;
                            }
                            let (i, j, k) = (i as usize, j as usize, k as usize);
                            if i >= grid.shape[0] || j >= grid.shape[1] || k >= grid.shape[2] {
                                continue;
                            }
                            let idx = grid.index(i, j, k);
                            if !inside.contains(&idx) {
                                shell.insert(idx);
                            }
                        }
                    }
                }
            }
            if !shell.is_empty() {
                let sm = shell.iter().map(|&v| img(v)).sum::<f64>() / shell.len() as f64;
                attenuation = Some(
                    if m < sm - iso_band_hu {
                        "hypoattenuating"
                    } else if m > sm + iso_band_hu {
                        "hyperattenuating"
                    } else {
                        "isoattenuating"
                    }
                    .to_string(),
                );
            }
        }
    }
    Measurements {
        long_axis_mm: long_axis,
        short_axis_mm: short_axis,
        volume_mm3: Some(voxel_volume * voxels.len() as f64),
        mean_hu,
        std_hu,
        attenuation,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rectangle_is_measured_by_hand() {
        // A 5 × 3 voxel rectangle in one slice, 2 mm × 1 mm pixels, 4 mm slices.
        let a = [
            [2.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 4.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let g = Grid {
            shape: [10, 10, 3],
            affine: &a,
        };
        let vox: Vec<usize> = (0..5)
            .flat_map(|i| (0..3).map(move |j| g.index(2 + i, 4 + j, 1)))
            .collect();
        let img: Vec<f64> = (0..300).map(|v| if vox.contains(&v) { -20.0 } else { 40.0 }).collect();
        let m = measure_component(&vox, g, Some(&|i| img[i]), 10.0);
        // Long axis: corner to corner, centres (0,0)-(4,2) in voxels = (8 mm, 2 mm) → √68, plus one pixel (1.5 mm).
        assert!((m.long_axis_mm.unwrap() - (68f64.sqrt() + 1.5)).abs() < 1e-9, "{m:?}");
        assert_eq!(m.volume_mm3, Some(15.0 * 8.0));
        assert_eq!(m.mean_hu, Some(-20.0));
        assert_eq!(m.std_hu, Some(0.0));
        assert_eq!(m.attenuation.as_deref(), Some("hypoattenuating"));
        assert!(m.short_axis_mm.unwrap() > 0.0 && m.short_axis_mm.unwrap() < m.long_axis_mm.unwrap());
    }

    #[test]
    fn slice_axis_follows_the_affine() {
        let a = [
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(
            Grid {
                shape: [2, 2, 2],
                affine: &a
            }
            .slice_axis(),
            1
        );
    }
}
