//! Reorientation of a 3D voxel array to RAS+ (nibabel's `as_closest_canonical`): each voxel axis is matched to
//! the world axis it runs closest to ([`io_orientation`], as nibabel's `io_orientation`), reversed where it runs
//! toward L, P or I, and the axes are permuted into R, A, S order; the affine is updated so every voxel keeps its
//! world position. No resampling: values are moved, never interpolated.

use crate::nifti_read::{polar, read_nifti, Voxels};
use crate::{write_nifti1_gz, ImagingError, NiftiDatatype, NiftiVolume, Result};
use std::path::Path;

/// For each voxel axis, the world axis (0 = x R/L, 1 = y A/P, 2 = z S/I) it runs closest to and whether it runs
/// toward the negative end (L, P, I); `None` for an axis whose direction is undefined (a zero column).
pub fn io_orientation(affine: &[[f64; 4]; 4]) -> [Option<(usize, bool)>; 3] {
    let mut rs = [[0.0; 3]; 3];
    for j in 0..3 {
        let mut zoom = (0..3).map(|i| affine[i][j] * affine[i][j]).sum::<f64>().sqrt();
        if zoom == 0.0 {
            zoom = 1.0;
        }
        for i in 0..3 {
            rs[i][j] = affine[i][j] / zoom;
        }
    }
    let Some(mut r) = polar(rs) else { return [None; 3] };
    let mut out = [None; 3];
    for (in_ax, o) in out.iter_mut().enumerate() {
        let col: [f64; 3] = std::array::from_fn(|i| r[i][in_ax]);
        if col.iter().all(|v| v.abs() < 1e-8) {
            continue;
        }
        let out_ax = (0..3)
            .max_by(|&a, &b| col[a].abs().total_cmp(&col[b].abs()))
            .unwrap_or(0);
        *o = Some((out_ax, col[out_ax] < 0.0));
        for v in r[out_ax].iter_mut() {
            *v = 0.0;
        }
    }
    out
}

/// A volume reoriented to RAS+.
#[derive(Debug, Clone, PartialEq)]
pub struct Reoriented<T> {
    pub shape: [usize; 3],
    pub affine: [[f64; 4]; 4],
    /// Values, first axis fastest (NIfTI order).
    pub data: Vec<T>,
}

/// Reorients `data` (shape `shape`, first axis fastest) with `affine` to RAS+. `None` when the affine does not
/// determine three distinct axes or `data` is shorter than the shape.
pub fn reorient_to_ras<T: Copy>(data: &[T], shape: [usize; 3], affine: &[[f64; 4]; 4]) -> Option<Reoriented<T>> {
    let n = shape.iter().product::<usize>();
    if data.len() < n {
        return None;
    }
    let ornt = io_orientation(affine);
    // in_of[k]: the input axis that becomes output axis k.
    let mut in_of = [usize::MAX; 3];
    for (in_ax, o) in ornt.iter().enumerate() {
        let (out_ax, _) = (*o)?;
        in_of[out_ax] = in_ax;
    }
    if in_of.contains(&usize::MAX) {
        return None;
    }
    let flip: [bool; 3] = std::array::from_fn(|a| ornt[a].is_some_and(|(_, f)| f));
    let new_shape: [usize; 3] = std::array::from_fn(|k| shape[in_of[k]]);
    let stride = [1, shape[0], shape[0] * shape[1]];
    let mut out = Vec::with_capacity(n);
    let mut idx = [0usize; 3];
    for z in 0..new_shape[2] {
        for y in 0..new_shape[1] {
            for x in 0..new_shape[0] {
                for (k, v) in [x, y, z].into_iter().enumerate() {
                    let a = in_of[k];
                    idx[a] = if flip[a] { shape[a] - 1 - v } else { v };
                }
                out.push(data[idx[0] * stride[0] + idx[1] * stride[1] + idx[2] * stride[2]]);
            }
        }
    }
    let mut a = [[0.0; 4]; 4];
    a[3][3] = 1.0;
    for r in 0..3 {
        a[r][3] = affine[r][3];
        for (in_ax, f) in flip.iter().enumerate() {
            if *f {
                a[r][3] += affine[r][in_ax] * (shape[in_ax] as f64 - 1.0);
            }
        }
        for k in 0..3 {
            let src = in_of[k];
            a[r][k] = if flip[src] { -affine[r][src] } else { affine[r][src] };
        }
    }
    Some(Reoriented {
        shape: new_shape,
        affine: a,
        data: out,
    })
}

/// Reads a 3D NIfTI file, reorients it to RAS+ and writes it as `.nii.gz`: uint8 and int16 data without scaling
/// keep their type, anything else is written as float64 with scl_slope/scl_inter applied. Returns the input's
/// orientation codes and the output shape.
pub fn reorient_nifti_file(input: &Path, output: &Path) -> Result<(String, [usize; 3])> {
    let img = read_nifti(input)?;
    let h = &img.header;
    let shape: [usize; 3] = match h.shape.as_slice() {
        [x, y, z] | [x, y, z, 1] => [*x, *y, *z],
        other => {
            return Err(ImagingError::Unsupported {
                path: input.to_path_buf(),
                reason: format!("shape {other:?}: reorientation handles 3D volumes"),
            })
        }
    };
    let affine = h.best_affine();
    let codes: String = crate::nifti_read::axcodes(&affine)
        .iter()
        .map(|c| c.unwrap_or('?'))
        .collect();
    let bad = || ImagingError::InvalidVolume {
        path: input.to_path_buf(),
        reason: format!("affine {affine:?} does not determine three distinct axes ({codes})"),
    };
    let write = |dims: [usize; 3], affine: [[f64; 4]; 4], datatype: NiftiDatatype, data: &[u8]| {
        write_nifti1_gz(
            output,
            &NiftiVolume {
                dims,
                affine,
                datatype,
                data,
                description: "medgrain reorient: RAS+",
            },
        )
    };
    let out_shape = match (&img.voxels, h.scaling()) {
        (Voxels::U8(v), None) => {
            let r = reorient_to_ras(v, shape, &affine).ok_or_else(bad)?;
            write(r.shape, r.affine, NiftiDatatype::Uint8, &r.data)?;
            r.shape
        }
        (Voxels::I16(v), None) => {
            let r = reorient_to_ras(v, shape, &affine).ok_or_else(bad)?;
            let bytes: Vec<u8> = r.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            write(r.shape, r.affine, NiftiDatatype::Int16, &bytes)?;
            r.shape
        }
        (Voxels::Rgb8(_), _) => {
            return Err(ImagingError::Unsupported {
                path: input.to_path_buf(),
                reason: "RGB volumes are not reoriented".into(),
            })
        }
        (v, scale) => {
            let values: Vec<f64> = v.values().map(|x| scale.map_or(x, |(s, i)| x * s + i)).collect();
            let r = reorient_to_ras(&values, shape, &affine).ok_or_else(bad)?;
            let bytes: Vec<u8> = r.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            write(r.shape, r.affine, NiftiDatatype::Float64, &bytes)?;
            r.shape
        }
    };
    Ok((codes, out_shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(a: &[[f64; 4]; 4], i: [usize; 3]) -> [f64; 3] {
        std::array::from_fn(|r| a[r][0] * i[0] as f64 + a[r][1] * i[1] as f64 + a[r][2] * i[2] as f64 + a[r][3])
    }

    #[test]
    fn every_voxel_keeps_its_world_position() {
        // voxel x runs toward −y (P), y toward +z (S), z toward −x (L)
        let affine = [
            [0.0, 0.0, -3.0, 10.0],
            [-2.0, 0.0, 0.0, 20.0],
            [0.0, 1.5, 0.0, -5.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let shape = [4, 3, 2];
        let data: Vec<usize> = (0..24).collect();
        let r = reorient_to_ras(&data, shape, &affine).unwrap();
        assert_eq!(r.shape, [2, 4, 3]);
        // the new affine is diagonal and positive (RAS+)
        for i in 0..3 {
            for j in 0..3 {
                assert!(if i == j {
                    r.affine[i][j] > 0.0
                } else {
                    r.affine[i][j] == 0.0
                });
            }
        }
        // each value sits at the same world point as before
        for z in 0..3 {
            for y in 0..4 {
                for x in 0..2 {
                    let v = r.data[x + 2 * (y + 4 * z)];
                    let old = [v % 4, (v / 4) % 3, v / 12];
                    assert_eq!(world(&r.affine, [x, y, z]), world(&affine, old));
                }
            }
        }
    }

    #[test]
    fn a_degenerate_affine_is_refused() {
        let mut a = [[0.0; 4]; 4];
        a[0][0] = 1.0;
        a[3][3] = 1.0;
        assert!(reorient_to_ras(&[0u8; 8], [2, 2, 2], &a).is_none());
    }
}
