//! DICOM files (dicom-rs): the image attributes, the stored pixel values (every frame and sample, decoded from
//! any transfer syntax dicom-rs supports here: uncompressed little/big endian, deflate, RLE, JPEG baseline/extended/
//! lossless, JPEG 2000 via the pure-Rust `openjp2`), the modality LUT (rescale slope/intercept), the VOI window, and
//! the pixel geometry (spacing, orientation, position → RAS affine).
//!
//! Stored values are read from the decoded bytes ourselves rather than through dicom-rs' typed conversions, so
//! 1-bit (SEG) and 32-bit (RT dose) pixel data work too; values are in pydicom's `pixel_array` order (frames, rows,
//! columns, samples). JPEG-LS (needs CharLS and cmake) and other codecs not compiled in give an error naming the
//! transfer syntax.

use crate::{ImagingError, Result};
use dicom_dictionary_std::tags;
use dicom_object::{OpenFileOptions, Tag};
use dicom_pixeldata::PixelDecoder;
use std::path::Path;

/// Upper bound on samples in one file (frames × rows × columns × samples): 2^31, far above any real image.
const MAX_SAMPLES: u64 = 1 << 31;

/// A decoded DICOM image.
#[derive(Debug, Clone)]
pub struct DicomImage {
    pub rows: usize,
    pub columns: usize,
    pub frames: usize,
    pub samples_per_pixel: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    /// Transfer syntax UID and its name.
    pub transfer_syntax: String,
    pub transfer_syntax_name: String,
    pub modality: Option<String>,
    /// Modality LUT: stored value × slope + intercept.
    pub rescale: Option<(f64, f64)>,
    /// First VOI window (centre, width).
    pub window: Option<(f64, f64)>,
    /// PixelSpacing: (row spacing, column spacing) in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub image_position: Option<[f64; 3]>,
    pub image_orientation: Option<[f64; 6]>,
    pub series_uid: Option<String>,
    /// Stored values, frames × rows × columns × samples.
    pub values: Vec<f64>,
}

impl DicomImage {
    /// pydicom's `pixel_array` shape: singleton frames and samples dropped.
    pub fn shape(&self) -> Vec<usize> {
        let mut s = Vec::new();
        if self.frames > 1 {
            s.push(self.frames);
        }
        s.extend([self.rows, self.columns]);
        if self.samples_per_pixel > 1 {
            s.push(self.samples_per_pixel);
        }
        s
    }

    /// numpy-style dtype name of the stored values.
    pub fn dtype(&self) -> String {
        match (self.bits_allocated, self.signed) {
            (1, _) => "uint8".into(),
            (b, false) if b <= 8 && self.samples_per_pixel == 3 => "rgb8".into(),
            (b, s) => format!("{}int{}", if s { "" } else { "u" }, b.next_power_of_two().max(8)),
        }
    }

    /// Voxel (column, row, 0) → RAS mm, from ImageOrientationPatient / ImagePositionPatient / PixelSpacing (DICOM
    /// is LPS: x and y flip). `None` without the three.
    pub fn affine(&self) -> Option<[[f64; 4]; 4]> {
        let (o, p, s) = (self.image_orientation?, self.image_position?, self.pixel_spacing?);
        let row_dir = [o[0], o[1], o[2]]; // direction of increasing column index
        let col_dir = [o[3], o[4], o[5]]; // direction of increasing row index
        let normal = [
            row_dir[1] * col_dir[2] - row_dir[2] * col_dir[1],
            row_dir[2] * col_dir[0] - row_dir[0] * col_dir[2],
            row_dir[0] * col_dir[1] - row_dir[1] * col_dir[0],
        ];
        let dz = self.slice_thickness.unwrap_or(1.0);
        let flip = [-1.0, -1.0, 1.0];
        let mut a = [[0.0; 4]; 4];
        for r in 0..3 {
            a[r][0] = flip[r] * row_dir[r] * s[1];
            a[r][1] = flip[r] * col_dir[r] * s[0];
            a[r][2] = flip[r] * normal[r] * dz;
            a[r][3] = flip[r] * p[r];
        }
        a[3][3] = 1.0;
        Some(a)
    }
}

fn err(path: &Path, reason: impl std::fmt::Display) -> ImagingError {
    ImagingError::Decode {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads and decodes one DICOM file. A panic inside the DICOM libraries on a malformed file (mutation testing
/// found one in a codec) becomes an error for this file.
pub fn read_dicom(path: &Path) -> Result<DicomImage> {
    std::panic::catch_unwind(|| read_dicom_inner(path)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(err(path, format!("the DICOM decoder failed on malformed data ({msg})")))
    })
}

fn read_dicom_inner(path: &Path) -> Result<DicomImage> {
    let obj = OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| err(path, format!("not a readable DICOM file: {e}")))?;
    let ts = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let ts_name = dicom_transfer_syntax_name(&ts);
    let int = |tag: Tag| obj.element(tag).ok().and_then(|e| e.to_int::<i64>().ok());
    let floats = |tag: Tag| obj.element(tag).ok().and_then(|e| e.to_multi_float64().ok());
    let text = |tag: Tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let need = |tag: Tag, name: &str| int(tag).ok_or_else(|| err(path, format!("no {name}: not an image")));
    let rows = need(tags::ROWS, "Rows")?;
    let columns = need(tags::COLUMNS, "Columns")?;
    let bits_allocated = need(tags::BITS_ALLOCATED, "BitsAllocated")?;
    let samples = int(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let bits_stored = int(tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = int(tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    if rows <= 0 || columns <= 0 || samples <= 0 || !matches!(bits_allocated, 1 | 8 | 16 | 32) {
        return Err(ImagingError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("rows {rows}, columns {columns}, samples {samples}, bits allocated {bits_allocated}"),
        });
    }
    let n = rows as u64 * columns as u64 * frames as u64 * samples as u64;
    if n > MAX_SAMPLES {
        return Err(ImagingError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("{n} samples ({frames} frames of {rows}×{columns}×{samples}) is beyond the 2^31 limit"),
        });
    }
    let photometric = text(tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let decoded = obj.decode_pixel_data().map_err(|e| ImagingError::Unsupported {
        path: path.to_path_buf(),
        reason: format!("transfer syntax {ts} ({ts_name}): {e}"),
    })?;
    let n = n as usize;
    let mut bytes = decoded.data().to_vec();
    // Explicit VR Big Endian 32-bit data: dicom-rs swaps Pixel Data (OW) in 16-bit words, leaving the two halves of
    // each 32-bit value in big-endian order.
    if ts == "1.2.840.10008.1.2.2" && bits_allocated == 32 {
        for c in bytes.chunks_exact_mut(4) {
            c.swap(0, 2);
            c.swap(1, 3);
        }
    }
    // dicom-rs may hand 1-bit data over already unpacked to one byte per sample.
    let bits = if bits_allocated == 1 && bytes.len() >= n {
        8
    } else {
        bits_allocated as u16
    };
    let values = stored_values(&bytes, n, bits, bits_stored.min(bits as i64) as u16, signed).ok_or_else(|| {
        err(
            path,
            format!("pixel data holds {} bytes, fewer than {n} samples need", bytes.len()),
        )
    })?;
    let slope = floats(tags::RESCALE_SLOPE).and_then(|v| v.first().copied());
    let intercept = floats(tags::RESCALE_INTERCEPT).and_then(|v| v.first().copied());
    let rescale = match (slope, intercept) {
        (None, None) => None,
        (s, i) => Some((s.unwrap_or(1.0), i.unwrap_or(0.0))),
    };
    let window = match (floats(tags::WINDOW_CENTER), floats(tags::WINDOW_WIDTH)) {
        (Some(c), Some(w)) if !c.is_empty() && !w.is_empty() => Some((c[0], w[0])),
        _ => None,
    };
    let arr = |tag: Tag, k: usize| floats(tag).filter(|v| v.len() >= k);
    Ok(DicomImage {
        rows: rows as usize,
        columns: columns as usize,
        frames: frames as usize,
        samples_per_pixel: samples as usize,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored as u16,
        signed,
        photometric,
        transfer_syntax: ts,
        transfer_syntax_name: ts_name.to_string(),
        modality: text(tags::MODALITY),
        rescale,
        window,
        pixel_spacing: arr(tags::PIXEL_SPACING, 2).map(|v| [v[0], v[1]]),
        slice_thickness: floats(tags::SLICE_THICKNESS).and_then(|v| v.first().copied()),
        image_position: arr(tags::IMAGE_POSITION_PATIENT, 3).map(|v| [v[0], v[1], v[2]]),
        image_orientation: arr(tags::IMAGE_ORIENTATION_PATIENT, 6).map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]),
        series_uid: text(tags::SERIES_INSTANCE_UID),
        values,
    })
}

/// Stored sample values from decoded little-endian bytes: 1-bit data unpacked (LSB first, as DICOM packs it),
/// signed values sign-extended from `bits_stored`, unsigned values masked to `bits_stored` (as pydicom does).
fn stored_values(bytes: &[u8], n: usize, bits_allocated: u16, bits_stored: u16, signed: bool) -> Option<Vec<f64>> {
    let stored = bits_stored.clamp(1, bits_allocated.max(1)) as u32;
    let fix = |v: u64| -> f64 {
        let mask = if stored >= 64 { u64::MAX } else { (1u64 << stored) - 1 };
        let v = v & mask;
        if signed && stored < 64 && v >> (stored - 1) & 1 == 1 {
            (v as i64 - (1i64 << stored)) as f64
        } else {
            v as f64
        }
    };
    match bits_allocated {
        1 => {
            if bytes.len() * 8 < n {
                return None;
            }
            Some((0..n).map(|i| ((bytes[i / 8] >> (i % 8)) & 1) as f64).collect())
        }
        8 => bytes.get(..n).map(|b| b.iter().map(|&x| fix(x as u64)).collect()),
        16 => bytes.get(..2 * n).map(|b| {
            b.chunks_exact(2)
                .map(|c| fix(u16::from_le_bytes([c[0], c[1]]) as u64))
                .collect()
        }),
        32 => bytes.get(..4 * n).map(|b| {
            b.chunks_exact(4)
                .map(|c| fix(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64))
                .collect()
        }),
        _ => None,
    }
}

/// The name of a transfer syntax UID (for messages and `probe`).
pub fn dicom_transfer_syntax_name(uid: &str) -> &'static str {
    match uid {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (Process 1)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (Process 2 & 4)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless, Non-Hierarchical (Process 14)",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Lossy (Near-Lossless)",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 (Lossless Only)",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" => "HTJ2K (Lossless Only)",
        "1.2.840.10008.1.2.4.203" => "HTJ2K",
        _ => "unknown transfer syntax",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_unpack_bits_and_extend_signs() {
        // 1-bit: LSB first
        assert_eq!(stored_values(&[0b0000_0101], 3, 1, 1, false).unwrap(), [1.0, 0.0, 1.0]);
        // 12 stored bits in 16, signed: 0x0FFF is -1, 0x0800 is -2048, high bits ignored
        let b = [0xFF, 0x0F, 0x00, 0x08, 0x01, 0xF0];
        assert_eq!(stored_values(&b, 3, 16, 12, true).unwrap(), [-1.0, -2048.0, 1.0]);
        assert_eq!(stored_values(&b, 3, 16, 12, false).unwrap(), [4095.0, 2048.0, 1.0]);
        // 32-bit unsigned
        assert_eq!(
            stored_values(&[1, 0, 0, 0x80], 1, 32, 32, false).unwrap(),
            [2147483649.0]
        );
        // too few bytes
        assert!(stored_values(&[1, 2, 3], 2, 16, 16, false).is_none());
    }
}
