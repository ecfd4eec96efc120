//! DICOM files (dicom-rs): the image attributes, the stored pixel values (every frame and sample, decoded from
//! any transfer syntax dicom-rs supports here: uncompressed little/big endian, deflate, RLE, JPEG baseline/extended/
//! lossless, JPEG 2000 via the pure-Rust `openjp2`), the modality LUT (rescale slope/intercept), the VOI window, and
//! the pixel geometry (spacing, orientation, position → RAS affine).
//!
//! Stored values are read from the decoded bytes ourselves rather than through dicom-rs' typed conversions, so
//! 1-bit (SEG) and 32-bit (RT dose) pixel data work too; values are in pydicom's `pixel_array` order (frames, rows,
//! columns, samples). RLE Lossless is decoded here (any bit depth, 32-bit included); native YBR_FULL_422 is
//! upsampled, and YCbCr stored natively or in RLE is converted to RGB exactly as pydicom's `pixel_array` does
//! (JPEG decoders already return RGB). JPEG-LS comes from CharLS (dicom-rs `charls`, built with cmake). Codecs not
//! compiled in give an error naming the transfer syntax. DCT JPEG (baseline and extended, 8- and 12-bit) goes
//! through libjpeg-turbo ([`crate::jpeg`]). [`DicomImage::render_frame`] makes the
//! 8-bit display image: modality LUT, VOI window, MONOCHROME1 inversion.

use crate::render::dicom_voi_linear;
use crate::{ImagingError, PixelData, Raster, Result};
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{OpenFileOptions, Tag};
use dicom_pixeldata::PixelDecoder;
use std::path::Path;

/// Upper bound on samples in one file (frames × rows × columns × samples): 2^31, far above any real image.
const MAX_SAMPLES: u64 = 1 << 31;

/// Header attributes kept beside the pixels ([`DicomImage::header`]): identity (for splits and pseudonyms), what
/// decides whether pixels may hold burned-in text, and what a header says about the study (for captions).
pub const HEADER_TAGS: [(u16, u16); 12] = [
    (0x0010, 0x0020), // PatientID
    (0x0020, 0x000D), // StudyInstanceUID
    (0x0008, 0x0016), // SOPClassUID
    (0x0008, 0x0060), // Modality
    (0x0028, 0x0301), // BurnedInAnnotation
    (0x0018, 0x0015), // BodyPartExamined
    (0x0008, 0x1030), // StudyDescription
    (0x0008, 0x103E), // SeriesDescription
    (0x0018, 0x1030), // ProtocolName
    (0x0018, 0x0010), // ContrastBolusAgent
    (0x0010, 0x1010), // PatientAge
    (0x0010, 0x0040), // PatientSex
];

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
    /// PatientID and StudyInstanceUID (for splits by patient or study).
    pub patient_id: Option<String>,
    pub study_uid: Option<String>,
    /// The header attributes of [`HEADER_TAGS`] the file has, as text: what captions, splits and
    /// de-identification read beyond geometry.
    pub header: Vec<((u16, u16), String)>,
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
        Some(ras_affine(o, s, self.slice_thickness.unwrap_or(1.0), p))
    }
}

/// The slice normal (LPS) of an ImageOrientationPatient: row direction × column direction.
pub(crate) fn slice_normal(o: [f64; 6]) -> [f64; 3] {
    let (row_dir, col_dir) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    [
        row_dir[1] * col_dir[2] - row_dir[2] * col_dir[1],
        row_dir[2] * col_dir[0] - row_dir[0] * col_dir[2],
        row_dir[0] * col_dir[1] - row_dir[1] * col_dir[0],
    ]
}

/// Voxel (column, row, slice) → RAS mm from ImageOrientationPatient `o` (row direction = increasing column index,
/// column direction = increasing row index), PixelSpacing `(row spacing, column spacing)`, the step between slices
/// along the normal and the first slice's ImagePositionPatient. DICOM is LPS: x and y flip.
pub(crate) fn ras_affine(o: [f64; 6], pixel_spacing: [f64; 2], step: f64, origin: [f64; 3]) -> [[f64; 4]; 4] {
    let (row_dir, col_dir, normal) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]], slice_normal(o));
    let flip = [-1.0, -1.0, 1.0];
    let mut a = [[0.0; 4]; 4];
    for r in 0..3 {
        a[r][0] = flip[r] * row_dir[r] * pixel_spacing[1];
        a[r][1] = flip[r] * col_dir[r] * pixel_spacing[0];
        a[r][2] = flip[r] * normal[r] * step;
        a[r][3] = flip[r] * origin[r];
    }
    a[3][3] = 1.0;
    a
}

impl DicomImage {
    /// Modality-LUT output (HU for CT) of one grey frame, rows × columns.
    pub fn scaled_frame(&self, frame: usize) -> Option<Vec<f64>> {
        let n = self.rows * self.columns * self.samples_per_pixel;
        let raw = self.values.get(frame * n..(frame + 1) * n)?;
        let (slope, intercept) = self.rescale.unwrap_or((1.0, 0.0));
        Some(raw.iter().map(|v| v * slope + intercept).collect())
    }

    /// One frame for display, 8-bit: grey frames go through the modality LUT and then DICOM's linear VOI window —
    /// `window` if given, else the file's first WindowCenter/Width, else the frame's full range — and MONOCHROME1
    /// is inverted (its low values are white). Colour frames (RGB; YCbCr already converted on read) are scaled
    /// from their stored bit depth to 8 bits.
    pub fn render_frame(&self, frame: usize, window: Option<(f64, f64)>) -> std::result::Result<Raster, String> {
        if frame >= self.frames {
            return Err(format!("frame {frame} is outside 0..{}", self.frames));
        }
        let values = self
            .scaled_frame(frame)
            .ok_or("pixel data is shorter than its frames")?;
        let (width, height) = (self.columns as u32, self.rows as u32);
        if self.samples_per_pixel == 3 {
            let max = ((1u64 << self.bits_stored.clamp(1, 32)) - 1) as f64;
            let data = values
                .iter()
                .map(|&v| (v / max * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect();
            return Ok(Raster {
                width,
                height,
                channels: 3,
                data: PixelData::U8(data),
                format: "dicom",
            });
        }
        if self.samples_per_pixel != 1 {
            return Err(format!(
                "{} samples per pixel cannot be displayed",
                self.samples_per_pixel
            ));
        }
        let (centre, width_w) = window.or(self.window).unwrap_or_else(|| {
            let (lo, hi) = values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            if lo.is_finite() {
                ((lo + hi + 1.0) / 2.0, (hi - lo + 1.0).max(1.0))
            } else {
                (0.5, 1.0)
            }
        });
        let invert = self.photometric == "MONOCHROME1";
        let data = values
            .iter()
            .map(|&v| {
                let g = dicom_voi_linear(v, centre, width_w);
                if invert {
                    255 - g
                } else {
                    g
                }
            })
            .collect();
        Ok(Raster {
            width,
            height,
            channels: 1,
            data: PixelData::U8(data),
            format: "dicom",
        })
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
    let bytes = std::fs::read(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    check_element_lengths(&bytes).map_err(|e| err(path, e))?;
    let obj = open_checked(path, &bytes).map_err(|e| err(path, e))?;
    let ts = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let ts_name = dicom_transfer_syntax_name(&ts);
    // Some writers store known attributes with VR UN (pydicom's rtdose_rle.dcm does); pydicom reads them by the
    // dictionary's VR. Their value is then the characters as bytes, which must be read as text, not as numbers.
    let element_text = |tag: Tag| -> Option<String> {
        let e = obj.element(tag).ok()?;
        if e.vr() == VR::UN {
            let b = e.to_bytes().ok()?;
            Some(String::from_utf8_lossy(&b).into_owned())
        } else {
            e.to_str().ok().map(|s| s.into_owned())
        }
    };
    // Decimal and integer strings are parsed from their text; binary floats converted directly.
    let floats = |tag: Tag| {
        let e = obj.element(tag).ok()?;
        if matches!(e.vr(), VR::DS | VR::IS | VR::UN) {
            let v: Option<Vec<f64>> = element_text(tag)?
                .trim_end_matches(['\0', ' '])
                .split('\\')
                .map(|x| x.trim().parse::<f64>().ok())
                .collect();
            return v.filter(|v| !v.is_empty());
        }
        e.to_multi_float64().ok()
    };
    let int = |tag: Tag| {
        let e = obj.element(tag).ok()?;
        match e.vr() {
            VR::IS => floats(tag)?.first().map(|v| *v as i64),
            // UN: an integer string, or a binary US/UL (little endian in every UN-capable transfer syntax)
            VR::UN => floats(tag).and_then(|v| v.first().map(|x| *x as i64)).or_else(|| {
                let b = e.to_bytes().ok()?;
                match b.len() {
                    2 => Some(u16::from_le_bytes([b[0], b[1]]) as i64),
                    4 => Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
                    _ => None,
                }
            }),
            _ => e.to_int::<i64>().ok(),
        }
    };
    let text = |tag: Tag| {
        element_text(tag)
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
    let n = n as usize;
    let unsupported = |e: String| ImagingError::Unsupported {
        path: path.to_path_buf(),
        reason: format!("transfer syntax {ts} ({ts_name}): {e}"),
    };
    let pixel_element = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| err(path, "no Pixel Data: not an image"))?;
    let mut bytes = if ts == RLE_LOSSLESS {
        // Our own RLE decoder: dicom-rs' rejects 32 bits allocated (RT dose, 32-bit RGB).
        let fragments = pixel_element
            .value()
            .fragments()
            .ok_or_else(|| unsupported("RLE pixel data is not encapsulated".into()))?;
        let geometry = RleGeometry {
            rows: rows as usize,
            columns: columns as usize,
            samples: samples as usize,
            bytes_per_sample: (bits_allocated as usize).div_ceil(8),
        };
        decode_rle_frames(fragments, frames as usize, &geometry).map_err(unsupported)?
    } else if photometric == "YBR_FULL_422" && NATIVE.contains(&ts.as_str()) && samples == 3 && bits_allocated == 8 {
        // Native YBR_FULL_422 stores two luma samples per shared chroma pair: Y0 Y1 Cb Cr.
        let raw = pixel_element
            .to_bytes()
            .map_err(|e| unsupported(format!("pixel data: {e}")))?;
        upsample_ybr_422(&raw, frames as usize, rows as usize, columns as usize).map_err(unsupported)?
    } else if ts == JPEG_BASELINE || ts == JPEG_EXTENDED {
        // libjpeg-turbo: 8- and 12-bit DCT JPEG (dicom-rs' decoder has no 12-bit path).
        let fragments = pixel_element
            .value()
            .fragments()
            .ok_or_else(|| unsupported("JPEG pixel data is not encapsulated".into()))?;
        let streams = crate::jpeg::frames_of(fragments, frames as usize).map_err(unsupported)?;
        let mut out = Vec::with_capacity(n * (bits_allocated as usize).div_ceil(8));
        for (k, s) in streams.iter().enumerate() {
            let frame = crate::jpeg::decode_frame(
                s,
                rows as usize,
                columns as usize,
                samples as usize,
                photometric == "RGB",
            )
            .map_err(|e| unsupported(format!("frame {k}: {e}")))?;
            match (frame, bits_allocated) {
                (crate::jpeg::JpegFrame::U8(v), 8) => out.extend_from_slice(&v),
                (crate::jpeg::JpegFrame::U8(v), 16) => v
                    .iter()
                    .for_each(|&x| out.extend_from_slice(&u16::from(x).to_le_bytes())),
                (crate::jpeg::JpegFrame::U16(v), 16) => v.iter().for_each(|&x| out.extend_from_slice(&x.to_le_bytes())),
                (_, b) => return Err(unsupported(format!("a JPEG of this precision in {b} bits allocated"))),
            }
        }
        out
    } else {
        obj.decode_pixel_data()
            .map_err(|e| unsupported(e.to_string()))?
            .data()
            .to_vec()
    };
    // Colour-by-plane (PlanarConfiguration 1) stored as is: every frame's planes interleaved per pixel, the order
    // pydicom's `pixel_array` gives (codecs already return interleaved samples).
    let planar = int(tags::PLANAR_CONFIGURATION).unwrap_or(0) == 1;
    if planar && samples > 1 && NATIVE.contains(&ts.as_str()) {
        bytes = planes_to_interleaved(
            &bytes,
            frames as usize,
            (rows * columns) as usize,
            samples as usize,
            (bits_allocated as usize).div_ceil(8),
        );
    }
    // YCbCr stored as is (native or RLE) is turned into RGB, as pydicom's `pixel_array` does; JPEG decoders have
    // already done this for JPEG-coded YCbCr.
    if (ts == RLE_LOSSLESS || NATIVE.contains(&ts.as_str()))
        && matches!(photometric.as_str(), "YBR_FULL" | "YBR_FULL_422")
        && samples == 3
        && bits_allocated == 8
    {
        ybr_full_to_rgb(&mut bytes);
    }
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
        patient_id: text(tags::PATIENT_ID),
        study_uid: text(tags::STUDY_INSTANCE_UID),
        header: HEADER_TAGS
            .iter()
            .filter_map(|&(g, e)| text(Tag(g, e)).map(|v| ((g, e), v)))
            .collect(),
        values,
    })
}

/// Where the file meta group ends and the transfer syntax it names.
fn file_meta(bytes: &[u8]) -> std::result::Result<(usize, String), String> {
    let end = bytes.len();
    let u16_at = |p: usize| -> Option<u16> { bytes.get(p..p + 2).map(|b| u16::from_le_bytes([b[0], b[1]])) };
    let u32_at = |p: usize| -> Option<u32> {
        bytes
            .get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // File meta group: explicit VR little endian; find the transfer syntax and where the group ends.
    let mut pos = 132;
    let mut ts = String::new();
    while pos + 8 <= end && u16_at(pos) == Some(0x0002) {
        let elem = u16_at(pos + 2).unwrap_or(0);
        let vr = &bytes[pos + 4..pos + 6];
        let (len, header) = if !short_length_vr(vr) {
            (u32_at(pos + 8).ok_or("truncated file meta")? as usize, 12)
        } else {
            (u16_at(pos + 6).unwrap_or(0) as usize, 8)
        };
        let start = pos + header;
        if len > end.saturating_sub(start) {
            return Err(format!(
                "file meta element (0002,{elem:04X}) claims {len} bytes, {} remain",
                end.saturating_sub(start)
            ));
        }
        if elem == 0x0010 {
            ts = String::from_utf8_lossy(&bytes[start..start + len])
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        pos = start + len;
    }
    Ok((pos, ts))
}

/// Whether the data set's first element, in a file whose meta says explicit VR little endian, has no VR where one
/// should be (two upper-case letters): the writer used implicit VR (pydicom detects this the same way and reads
/// on, with a warning).
fn looks_implicit(bytes: &[u8], pos: usize) -> bool {
    match bytes.get(pos..pos + 6) {
        Some(b) => !(b[4].is_ascii_uppercase() && b[5].is_ascii_uppercase()),
        None => false,
    }
}

/// A transfer-syntax index that answers every UID with the registry's transfer syntax for it, but with implicit VR.
struct ImplicitVrIndex(Option<&'static dicom_encoding::TransferSyntax>);

impl ImplicitVrIndex {
    fn for_uid(uid: &str) -> Self {
        use dicom_encoding::TransferSyntaxIndex;
        static MADE: std::sync::Mutex<Vec<&'static dicom_encoding::TransferSyntax>> = std::sync::Mutex::new(Vec::new());
        let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = made.iter().find(|t| t.uid() == uid) {
            return ImplicitVrIndex(Some(t));
        }
        let Some(real) = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(uid) else {
            return ImplicitVrIndex(None);
        };
        let codec = match real.codec() {
            dicom_encoding::Codec::None => dicom_encoding::Codec::None,
            _ => dicom_encoding::Codec::EncapsulatedPixelData(None, None),
        };
        // One leaked descriptor per distinct UID, ever (a handful at most).
        let uid: &'static str = Box::leak(uid.to_string().into_boxed_str());
        let ts: &'static dicom_encoding::TransferSyntax = Box::leak(Box::new(
            dicom_encoding::AdapterFreeTransferSyntax::new(
                uid,
                real.name(),
                dicom_encoding::Endianness::Little,
                false,
                codec,
            )
            .erased(),
        ));
        made.push(ts);
        ImplicitVrIndex(Some(ts))
    }
}

impl dicom_encoding::TransferSyntaxIndex for ImplicitVrIndex {
    fn get(&self, uid: &str) -> Option<&dicom_encoding::TransferSyntax> {
        self.0.filter(|t| t.uid() == uid.trim_end_matches(['\0', ' ']))
    }
}

/// Opens a DICOM file's object model as every medgrain reader does: the length pre-check
/// ([`check_element_lengths`]), a data set written in implicit VR under an explicit-VR transfer syntax read as
/// implicit VR (as pydicom does), and a parser panic on malformed data turned into an error.
pub fn open_object(
    path: &Path,
) -> std::result::Result<dicom_object::FileDicomObject<dicom_object::InMemDicomObject>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    check_element_lengths(&bytes)?;
    std::panic::catch_unwind(|| open_checked(path, &bytes))
        .map_err(|_| "the DICOM parser failed on malformed data".to_string())?
}

/// Parses the bytes of a file that passed [`check_element_lengths`]: a data set written in implicit VR under an
/// explicit-VR transfer syntax is read as implicit VR with that transfer syntax's pixel encoding (pydicom reads such
/// files the same way, with a warning).
fn open_checked(
    path: &Path,
    bytes: &[u8],
) -> std::result::Result<dicom_object::FileDicomObject<dicom_object::InMemDicomObject>, String> {
    // the bytes after the 128-byte preamble (check_element_lengths found "DICM" there)
    let body = &bytes[128..];
    match implicit_despite_meta(bytes) {
        Some(ts) => {
            tracing::warn!(path = %path.display(), transfer_syntax = %ts, "data set written in implicit VR under an explicit-VR transfer syntax; read as implicit VR");
            OpenFileOptions::new()
                .read_preamble(dicom_object::file::ReadPreamble::Never)
                .transfer_syntax_index(ImplicitVrIndex::for_uid(&ts))
                .from_reader(body)
        }
        None => OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Never)
            .from_reader(body),
    }
    .map_err(|e| format!("not a readable DICOM file: {e}"))
}

/// Whether a DICOM file's data set is implicit VR under an explicit-VR little-endian transfer syntax.
pub(crate) fn implicit_despite_meta(bytes: &[u8]) -> Option<String> {
    let (pos, ts) = file_meta(bytes).ok()?;
    let explicit_le = !matches!(
        ts.as_str(),
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99"
    );
    (explicit_le && looks_implicit(bytes, pos)).then_some(ts)
}

/// Whether an explicit VR has a 2-byte length field. Like dicom-rs, any other code — including an unknown one, read
/// as UN — has 2 reserved bytes and a 4-byte length.
fn short_length_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Walks the element headers of a Part 10 file and checks that no defined value length runs past the end of the
/// file. dicom-rs allocates a value's claimed length before reading it, so a corrupted length (up to 4 GiB) in a
/// short file would otherwise cost that much memory before the read fails; with this check every allocation is
/// bounded by the file's size. Undefined lengths (sequences, items, encapsulated pixel data) are walked into;
/// deflated data sets are not walked (their bytes are compressed).
pub fn check_element_lengths(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err("no DICM magic after the 128-byte preamble".into());
    }
    let end = bytes.len();
    let u16_at = |p: usize, le: bool| -> Option<u16> {
        let b = bytes.get(p..p + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |p: usize, le: bool| -> Option<u32> {
        let b = bytes.get(p..p + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let (mut pos, ts) = file_meta(bytes)?;
    let (mut explicit, le) = match ts.as_str() {
        "1.2.840.10008.1.2" => (false, true),
        "1.2.840.10008.1.2.2" => (true, false),
        "1.2.840.10008.1.2.1.99" => return Ok(()),
        _ => (true, true),
    };
    if explicit && le && looks_implicit(bytes, pos) {
        explicit = false;
    }
    while pos + 8 <= end {
        let group = u16_at(pos, le).unwrap_or(0);
        let elem = u16_at(pos + 2, le).unwrap_or(0);
        // Items and delimiters (FFFE,xxxx) have no VR in any transfer syntax.
        let (len, header) = if group == 0xFFFE || !explicit {
            (u32_at(pos + 4, le).unwrap_or(0), 8)
        } else {
            let vr = [bytes[pos + 4], bytes[pos + 5]];
            if !short_length_vr(&vr) {
                (u32_at(pos + 8, le).ok_or("truncated element header")?, 12)
            } else {
                (u16_at(pos + 6, le).unwrap_or(0) as u32, 8)
            }
        };
        let start = pos + header;
        if len == u32::MAX || (group == 0xFFFE && elem != 0xE000) {
            pos = start; // undefined length: walk into it; delimiters have no value
            continue;
        }
        let len = len as usize;
        if len > end.saturating_sub(start) {
            return Err(format!(
                "element ({group:04X},{elem:04X}) at byte {pos} claims {len} bytes, but only {} remain",
                end.saturating_sub(start)
            ));
        }
        pos = start + len;
    }
    Ok(())
}

/// Reorders colour-by-plane samples (R…R G…G B…B per frame) to interleaved (RGB RGB …). Bytes past the last whole
/// frame are kept as they are.
fn planes_to_interleaved(bytes: &[u8], frames: usize, pixels: usize, samples: usize, sample_bytes: usize) -> Vec<u8> {
    let frame_len = pixels * samples * sample_bytes;
    let mut out = bytes.to_vec();
    for f in 0..frames {
        let base = f * frame_len;
        if base + frame_len > bytes.len() {
            break;
        }
        for s in 0..samples {
            for p in 0..pixels {
                let from = base + (s * pixels + p) * sample_bytes;
                let to = base + (p * samples + s) * sample_bytes;
                out[to..to + sample_bytes].copy_from_slice(&bytes[from..from + sample_bytes]);
            }
        }
    }
    out
}

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// Uncompressed transfer syntaxes (pixel data stored as is).
const NATIVE: [&str; 4] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
];

/// What one RLE frame decodes to.
struct RleGeometry {
    rows: usize,
    columns: usize,
    samples: usize,
    bytes_per_sample: usize,
}

/// Decodes RLE Lossless pixel data (DICOM PS3.5 annex G) into little-endian, pixel-interleaved bytes, every frame in
/// order. Each frame is one fragment (G.2); a frame holds `samples × bytes_per_sample` PackBits segments, for each
/// sample its most significant byte plane first.
fn decode_rle_frames(fragments: &[Vec<u8>], frames: usize, g: &RleGeometry) -> std::result::Result<Vec<u8>, String> {
    if fragments.len() < frames {
        return Err(format!("{} RLE fragments for {frames} frames", fragments.len()));
    }
    let pixels = g.rows * g.columns;
    let bps = g.bytes_per_sample;
    let frame_len = pixels * g.samples * bps;
    let mut out = vec![0u8; frame_len * frames];
    let mut plane = Vec::with_capacity(pixels);
    for (f, frag) in fragments.iter().take(frames).enumerate() {
        if frag.len() < 64 {
            return Err(format!(
                "RLE frame {f}: {} bytes, shorter than the 64-byte header",
                frag.len()
            ));
        }
        let word =
            |i: usize| u32::from_le_bytes([frag[4 * i], frag[4 * i + 1], frag[4 * i + 2], frag[4 * i + 3]]) as usize;
        let segments = word(0);
        // the header holds 15 segment offsets (PS3.5 G.5): more segments cannot be addressed
        if segments > 15 || segments != g.samples * bps {
            return Err(format!(
                "RLE frame {f}: {segments} segments, expected {}",
                g.samples * bps
            ));
        }
        let frame_out = &mut out[f * frame_len..(f + 1) * frame_len];
        for seg in 0..segments {
            let start = word(seg + 1);
            let end = if seg + 1 < segments { word(seg + 2) } else { frag.len() };
            let data = frag
                .get(start..end.min(frag.len()))
                .filter(|_| start >= 64 && start <= end)
                .ok_or_else(|| format!("RLE frame {f}: segment {seg} offsets {start}..{end} out of range"))?;
            unpack_bits(data, pixels, &mut plane).map_err(|e| format!("RLE frame {f} segment {seg}: {e}"))?;
            let (sample, byte_from_msb) = (seg / bps, seg % bps);
            let byte_in_le = bps - 1 - byte_from_msb;
            for (i, &v) in plane.iter().enumerate() {
                frame_out[(i * g.samples + sample) * bps + byte_in_le] = v;
            }
        }
    }
    Ok(out)
}

/// PackBits (the RLE segment coding): a header byte n ≥ 0 copies n + 1 literal bytes, n in −127..−1 repeats the
/// next byte 1 − n times, −128 is a no-op. Exactly `len` bytes are expected; extra output (a pad byte) is dropped.
fn unpack_bits(data: &[u8], len: usize, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    out.clear();
    let mut i = 0;
    while out.len() < len && i < data.len() {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            let k = n as usize + 1;
            let lit = data.get(i..i + k).ok_or("literal run past the end of the segment")?;
            out.extend_from_slice(lit);
            i += k;
        } else if n != -128 {
            let b = *data.get(i).ok_or("repeat run past the end of the segment")?;
            out.extend(std::iter::repeat_n(b, 1 + (-(n as i16)) as usize));
            i += 1;
        }
    }
    if out.len() < len {
        return Err(format!("decoded {} bytes, expected {len}", out.len()));
    }
    out.truncate(len);
    Ok(())
}

/// Native YBR_FULL_422 (8-bit): each pair of pixels is stored as Y0 Y1 Cb Cr; the chroma pair is repeated for both
/// pixels, giving full-resolution YCbCr samples (as pydicom's raw decoding does).
fn upsample_ybr_422(raw: &[u8], frames: usize, rows: usize, columns: usize) -> std::result::Result<Vec<u8>, String> {
    let stored_row = columns.div_ceil(2) * 4;
    let need = frames * rows * stored_row;
    if raw.len() < need {
        return Err(format!(
            "YBR_FULL_422 pixel data holds {} bytes, {need} needed",
            raw.len()
        ));
    }
    let mut out = Vec::with_capacity(frames * rows * columns * 3);
    for r in 0..frames * rows {
        let row = &raw[r * stored_row..(r + 1) * stored_row];
        for c in 0..columns {
            let q = &row[(c / 2) * 4..(c / 2) * 4 + 4];
            out.extend_from_slice(&[q[c % 2], q[2], q[3]]);
        }
    }
    Ok(out)
}

/// YBR_FULL → RGB for 8-bit samples (PS3.3 C.7.6.3.1.2), in pydicom's arithmetic: f32 products, +0.5, floor,
/// clipped to 0..255, so the result equals pydicom's `convert_color_space`.
fn ybr_full_to_rgb(bytes: &mut [u8]) {
    let (cb_g, cr_g) = ((-0.114f64 * 1.772 / 0.587) as f32, (-0.299f64 * 1.402 / 0.587) as f32);
    for px in bytes.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0] as f32, px[1] as f32 - 128.0, px[2] as f32 - 128.0);
        let rgb = [
            y + cb * 0.0 + cr * 1.402f32,
            y + cb * cb_g + cr * cr_g,
            y + cb * 1.772f32 + cr * 0.0,
        ];
        for (o, v) in px.iter_mut().zip(rgb) {
            *o = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
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

/// Whether bytes start like a DICOM Part 10 file (128-byte preamble, then `DICM`).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM".as_slice())
}

/// The modality name records use for a DICOM Modality code (CT, MR → MRI, CR/DX/MG/RG → X-ray, US, PT, …).
pub fn modality_name(code: &str) -> Option<&'static str> {
    Some(match code.trim() {
        "CT" => "CT",
        "MR" => "MRI",
        "CR" | "DX" | "DR" | "MG" | "RG" | "RF" | "XA" | "IO" | "PX" => "X-ray",
        "US" | "IVUS" => "ultrasound",
        "PT" => "PET",
        "OCT" | "OPT" => "OCT",
        "ES" => "endoscopy",
        "SM" => "histopathology",
        _ => return None,
    })
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
    fn colour_planes_are_interleaved() {
        // 2 pixels, RGB, one byte per sample: R0 R1 G0 G1 B0 B1 → R0 G0 B0 R1 G1 B1
        assert_eq!(
            planes_to_interleaved(&[1, 2, 3, 4, 5, 6], 1, 2, 3, 1),
            vec![1, 3, 5, 2, 4, 6]
        );
        // two bytes per sample, a trailing pad byte kept
        let b = [1, 0, 2, 0, 3, 0, 4, 0, 9];
        assert_eq!(planes_to_interleaved(&b, 1, 2, 2, 2), vec![1, 0, 3, 0, 2, 0, 4, 0, 9]);
    }

    #[test]
    fn packbits_matches_the_published_example() {
        // Apple's PackBits technical note example.
        let data = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7, 0xAA,
        ];
        let mut want = vec![
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
        ];
        want.extend([0xAA; 10]);
        let mut out = Vec::new();
        unpack_bits(&data, want.len(), &mut out).unwrap();
        assert_eq!(out, want);
        assert!(unpack_bits(&data, want.len() + 1, &mut out).is_err());
        assert!(unpack_bits(&[0x05, 1, 2], 6, &mut out).is_err()); // literal run past the end
    }

    #[test]
    fn rle_frame_of_16_bit_samples_is_msb_plane_first() {
        // 1×2 pixels, 16-bit, one sample: segment 1 = high bytes (0x01, 0x02), segment 2 = low bytes (0x10, 0x20).
        let mut frag = vec![0u8; 64];
        frag[0] = 2;
        frag[4] = 64;
        frag[8] = 67;
        frag.extend([0x01, 0x01, 0x02, 0x01, 0x10, 0x20]);
        let g = RleGeometry {
            rows: 1,
            columns: 2,
            samples: 1,
            bytes_per_sample: 2,
        };
        let out = decode_rle_frames(&[frag.clone()], 1, &g).unwrap();
        assert_eq!(out, [0x10, 0x01, 0x20, 0x02]); // little endian 0x0110, 0x0220
        assert!(decode_rle_frames(&[frag.clone()], 2, &g).is_err()); // a frame short
                                                                     // 20 segments (5 samples × 4 bytes) cannot be addressed by a 15-offset header: an error, not a panic
        let mut many = vec![0u8; 64];
        many[0] = 20;
        let g20 = RleGeometry {
            rows: 1,
            columns: 1,
            samples: 5,
            bytes_per_sample: 4,
        };
        assert!(decode_rle_frames(&[many], 1, &g20).is_err());
    }

    #[test]
    fn ybr_full_grey_and_primaries() {
        // Y with neutral chroma is grey; Cr = 255 pushes red up by 1.402 × 127 = 178.05.
        let mut px = [100, 128, 128, 50, 128, 255];
        ybr_full_to_rgb(&mut px);
        assert_eq!(&px[..3], &[100, 100, 100]);
        assert_eq!(px[3], 228); // floor(50 + 178.054 + 0.5)
                                // YBR_FULL_422 upsampling: Y0 Y1 Cb Cr shared by both pixels
        assert_eq!(
            upsample_ybr_422(&[10, 20, 30, 40], 1, 1, 2).unwrap(),
            [10, 30, 40, 20, 30, 40]
        );
    }

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
