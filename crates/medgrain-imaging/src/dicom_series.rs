//! DICOM series → volume: files grouped by SeriesInstanceUID, slices ordered along the slice normal by
//! ImagePositionPatient (never by file name or InstanceNumber), slice spacing from the positions (gaps and irregular
//! spacing reported), and the RAS affine from ImageOrientationPatient / ImagePositionPatient / PixelSpacing.
//! Values are the modality-LUT output per slice (slices may carry different rescale parameters).
//! Volume index order is NIfTI's: (column, row, slice), column fastest.

use crate::dicom::{read_dicom, DicomImage};
use crate::{ImagingError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A series read into a volume.
#[derive(Debug, Clone)]
pub struct SeriesVolume {
    pub series_uid: String,
    /// Files in slice order.
    pub files: Vec<PathBuf>,
    /// (columns, rows, slices).
    pub shape: [usize; 3],
    /// Scaled values (modality LUT applied), column fastest.
    pub values: Vec<f64>,
    /// (column spacing, row spacing, slice spacing) in mm; slice spacing is the median step between positions.
    pub spacing: [f64; 3],
    pub affine: [[f64; 4]; 4],
    /// Position of each slice along the normal (mm, LPS).
    pub positions: Vec<f64>,
    /// Steps more than 1.5 × the median: (index of the slice after the gap, step in mm).
    pub gaps: Vec<(usize, f64)>,
    /// Whether steps differ from the median by more than 1 % (apart from gaps).
    pub irregular: bool,
    pub modality: Option<String>,
    /// PatientID and StudyInstanceUID of the first slice.
    pub patient_id: Option<String>,
    pub study_uid: Option<String>,
    /// The first slice's [`crate::dicom::HEADER_TAGS`] attributes.
    pub header: Vec<((u16, u16), String)>,
}

fn bad(path: &Path, reason: String) -> ImagingError {
    ImagingError::InvalidVolume {
        path: path.to_path_buf(),
        reason,
    }
}

/// Every DICOM file under `dir` (by the `DICM` magic), sorted by path.
pub fn dicom_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else {
                let mut head = [0u8; 132];
                let is_dicom = std::fs::File::open(&p)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                    .map(|_| &head[128..132] == b"DICM")
                    .unwrap_or(false);
                if is_dicom {
                    out.push(p);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out).map_err(|source| ImagingError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    out.sort();
    Ok(out)
}

/// The SeriesInstanceUIDs of the DICOM files under `dir` (sorted, distinct), reading headers only.
pub fn series_uids(dir: &Path) -> Result<Vec<String>> {
    let mut uids = std::collections::BTreeSet::new();
    for p in dicom_files(dir)? {
        // the same length check read_dicom makes: a corrupted header length must not become an allocation
        let ok = std::fs::read(&p)
            .ok()
            .is_some_and(|b| crate::dicom::check_element_lengths(&b).is_ok());
        if !ok {
            continue; // unreadable here; read_series_dir reports it
        }
        let uid = dicom_object::OpenFileOptions::new()
            .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
            .open_file(&p)
            .ok()
            .and_then(|o| {
                o.element(dicom_dictionary_std::tags::SERIES_INSTANCE_UID)
                    .ok()
                    .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_string()))
            });
        uids.insert(uid.unwrap_or_default());
    }
    Ok(uids.into_iter().collect())
}

/// Reads every DICOM file under `dir` and assembles one volume per series (series in UID order). Files that cannot
/// be read are returned as errors beside the volumes; a series whose slices disagree (size, orientation, missing
/// geometry) is an error for that series.
pub fn read_series_dir(dir: &Path) -> Result<(Vec<Result<SeriesVolume>>, Vec<ImagingError>)> {
    let mut by_series: BTreeMap<String, Vec<(PathBuf, DicomImage)>> = BTreeMap::new();
    let mut errors = Vec::new();
    for p in dicom_files(dir)? {
        match read_dicom(&p) {
            Ok(img) => by_series
                .entry(img.series_uid.clone().unwrap_or_default())
                .or_default()
                .push((p, img)),
            Err(e) => errors.push(e),
        }
    }
    let volumes = by_series
        .into_iter()
        .map(|(uid, slices)| assemble(dir, uid, slices))
        .collect();
    Ok((volumes, errors))
}

fn assemble(dir: &Path, uid: String, mut slices: Vec<(PathBuf, DicomImage)>) -> Result<SeriesVolume> {
    let first = &slices[0].1;
    let (rows, cols) = (first.rows, first.columns);
    let (thickness, modality) = (first.slice_thickness, first.modality.clone());
    let (patient_id, study_uid) = (first.patient_id.clone(), first.study_uid.clone());
    let header = first.header.clone();
    let o = first
        .image_orientation
        .ok_or_else(|| bad(dir, format!("series {uid}: no ImageOrientationPatient")))?;
    let sp = first
        .pixel_spacing
        .ok_or_else(|| bad(dir, format!("series {uid}: no PixelSpacing")))?;
    let normal = crate::dicom::slice_normal(o);
    for (p, s) in &slices {
        if s.rows != rows || s.columns != cols || s.frames != 1 || s.samples_per_pixel != 1 {
            return Err(bad(
                p,
                format!("series {uid}: slices differ in size, frames or samples"),
            ));
        }
        let so = s
            .image_orientation
            .ok_or_else(|| bad(p, "no ImageOrientationPatient".into()))?;
        if so.iter().zip(&o).any(|(a, b)| (a - b).abs() > 1e-4) {
            return Err(bad(p, format!("series {uid}: slices differ in orientation")));
        }
        if s.image_position.is_none() {
            return Err(bad(p, "no ImagePositionPatient".into()));
        }
    }
    let pos = |s: &DicomImage| {
        let p = s.image_position.unwrap_or_default();
        p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]
    };
    slices.sort_by(|a, b| pos(&a.1).total_cmp(&pos(&b.1)).then(a.0.cmp(&b.0)));
    let positions: Vec<f64> = slices.iter().map(|(_, s)| pos(s)).collect();
    let steps: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
    let median = {
        let mut v = steps.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or_else(|| thickness.unwrap_or(1.0))
    };
    if steps.iter().any(|&d| d.abs() < 1e-6) {
        return Err(bad(dir, format!("series {uid}: two slices share a position")));
    }
    let gaps: Vec<(usize, f64)> = steps
        .iter()
        .enumerate()
        .filter(|(_, &d)| d > 1.5 * median)
        .map(|(i, &d)| (i + 1, d))
        .collect();
    let irregular = steps
        .iter()
        .any(|&d| d <= 1.5 * median && (d - median).abs() > 0.01 * median);
    let mut values = Vec::with_capacity(rows * cols * slices.len());
    for (_, s) in &slices {
        let (slope, inter) = s.rescale.unwrap_or((1.0, 0.0));
        values.extend(s.values.iter().map(|v| v * slope + inter));
    }
    // DICOM stores a slice row by row (column fastest), which is already (column, row) order.
    let affine = crate::dicom::ras_affine(o, sp, median, first_position(&slices));
    Ok(SeriesVolume {
        series_uid: uid,
        shape: [cols, rows, slices.len()],
        spacing: [sp[1], sp[0], median],
        modality,
        patient_id,
        study_uid,
        header,
        files: slices.into_iter().map(|(p, _)| p).collect(),
        values,
        affine,
        positions,
        gaps,
        irregular,
    })
}

fn first_position(slices: &[(PathBuf, DicomImage)]) -> [f64; 3] {
    slices.first().and_then(|(_, s)| s.image_position).unwrap_or_default()
}
