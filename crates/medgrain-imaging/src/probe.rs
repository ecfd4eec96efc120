//! `probe`: facts about an image or volume file as one JSON object (shape, dtype, raw and scaled statistics,
//! spacing, affine, orientation, ...), in the shape `shared/SPEC.md` gives. Format is detected by content.

use crate::nifti_read::{axcodes, read_nifti};
use crate::{decode_raster, ImagingError, PixelData, Result};
use serde_json::{json, Value};
use std::path::Path;

/// min / max / sum over the finite values; NaNs are counted apart.
fn stats(values: impl Iterator<Item = f64>) -> Value {
    let (mut min, mut max, mut sum, mut n, mut nan) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, 0u64, 0u64);
    for v in values {
        if v.is_nan() {
            nan += 1;
            continue;
        }
        min = min.min(v);
        max = max.max(v);
        sum += v;
        n += 1;
    }
    if n == 0 {
        return json!({"min": null, "max": null, "sum": null, "nan_count": nan});
    }
    json!({"min": min, "max": max, "sum": sum, "nan_count": nan})
}

fn is_nifti(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || (head.len() >= 348 && (&head[344..348] == b"n+1\0" || &head[344..348] == b"ni1\0"))
        || (head.len() >= 8 && (&head[4..8] == b"n+2\0" || &head[4..8] == b"ni2\0"))
}

/// Probes a path: a file gives one object; a folder gives one object per DICOM series in it (files grouped by
/// SeriesInstanceUID, slices ordered by position) followed by one error object per unreadable DICOM file.
pub fn probe_path(path: &Path) -> Vec<Result<Value>> {
    if !path.is_dir() {
        return vec![probe(path)];
    }
    let (volumes, errors) = match crate::dicom_series::read_series_dir(path) {
        Ok(x) => x,
        Err(e) => return vec![Err(e)],
    };
    if volumes.is_empty() && errors.is_empty() {
        return vec![Err(ImagingError::InvalidVolume {
            path: path.to_path_buf(),
            reason: "no DICOM files in this folder".into(),
        })];
    }
    let mut out: Vec<Result<Value>> = volumes
        .into_iter()
        .map(|v| {
            v.map(|v| {
                let st = stats(v.values.iter().copied());
                let orientation: Option<String> = axcodes(&v.affine).iter().copied().collect::<Option<String>>();
                json!({
                    "path": path.display().to_string(),
                    "format": "dicom-series",
                    "series_uid": v.series_uid,
                    "shape": v.shape,
                    "dtype": "float64",
                    "raw": st,
                    "scaled": st,
                    "spacing_mm": v.spacing,
                    "affine": v.affine,
                    "orientation": orientation,
                    "modality": v.modality,
                    "transfer_syntax": null,
                    "photometric": null,
                    "frames": v.shape[2],
                    "slice_positions_mm": v.positions,
                    "gaps": v.gaps.iter().map(|(i, d)| json!({"before_slice": i, "step_mm": d})).collect::<Vec<_>>(),
                    "irregular_spacing": v.irregular,
                    "files": v.files.iter().map(|f| f.strip_prefix(path).unwrap_or(f).display().to_string()).collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    out.extend(errors.into_iter().map(Err));
    out
}

/// SHA-256 of decoded values as little-endian float64 in array order (numpy:
/// `hashlib.sha256(a.astype("<f8").tobytes())`), so a transposed or flipped frame does not pass for the right one.
pub fn values_sha256(values: &[f64]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    format!("{:x}", h.finalize())
}

/// A float64 `.npy` file (NumPy format 1.0, C order) of `values` with `shape`.
pub fn npy_f64(values: &[f64], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Probes one file.
pub fn probe(path: &Path) -> Result<Value> {
    probe_inner(path, false).map(|(v, _)| v)
}

/// [`probe`], keeping a DICOM file's decoded stored values as a float64 `.npy` (see [`npy_f64`]), decoded once.
pub fn probe_keeping_values(path: &Path) -> Result<(Value, Option<Vec<u8>>)> {
    probe_inner(path, true)
}

fn probe_inner(path: &Path, keep_values: bool) -> Result<(Value, Option<Vec<u8>>)> {
    let io = |source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The DICOM magic sits at byte 128; dicom-rs reads the file itself, so only the head is read here for it.
    let mut head = Vec::with_capacity(132);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, 132),
        &mut head,
    )
    .map_err(io)?;
    if head.len() == 132 && &head[128..132] == b"DICM" {
        let d = crate::dicom::read_dicom(path)?;
        let raw = stats(d.values.iter().copied());
        let raw_sha256 = values_sha256(&d.values);
        let scaled = match d.rescale {
            Some((s, i)) => stats(d.values.iter().map(|v| v * s + i)),
            None => raw.clone(),
        };
        let affine = d.affine();
        let orientation: Option<String> = affine.and_then(|a| axcodes(&a).iter().copied().collect::<Option<String>>());
        let npy = keep_values.then(|| npy_f64(&d.values, &d.shape()));
        let v = json!({
            "path": path.display().to_string(),
            "format": "dicom",
            "shape": d.shape(),
            "dtype": d.dtype(),
            "raw": raw,
            "raw_sha256": raw_sha256,
            "scaled": scaled,
            "spacing_mm": d.pixel_spacing,
            "affine": affine,
            "orientation": orientation,
            "modality": d.modality,
            "transfer_syntax": d.transfer_syntax,
            "transfer_syntax_name": d.transfer_syntax_name,
            "photometric": d.photometric,
            "frames": d.frames,
            "bits_allocated": d.bits_allocated,
            "bits_stored": d.bits_stored,
            "rescale": d.rescale.map(|(s, i)| json!({"slope": s, "intercept": i})),
            "window": d.window.map(|(c, w)| json!({"center": c, "width": w})),
        });
        return Ok((v, npy));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if is_nifti(&bytes) {
        let img = read_nifti(path)?;
        let h = &img.header;
        let raw = stats(img.voxels.values());
        let scaled = match h.scaling() {
            Some((s, i)) => stats(img.voxels.values().map(|v| v * s + i)),
            None => raw.clone(),
        };
        let affine = h.best_affine();
        let codes = axcodes(&affine);
        let orientation: Option<String> = codes.iter().copied().collect::<Option<String>>();
        let mut shape = h.shape.clone();
        if img.voxels.dtype() == "rgb8" {
            shape.push(3);
        }
        return Ok((
            json!({
                "path": path.display().to_string(),
                "format": "nifti",
                "nifti_version": h.version,
                "shape": shape,
                "dtype": img.voxels.dtype(),
                "raw": raw,
                "scaled": scaled,
                "spacing_mm": h.zooms(),
                "affine": affine,
                "orientation": orientation,
                "modality": null,
                "transfer_syntax": null,
                "photometric": null,
                "frames": if h.shape.len() >= 4 { h.shape[3] } else { 1 },
            }),
            None,
        ));
    }
    let r = decode_raster(&bytes, path)?;
    let (dtype, raw) = match &r.data {
        PixelData::U8(v) => ("uint8", stats(v.iter().map(|&x| x as f64))),
        PixelData::U16(v) => ("uint16", stats(v.iter().map(|&x| x as f64))),
        PixelData::F32(v) => ("float32", stats(v.iter().map(|&x| x as f64))),
    };
    let mut shape = vec![r.height as usize, r.width as usize];
    if r.channels > 1 {
        shape.push(r.channels as usize);
    }
    let photometric = match r.channels {
        1 => "grey",
        2 => "grey+alpha",
        3 => "rgb",
        _ => "rgba",
    };
    Ok((
        json!({
            "path": path.display().to_string(),
            "format": r.format,
            "shape": shape,
            "dtype": dtype,
            "raw": raw,
            "scaled": raw,
            "spacing_mm": null,
            "affine": null,
            "orientation": null,
            "modality": null,
            "transfer_syntax": null,
            "photometric": photometric,
            "frames": 1,
        }),
        None,
    ))
}
