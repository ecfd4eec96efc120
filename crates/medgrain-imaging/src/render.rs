//! Rendering a 3D volume to 2D: a slice along a patient plane (axial, coronal, sagittal, chosen through the
//! affine), laid out in radiological display convention (axial/coronal: patient right on the image's left;
//! axial: anterior up; coronal/sagittal: superior up; sagittal: anterior on the left), resampled to square pixels
//! (nearest neighbour along the coarser axis), and windowed to 8-bit with CT presets or MR percentiles.

/// A patient plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    pub fn parse(s: &str) -> Option<Plane> {
        match s {
            "axial" => Some(Plane::Axial),
            "coronal" => Some(Plane::Coronal),
            "sagittal" => Some(Plane::Sagittal),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }

    /// World axes (0 = x R/L, 1 = y A/P, 2 = z S/I): (normal, image columns, image rows), with the world sign that
    /// columns and rows advance along (columns: −x = toward patient left; rows: −y posterior or −z inferior).
    fn layout(self) -> (usize, (usize, f64), (usize, f64)) {
        match self {
            Plane::Axial => (2, (0, -1.0), (1, -1.0)),
            Plane::Coronal => (1, (0, -1.0), (2, -1.0)),
            Plane::Sagittal => (0, (1, -1.0), (2, -1.0)),
        }
    }
}

/// CT window presets (centre, width) in HU.
pub fn ct_window(name: &str) -> Option<(f64, f64)> {
    Some(match name {
        "lung" => (-600.0, 1500.0),
        "mediastinum" => (40.0, 400.0),
        "bone" => (400.0, 1800.0),
        "brain" => (40.0, 80.0),
        "abdomen" => (40.0, 400.0),
        _ => return None,
    })
}

/// The `lo..hi` range of the `p`-th and `100-p`-th percentiles of `values` (MR normalisation).
pub fn percentile_window(values: &[f64], p: f64) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((q / 100.0) * (v.len() - 1) as f64).round() as usize];
    let (lo, hi) = (at(p), at(100.0 - p));
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

/// Maps values to 8-bit with a `(centre, width)` window.
pub fn apply_window(v: f64, centre: f64, width: f64) -> u8 {
    (((v - (centre - width / 2.0)) / width).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// DICOM's LINEAR VOI function (PS3.3 C.11.2.1.2.1) to 8-bit: values at or below `c − 0.5 − (w − 1)/2` are 0,
/// above `c − 0.5 + (w − 1)/2` are 255, in between `((x − (c − 0.5)) / (w − 1) + 0.5) × 255`, rounded. `width`
/// below 1 is treated as 1 (the standard requires w ≥ 1).
pub fn dicom_voi_linear(x: f64, centre: f64, width: f64) -> u8 {
    let w = width.max(1.0);
    let (lo, hi) = (centre - 0.5 - (w - 1.0) / 2.0, centre - 0.5 + (w - 1.0) / 2.0);
    if x <= lo {
        0
    } else if x > hi || w <= 1.0 {
        255
    } else {
        (((x - (centre - 0.5)) / (w - 1.0) + 0.5) * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8
    }
}

/// How a slice maps display pixels to voxels.
#[derive(Debug, Clone)]
pub struct SliceLayout {
    pub plane: Plane,
    /// The array axis across which slices are taken.
    pub slice_axis: usize,
    pub slices: usize,
    pub width: usize,
    pub height: usize,
    /// Pixel size of the displayed image (square), mm.
    pub pixel_mm: f64,
    col_axis: usize,
    row_axis: usize,
    col_flip: bool,
    row_flip: bool,
    col_len: usize,
    row_len: usize,
    col_mm: f64,
    row_mm: f64,
}

fn column(a: &[[f64; 4]; 4], ax: usize) -> [f64; 3] {
    [a[0][ax], a[1][ax], a[2][ax]]
}

impl SliceLayout {
    /// The layout for `plane` of a volume of `shape` (x fastest) with `affine`.
    pub fn new(plane: Plane, shape: [usize; 3], affine: &[[f64; 4]; 4]) -> SliceLayout {
        let (normal, (col_world, col_sign), (row_world, row_sign)) = plane.layout();
        // The array axis most aligned with each world axis.
        let best = |w: usize, exclude: &[usize]| -> usize {
            (0..3)
                .filter(|a| !exclude.contains(a))
                .max_by(|&a, &b| {
                    let f = |ax: usize| {
                        let c = column(affine, ax);
                        c[w].abs() / (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt().max(1e-12)
                    };
                    f(a).total_cmp(&f(b))
                })
                .unwrap_or(0)
        };
        let slice_axis = best(normal, &[]);
        let col_axis = best(col_world, &[slice_axis]);
        let row_axis = (0..3).find(|a| *a != slice_axis && *a != col_axis).unwrap_or(1);
        let norm = |ax: usize| {
            let c = column(affine, ax);
            (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt()
        };
        let col_flip = column(affine, col_axis)[col_world] * col_sign < 0.0;
        let row_flip = column(affine, row_axis)[row_world] * row_sign < 0.0;
        let (col_mm, row_mm) = (norm(col_axis), norm(row_axis));
        let pixel_mm = col_mm.min(row_mm).max(1e-6);
        let width = ((shape[col_axis] as f64 * col_mm / pixel_mm).round() as usize).max(1);
        let height = ((shape[row_axis] as f64 * row_mm / pixel_mm).round() as usize).max(1);
        SliceLayout {
            plane,
            slice_axis,
            slices: shape[slice_axis],
            width,
            height,
            pixel_mm,
            col_axis,
            row_axis,
            col_flip,
            row_flip,
            col_len: shape[col_axis],
            row_len: shape[row_axis],
            col_mm,
            row_mm,
        }
    }

    /// The voxel `(i, j, k)` shown at display pixel `(row, col)` of slice `s` (nearest neighbour).
    pub fn voxel(&self, s: usize, row: usize, col: usize) -> [usize; 3] {
        let mut c = ((col as f64 + 0.5) * self.pixel_mm / self.col_mm).floor() as usize;
        let mut r = ((row as f64 + 0.5) * self.pixel_mm / self.row_mm).floor() as usize;
        c = c.min(self.col_len - 1);
        r = r.min(self.row_len - 1);
        if self.col_flip {
            c = self.col_len - 1 - c;
        }
        if self.row_flip {
            r = self.row_len - 1 - r;
        }
        let mut v = [0usize; 3];
        v[self.slice_axis] = s;
        v[self.col_axis] = c;
        v[self.row_axis] = r;
        v
    }

    /// Samples a volume (x fastest, `shape`) on slice `s`, row-major display order.
    pub fn sample<T: Copy>(&self, data: &[T], shape: [usize; 3], s: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(self.width * self.height);
        for row in 0..self.height {
            for col in 0..self.width {
                let [i, j, k] = self.voxel(s, row, col);
                out.push(data[i + shape[0] * (j + shape[1] * k)]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_voi_linear_follows_the_standard_formula() {
        // c = 40, w = 400: lo = 39.5 - 199.5 = -160, hi = 239
        assert_eq!(dicom_voi_linear(-160.0, 40.0, 400.0), 0);
        assert_eq!(dicom_voi_linear(239.5, 40.0, 400.0), 255);
        // x = c - 0.5 is the middle: 0.5 × 255 = 127.5 → 128
        assert_eq!(dicom_voi_linear(39.5, 40.0, 400.0), 128);
        // x = -60: ((-60 - 39.5) / 399 + 0.5) × 255 = 63.91 → 64
        assert_eq!(dicom_voi_linear(-60.0, 40.0, 400.0), 64);
        // width 1: a threshold at c - 0.5
        assert_eq!(dicom_voi_linear(0.0, 1.0, 1.0), 0);
        assert_eq!(dicom_voi_linear(1.0, 1.0, 1.0), 255);
    }

    #[test]
    fn axial_layout_of_an_lps_stored_volume_needs_no_flip() {
        // i → patient left (x decreasing), j → posterior (y decreasing): already radiological.
        let a = [
            [-1.0, 0.0, 0.0, 0.0],
            [0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let l = SliceLayout::new(Plane::Axial, [4, 5, 6], &a);
        assert_eq!((l.slice_axis, l.width, l.height), (2, 4, 5));
        assert_eq!(l.voxel(2, 0, 0), [0, 0, 2]);
        // A RAS-stored volume (i → right, j → anterior) is flipped on both axes.
        let b = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let l = SliceLayout::new(Plane::Axial, [4, 5, 6], &b);
        assert_eq!(l.voxel(0, 0, 0), [3, 4, 0]);
    }

    #[test]
    fn coronal_slices_get_square_pixels() {
        // 1 mm in-plane, 3 mm slices: a coronal image is 3× taller than its voxel count.
        let a = [
            [-1.0, 0.0, 0.0, 0.0],
            [0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let l = SliceLayout::new(Plane::Coronal, [4, 5, 6], &a);
        assert_eq!((l.slice_axis, l.width, l.height), (1, 4, 18));
        // Row 0 is the most superior slice (k = 5), shown for 3 display rows.
        assert_eq!(l.voxel(0, 0, 0)[2], 5);
        assert_eq!(l.voxel(0, 2, 0)[2], 5);
        assert_eq!(l.voxel(0, 3, 0)[2], 4);
    }

    #[test]
    fn windows() {
        assert_eq!(apply_window(-600.0, -600.0, 1500.0), 128);
        assert_eq!(apply_window(-2000.0, -600.0, 1500.0), 0);
        assert_eq!(ct_window("mediastinum"), Some((40.0, 400.0)));
        let (lo, hi) = percentile_window(&(0..=100).map(f64::from).collect::<Vec<_>>(), 1.0);
        assert_eq!((lo, hi), (1.0, 99.0));
    }
}
