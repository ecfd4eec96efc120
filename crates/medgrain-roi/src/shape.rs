//! Shape and first-order intensity descriptors of one region, with scikit-image's `regionprops` definitions (so
//! the figures can be checked against it) and IBSI names where IBSI defines the feature:
//! - **moments**: central moments μ_pq about the centroid; the inertia tensor as scikit-image builds it
//!   (`inertia_tensor`: T_ii = (Σ_k μ_kk − μ_ii)/μ_0, T_ij = −μ_ij/μ_0) and its eigenvalues λ1 ≥ λ2 (≥ λ3);
//! - 2D: `major/minor_axis_length` = 4√λ1, 4√λ2 (the ellipse with the same second moments), `eccentricity` =
//!   √(1 − λ2/λ1), `orientation` (radians, scikit-image's convention), `perimeter` (scikit-image's 4-neighbourhood
//!   estimate: border pixels weighted by their local configuration, 1, √2 or (1+√2)/2), `circularity` = 4π·area /
//!   perimeter², `convex_area` (pixel centres inside or on the convex hull of the pixels' edge midpoints, as
//!   `convex_hull_image`), `solidity` = area / convex area, `extent` = area / bounding-box area,
//!   `equivalent_diameter` = √(4·area/π);
//! - 3D: `major/minor_axis_length` = √(10(λ1+λ2−λ3)), √(10(−λ1+λ2+λ3)) (scikit-image), and IBSI 3.1.11/3.1.12
//!   `elongation` = √(λ_minor/λ_major), `flatness` = √(λ_least/λ_major) of the covariance eigenvalues;
//! - intensity (IBSI 3.4 intensity histogram, fixed bin number discretisation, Ng = 32 bins over the region's
//!   range): `entropy` (bits) = −Σ p log₂ p, `uniformity` = Σ p².

use serde::Serialize;

/// 2D shape descriptors (pixel units).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape2d {
    pub area: f64,
    pub perimeter: f64,
    pub circularity: f64,
    pub eccentricity: f64,
    pub major_axis_length: f64,
    pub minor_axis_length: f64,
    pub orientation: f64,
    pub convex_area: f64,
    pub solidity: f64,
    pub extent: f64,
    pub equivalent_diameter: f64,
}

/// 3D shape descriptors (voxel units).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape3d {
    pub major_axis_length: f64,
    pub minor_axis_length: f64,
    pub elongation: f64,
    pub flatness: f64,
}

/// Inertia tensor (scikit-image's) of points, and the centroid.
fn inertia<const N: usize>(points: &[[f64; N]]) -> [[f64; N]; N] {
    let n = points.len().max(1) as f64;
    let mut c = [0.0; N];
    for p in points {
        for a in 0..N {
            c[a] += p[a] / n;
        }
    }
    let mut mu = [[0.0; N]; N];
    for p in points {
        for a in 0..N {
            for b in 0..N {
                mu[a][b] += (p[a] - c[a]) * (p[b] - c[b]);
            }
        }
    }
    let trace: f64 = (0..N).map(|a| mu[a][a]).sum();
    let mut t = [[0.0; N]; N];
    for a in 0..N {
        for b in 0..N {
            t[a][b] = if a == b { (trace - mu[a][a]) / n } else { -mu[a][b] / n };
        }
    }
    t
}

/// Eigenvalues of a symmetric matrix (cyclic Jacobi), descending, clipped at 0 as scikit-image clips them.
fn eigenvalues<const N: usize>(m: [[f64; N]; N]) -> [f64; N] {
    let mut a = m;
    for _ in 0..100 {
        let off: f64 = (0..N)
            .flat_map(|i| (0..N).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..N {
            for q in p + 1..N {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                let mut b = a;
                for k in 0..N {
                    b[k][p] = c * a[k][p] - s * a[k][q];
                    b[k][q] = s * a[k][p] + c * a[k][q];
                }
                let b2 = b;
                for k in 0..N {
                    b[p][k] = c * b2[p][k] - s * b2[q][k];
                    b[q][k] = s * b2[p][k] + c * b2[q][k];
                }
                a = b;
            }
        }
    }
    let mut ev: [f64; N] = std::array::from_fn(|i| a[i][i].max(0.0));
    ev.sort_by(|x, y| y.total_cmp(x));
    ev
}

/// scikit-image's `perimeter(image, neighborhood=4)` of a region given as a row-major `h × w` mask.
fn perimeter(mask: &[bool], h: usize, w: usize) -> f64 {
    let at = |r: isize, c: isize| {
        r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w && mask[r as usize * w + c as usize]
    };
    // border: set pixels with an unset 4-neighbour (outside counts as unset), computed once into a grid padded by
    // two pixels (the configuration code below looks one pixel beyond the bbox grown by one)
    let (ph, pw) = (h + 4, w + 4);
    let mut border = vec![false; ph * pw];
    for r in 0..h as isize {
        for c in 0..w as isize {
            if at(r, c) && !(at(r - 1, c) && at(r + 1, c) && at(r, c - 1) && at(r, c + 1)) {
                border[(r as usize + 2) * pw + c as usize + 2] = true;
            }
        }
    }
    let s2 = std::f64::consts::SQRT_2;
    let mut total = 0.0;
    // the weighted configuration code is non-zero only next to border pixels; scan the bbox grown by one
    for r in 1..=h + 2 {
        for c in 1..=w + 2 {
            let b = |dr: usize, dc: usize| border[(r + dr - 1) * pw + c + dc - 1] as u32;
            let code =
                10 * (b(0, 0) + b(0, 2) + b(2, 0) + b(2, 2)) + 2 * (b(0, 1) + b(1, 0) + b(1, 2) + b(2, 1)) + b(1, 1);
            total += match code {
                5 | 7 | 15 | 17 | 25 | 27 => 1.0,
                21 | 33 => s2,
                13 | 23 => (1.0 + s2) / 2.0,
                _ => 0.0,
            };
        }
    }
    total
}

fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Convex hull (Andrew's monotone chain), counter-clockwise, no collinear points.
fn convex_hull(mut pts: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut lower: Vec<[f64; 2]> = Vec::new();
    for &p in &pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<[f64; 2]> = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

/// Pixel centres of the `h × w` grid inside or on the hull (scikit-image's `include_borders=True`).
fn convex_area(mask: &[bool], h: usize, w: usize) -> f64 {
    // The hull of all pixels' edge midpoints is the hull of those of each row's first and last pixel: a pixel
    // between them has its midpoints on the segments joining theirs.
    let mut pts = Vec::new();
    for r in 0..h {
        let row = &mask[r * w..(r + 1) * w];
        let (Some(first), Some(last)) = (row.iter().position(|&b| b), row.iter().rposition(|&b| b)) else {
            continue;
        };
        for c in if first == last { vec![first] } else { vec![first, last] } {
            let (y, x) = (r as f64, c as f64);
            pts.extend([[y + 0.5, x], [y - 0.5, x], [y, x + 0.5], [y, x - 0.5]]);
        }
    }
    let hull = convex_hull(pts);
    if hull.len() < 3 {
        return mask.iter().filter(|&&b| b).count() as f64;
    }
    let mut n = 0usize;
    for r in 0..h {
        for c in 0..w {
            let p = [r as f64, c as f64];
            let inside = (0..hull.len()).all(|i| cross(hull[i], hull[(i + 1) % hull.len()], p) >= -1e-9);
            n += inside as usize;
        }
    }
    n as f64
}

/// Shape descriptors of a 2D region given by its pixels' (row, column).
pub fn shape_2d(pixels: &[(usize, usize)]) -> Option<Shape2d> {
    let (r0, c0) = (pixels.iter().map(|p| p.0).min()?, pixels.iter().map(|p| p.1).min()?);
    let (r1, c1) = (pixels.iter().map(|p| p.0).max()?, pixels.iter().map(|p| p.1).max()?);
    let (h, w) = (r1 - r0 + 1, c1 - c0 + 1);
    let mut mask = vec![false; h * w];
    for &(r, c) in pixels {
        mask[(r - r0) * w + (c - c0)] = true;
    }
    let area = pixels.len() as f64;
    let pts: Vec<[f64; 2]> = pixels.iter().map(|&(r, c)| [r as f64, c as f64]).collect();
    let t = inertia(&pts);
    let [l1, l2] = eigenvalues(t);
    let (a, b, c) = (t[0][0], t[0][1], t[1][1]);
    let orientation = if a - c == 0.0 {
        if b < 0.0 {
            std::f64::consts::FRAC_PI_4
        } else {
            -std::f64::consts::FRAC_PI_4
        }
    } else {
        0.5 * (-2.0 * b).atan2(c - a)
    };
    let perimeter = perimeter(&mask, h, w);
    let convex_area = convex_area(&mask, h, w);
    Some(Shape2d {
        area,
        perimeter,
        circularity: if perimeter > 0.0 {
            4.0 * std::f64::consts::PI * area / (perimeter * perimeter)
        } else {
            0.0
        },
        eccentricity: if l1 > 0.0 { (1.0 - l2 / l1).max(0.0).sqrt() } else { 0.0 },
        major_axis_length: 4.0 * l1.sqrt(),
        minor_axis_length: 4.0 * l2.sqrt(),
        orientation,
        convex_area,
        solidity: area / convex_area,
        extent: area / (h * w) as f64,
        equivalent_diameter: (4.0 * area / std::f64::consts::PI).sqrt(),
    })
}

/// Running sums for the second moments of a 3D region (one pass over a label map, no voxel lists).
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments3 {
    n: f64,
    s: [f64; 3],
    ss: [[f64; 3]; 3],
}

impl Moments3 {
    pub fn add(&mut self, p: [usize; 3]) {
        let p = p.map(|x| x as f64);
        self.n += 1.0;
        for a in 0..3 {
            self.s[a] += p[a];
            for b in 0..3 {
                self.ss[a][b] += p[a] * p[b];
            }
        }
    }

    /// scikit-image's inertia tensor from the sums.
    fn inertia(&self) -> [[f64; 3]; 3] {
        let n = self.n.max(1.0);
        let mu: [[f64; 3]; 3] =
            std::array::from_fn(|a| std::array::from_fn(|b| self.ss[a][b] - self.s[a] * self.s[b] / n));
        let trace = mu[0][0] + mu[1][1] + mu[2][2];
        std::array::from_fn(|a| std::array::from_fn(|b| if a == b { (trace - mu[a][a]) / n } else { -mu[a][b] / n }))
    }

    /// Shape descriptors of the region summed so far.
    pub fn shape(&self) -> Option<Shape3d> {
        (self.n > 0.0).then(|| shape_from_inertia(self.inertia()))
    }
}

fn shape_from_inertia(t: [[f64; 3]; 3]) -> Shape3d {
    let [l1, l2, l3] = eigenvalues(t);
    // Covariance eigenvalues (IBSI's λ) from the inertia eigenvalues: cov_i = (λ_j + λ_k − λ_i)/2.
    let total = (l1 + l2 + l3) / 2.0;
    let mut cov = [total - l1, total - l2, total - l3].map(|x| x.max(0.0));
    cov.sort_by(|x, y| y.total_cmp(x));
    let ratio = |x: f64| if cov[0] > 0.0 { (x / cov[0]).sqrt() } else { 0.0 };
    Shape3d {
        major_axis_length: (10.0 * (l1 + l2 - l3)).max(0.0).sqrt(),
        minor_axis_length: (10.0 * (-l1 + l2 + l3)).max(0.0).sqrt(),
        elongation: ratio(cov[1]),
        flatness: ratio(cov[2]),
    }
}

/// Shape descriptors of a 3D region given by its voxels' indices.
pub fn shape_3d(voxels: &[[usize; 3]]) -> Option<Shape3d> {
    let mut m = Moments3::default();
    voxels.iter().for_each(|&v| m.add(v));
    m.shape()
}

/// IBSI first-order features on a fixed number of bins over the values' range: (entropy in bits, uniformity).
/// A constant region has one bin: entropy 0, uniformity 1.
pub fn entropy_uniformity(values: &[f64], bins: usize) -> Option<(f64, f64)> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() || bins == 0 {
        return None;
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut counts = vec![0usize; bins];
    for v in &finite {
        let k = if hi > lo {
            ((bins as f64 * (v - lo) / (hi - lo)).floor() as usize).min(bins - 1)
        } else {
            0
        };
        counts[k] += 1;
    }
    let n = finite.len() as f64;
    let (mut entropy, mut uniformity) = (0.0, 0.0);
    for &c in counts.iter().filter(|&&c| c > 0) {
        let p = c as f64 / n;
        entropy -= p * p.log2();
        uniformity += p * p;
    }
    Some((entropy, uniformity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(h: usize, w: usize) -> Vec<(usize, usize)> {
        (0..h).flat_map(|r| (0..w).map(move |c| (r + 2, c + 3))).collect()
    }

    #[test]
    fn rectangle_by_hand() {
        let s = shape_2d(&rect(3, 5)).unwrap();
        assert_eq!(s.area, 15.0);
        assert_eq!(s.extent, 1.0);
        assert_eq!(s.convex_area, 15.0);
        assert_eq!(s.solidity, 1.0);
        // a w × h block: variance of columns (w² − 1)/12 = 2, of rows (h² − 1)/12 = 2/3 → 4√2, 4√(2/3)
        assert!((s.major_axis_length - 4.0 * 2f64.sqrt()).abs() < 1e-12);
        assert!((s.minor_axis_length - 4.0 * (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // long axis along the columns: scikit-image's orientation is ±π/2 for a horizontal ellipse
        assert!((s.orientation.abs() - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        // border of a 3 × 5 block: 12 pixels, each with two border neighbours along the edge (a corner: 1 + 2 + 2 + 10
        // diagonal = 15; an edge pixel: 1 + 2 + 2 = 5; both weight 1) → 12
        assert!((s.perimeter - 12.0).abs() < 1e-12);
    }

    #[test]
    fn l_shape_is_not_solid() {
        let mut px = rect(4, 1);
        px.extend([(5, 4), (5, 5), (5, 6)]);
        let s = shape_2d(&px).unwrap();
        assert_eq!(s.area, 7.0);
        assert!(s.solidity < 1.0 && s.convex_area > 7.0);
    }

    #[test]
    fn cube_and_rod_3d() {
        let cube: Vec<[usize; 3]> = (0..27).map(|i| [i % 3, (i / 3) % 3, i / 9]).collect();
        let c = shape_3d(&cube).unwrap();
        assert!((c.elongation - 1.0).abs() < 1e-12 && (c.flatness - 1.0).abs() < 1e-12);
        let rod: Vec<[usize; 3]> = (0..10).map(|i| [i, 0, 0]).collect();
        let r = shape_3d(&rod).unwrap();
        assert!(r.elongation < 1e-9 && r.major_axis_length > 0.0);
    }

    #[test]
    fn entropy_of_two_equal_halves_is_one_bit() {
        let (e, u) = entropy_uniformity(&[0.0, 0.0, 10.0, 10.0], 32).unwrap();
        assert!((e - 1.0).abs() < 1e-12 && (u - 0.5).abs() < 1e-12);
        assert_eq!(entropy_uniformity(&[3.0; 5], 32), Some((0.0, 1.0)));
    }
}
