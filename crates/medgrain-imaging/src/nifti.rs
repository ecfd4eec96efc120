//! NIfTI-1 writing (`.nii.gz`, little-endian, sform and qform both set from the affine), used by the synthetic
//! corpus. Output is byte-identical for identical input: the gzip header carries no time stamp.

use crate::{ImagingError, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::Path;

/// NIfTI-1 datatype codes for the types medgrain writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NiftiDatatype {
    Uint8,
    Int16,
    Float64,
}

impl NiftiDatatype {
    fn code(self) -> i16 {
        match self {
            NiftiDatatype::Uint8 => 2,
            NiftiDatatype::Int16 => 4,
            NiftiDatatype::Float64 => 64,
        }
    }
    fn bitpix(self) -> i16 {
        match self {
            NiftiDatatype::Uint8 => 8,
            NiftiDatatype::Int16 => 16,
            NiftiDatatype::Float64 => 64,
        }
    }
}

/// A volume to write: dimensions in `x, y, z` order, voxel data x fastest (NIfTI order), and a 4×4 RAS affine.
#[derive(Debug, Clone)]
pub struct NiftiVolume<'a> {
    pub dims: [usize; 3],
    pub affine: [[f64; 4]; 4],
    pub datatype: NiftiDatatype,
    /// Little-endian voxel bytes, `dims[0]*dims[1]*dims[2]` voxels.
    pub data: &'a [u8],
    pub description: &'a str,
}

/// Quaternion parameters (b, c, d, qfac) of the rotation part of an affine with positive voxel sizes, as the
/// NIfTI-1 standard (`nifti_mat44_to_quatern`) derives them.
fn quatern(affine: &[[f64; 4]; 4], spacing: [f64; 3]) -> (f64, f64, f64, f64) {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = affine[i][j] / spacing[j];
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let a = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d) = if a > 0.5 {
        let a = 0.5 * a.sqrt();
        (
            a,
            0.25 * (r[2][1] - r[1][2]) / a,
            0.25 * (r[0][2] - r[2][0]) / a,
            0.25 * (r[1][0] - r[0][1]) / a,
        )
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let b = 0.5 * xd.sqrt();
            (
                0.25 * (r[2][1] - r[1][2]) / b,
                b,
                0.25 * (r[0][1] + r[1][0]) / b,
                0.25 * (r[0][2] + r[2][0]) / b,
            )
        } else if yd > 1.0 {
            let c = 0.5 * yd.sqrt();
            (
                0.25 * (r[0][2] - r[2][0]) / c,
                0.25 * (r[0][1] + r[1][0]) / c,
                c,
                0.25 * (r[1][2] + r[2][1]) / c,
            )
        } else {
            let d = 0.5 * zd.sqrt();
            (
                0.25 * (r[1][0] - r[0][1]) / d,
                0.25 * (r[0][2] + r[2][0]) / d,
                0.25 * (r[1][2] + r[2][1]) / d,
                d,
            )
        }
    };
    if a < 0.0 {
        (-b, -c, -d, qfac)
    } else {
        (b, c, d, qfac)
    }
}

/// Builds the 352-byte NIfTI-1 header (348 + 4 extension bytes) for `vol`.
fn header(vol: &NiftiVolume<'_>) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut Vec<u8>, off: usize, v: i16| h[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, off: usize, v: f32| h[off..off + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[38] = b'r'; // regular
    let dim = [
        3i16,
        vol.dims[0] as i16,
        vol.dims[1] as i16,
        vol.dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (k, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * k, *d);
    }
    put_i16(&mut h, 70, vol.datatype.code());
    put_i16(&mut h, 72, vol.datatype.bitpix());
    let a = &vol.affine;
    let spacing: [f64; 3] = std::array::from_fn(|j| (a[0][j] * a[0][j] + a[1][j] * a[1][j] + a[2][j] * a[2][j]).sqrt());
    let (qb, qc, qd, qfac) = quatern(a, spacing);
    put_f32(&mut h, 76, qfac as f32);
    for (k, s) in spacing.iter().enumerate() {
        put_f32(&mut h, 80 + 4 * k, *s as f32);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    put_f32(&mut h, 116, 0.0); // scl_inter
    h[123] = 10 | 8; // xyzt_units: mm, s
    let desc = vol.description.as_bytes();
    let n = desc.len().min(79);
    h[148..148 + n].copy_from_slice(&desc[..n]);
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
    put_f32(&mut h, 256, qb as f32);
    put_f32(&mut h, 260, qc as f32);
    put_f32(&mut h, 264, qd as f32);
    // qoffset_x/y/z, then srow_x/y/z (four floats each).
    for (k, row) in a.iter().take(3).enumerate() {
        put_f32(&mut h, 268 + 4 * k, row[3] as f32);
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * k + 4 * c, *v as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

/// Writes `vol` as a gzip-compressed single-file NIfTI-1 (`.nii.gz`).
pub fn write_nifti1_gz(path: &Path, vol: &NiftiVolume<'_>) -> Result<()> {
    let voxels = vol.dims.iter().product::<usize>();
    let expected = voxels * (vol.datatype.bitpix() as usize / 8);
    if vol.data.len() != expected || vol.dims.iter().any(|&d| d == 0 || d > i16::MAX as usize) {
        return Err(ImagingError::InvalidVolume {
            path: path.to_path_buf(),
            reason: format!("dims {:?} need {expected} bytes, got {}", vol.dims, vol.data.len()),
        });
    }
    let io = |source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = GzEncoder::new(std::io::BufWriter::new(file), Compression::new(6));
    enc.write_all(&header(vol)).map_err(io)?;
    enc.write_all(vol.data).map_err(io)?;
    let mut w = enc.finish().map_err(io)?;
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quatern_of_lps_like_affine() {
        // diag(-1,-1,1): rotation by 180 degrees about z, qfac +1 -> (b, c, d) = (0, 0, 1).
        let a = [
            [-2.0, 0.0, 0.0, 0.0],
            [0.0, -2.0, 0.0, 0.0],
            [0.0, 0.0, 5.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let (b, c, d, qfac) = quatern(&a, [2.0, 2.0, 5.0]);
        assert_eq!(qfac, 1.0);
        assert!(b.abs() < 1e-12 && c.abs() < 1e-12 && (d.abs() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn header_fields_at_standard_offsets() {
        let data = vec![0u8; 2 * 3 * 4 * 2];
        let a = [
            [1.0, 0.0, 0.0, -1.0],
            [0.0, 1.0, 0.0, -2.0],
            [0.0, 0.0, 2.0, -3.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let v = NiftiVolume {
            dims: [2, 3, 4],
            affine: a,
            datatype: NiftiDatatype::Int16,
            data: &data,
            description: "t",
        };
        let h = header(&v);
        assert_eq!(i32::from_le_bytes(h[0..4].try_into().unwrap()), 348);
        assert_eq!(i16::from_le_bytes(h[40..42].try_into().unwrap()), 3); // dim[0] = rank
        assert_eq!(i16::from_le_bytes(h[42..44].try_into().unwrap()), 2); // dim[1] = nx
        assert_eq!(f32::from_le_bytes(h[88..92].try_into().unwrap()), 2.0);
        assert_eq!(f32::from_le_bytes(h[292..296].try_into().unwrap()), -1.0);
        assert_eq!(&h[344..348], b"n+1\0");
    }

    #[test]
    fn wrong_data_length_is_an_error() {
        let data = vec![0u8; 3];
        let a = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let v = NiftiVolume {
            dims: [2, 2, 2],
            affine: a,
            datatype: NiftiDatatype::Uint8,
            data: &data,
            description: "",
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(write_nifti1_gz(&dir.path().join("x.nii.gz"), &v).is_err());
    }
}
