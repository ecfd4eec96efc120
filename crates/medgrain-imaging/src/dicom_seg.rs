//! DICOM Segmentation objects (SEG, PS3.3 A.51): each frame belongs to one segment
//! (PerFrameFunctionalGroupsSequence → SegmentIdentificationSequence → ReferencedSegmentNumber) and sits at a
//! position (PlanePositionSequence → ImagePositionPatient); orientation and pixel spacing come from the shared
//! (or per-frame) functional groups. Frames are placed on one grid: distinct positions along the slice normal,
//! ascending, become slices. Each segment is its own binary mask (segments may overlap), named by its
//! SegmentLabel. FRACTIONAL segmentations are binarised at half the MaximumFractionalValue.
//! Volume order is (column, row, slice), column fastest, with a RAS affine — as `dicom_series` builds volumes.

use crate::dicom::read_dicom;
use crate::{ImagingError, Result};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions, Tag};
use std::path::Path;

/// One segment of a SEG object.
#[derive(Debug, Clone)]
pub struct Segment {
    pub number: u32,
    pub label: String,
    /// Voxels of this segment, (column, row, slice) order, column fastest.
    pub mask: Vec<bool>,
}

/// A SEG object on its grid.
#[derive(Debug, Clone)]
pub struct SegVolume {
    /// (columns, rows, slices).
    pub shape: [usize; 3],
    pub affine: [[f64; 4]; 4],
    /// (column spacing, row spacing, slice spacing) mm.
    pub spacing: [f64; 3],
    pub segments: Vec<Segment>,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> ImagingError {
    ImagingError::InvalidVolume {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let s = obj.element(tag).ok()?.to_str().ok()?.into_owned();
    s.trim_end_matches(['\0', ' '])
        .split('\\')
        .map(|x| x.trim().parse::<f64>().ok())
        .collect()
}

/// The first item of a sequence attribute.
fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.element(tag).ok()?.items()?.first()
}

/// An attribute of a functional group macro: per-frame item first, then the shared one.
fn group_floats(
    per_frame: Option<&InMemDicomObject>,
    shared: Option<&InMemDicomObject>,
    seq: Tag,
    tag: Tag,
) -> Option<Vec<f64>> {
    per_frame
        .and_then(|f| first_item(f, seq))
        .and_then(|i| floats(i, tag))
        .or_else(|| shared.and_then(|s| first_item(s, seq)).and_then(|i| floats(i, tag)))
}

/// Whether a file is a DICOM Segmentation (SOP class 1.2.840.10008.5.1.4.1.1.66.4 or Modality SEG).
pub fn is_seg(path: &Path) -> bool {
    let checked = std::fs::read(path)
        .ok()
        .is_some_and(|b| crate::dicom::check_element_lengths(&b).is_ok());
    checked
        && OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .ok()
            .is_some_and(|o| {
                let text = |t: Tag| {
                    o.element(t)
                        .ok()
                        .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_string()))
                };
                text(tags::SOP_CLASS_UID).as_deref() == Some("1.2.840.10008.5.1.4.1.1.66.4")
                    || text(tags::MODALITY).as_deref() == Some("SEG")
            })
}

/// Reads a SEG file into per-segment masks on one grid. (`read_dicom` checks the element lengths first, so the
/// second, header-only open below reads a file already known to be sound.)
pub fn read_seg(path: &Path) -> Result<SegVolume> {
    let img = read_dicom(path)?;
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| bad(path, format!("not a readable DICOM file: {e}")))?;
    let (rows, cols, frames) = (img.rows, img.columns, img.frames);
    if img.samples_per_pixel != 1 {
        return Err(bad(path, "a segmentation has one sample per pixel"));
    }
    let fractional = obj
        .element(tags::SEGMENTATION_TYPE)
        .ok()
        .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
        .is_some_and(|s| s == "FRACTIONAL");
    let max_frac = obj
        .element(tags::MAXIMUM_FRACTIONAL_VALUE)
        .ok()
        .and_then(|e| e.to_int::<i64>().ok())
        .unwrap_or(255) as f64;
    let threshold = if fractional { max_frac / 2.0 } else { 0.0 };
    let mut labels = std::collections::BTreeMap::new();
    if let Some(items) = obj.element(tags::SEGMENT_SEQUENCE).ok().and_then(|e| e.items()) {
        for it in items {
            let n = it
                .element(tags::SEGMENT_NUMBER)
                .ok()
                .and_then(|e| e.to_int::<u32>().ok());
            let l = it
                .element(tags::SEGMENT_LABEL)
                .ok()
                .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_string()));
            if let (Some(n), Some(l)) = (n, l) {
                labels.insert(n, l);
            }
        }
    }
    let shared = first_item(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame: Vec<&InMemDicomObject> = obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .and_then(|e| e.items())
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    // More groups than frames happens in files cut down from larger ones (pydicom's liver_1frame.dcm keeps the
    // three groups of its source): the first NumberOfFrames describe the frames. Fewer is an error.
    if per_frame.len() < frames {
        return Err(bad(
            path,
            format!("{} per-frame functional groups for {frames} frames", per_frame.len()),
        ));
    }
    let per_frame = &per_frame[..frames];
    let o = group_floats(
        per_frame.first().copied(),
        shared,
        tags::PLANE_ORIENTATION_SEQUENCE,
        tags::IMAGE_ORIENTATION_PATIENT,
    )
    .filter(|v| v.len() == 6)
    .ok_or_else(|| bad(path, "no ImageOrientationPatient in the functional groups"))?;
    let sp = group_floats(
        per_frame.first().copied(),
        shared,
        tags::PIXEL_MEASURES_SEQUENCE,
        tags::PIXEL_SPACING,
    )
    .filter(|v| v.len() == 2)
    .ok_or_else(|| bad(path, "no PixelSpacing in the functional groups"))?;
    let thickness = group_floats(
        per_frame.first().copied(),
        shared,
        tags::PIXEL_MEASURES_SEQUENCE,
        tags::SPACING_BETWEEN_SLICES,
    )
    .or_else(|| {
        group_floats(
            per_frame.first().copied(),
            shared,
            tags::PIXEL_MEASURES_SEQUENCE,
            tags::SLICE_THICKNESS,
        )
    })
    .and_then(|v| v.first().copied())
    .unwrap_or(1.0);
    let o6 = [o[0], o[1], o[2], o[3], o[4], o[5]];
    let normal = crate::dicom::slice_normal(o6);
    let mut frame_info = Vec::with_capacity(frames);
    for (f, item) in per_frame.iter().enumerate() {
        let seg = first_item(item, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .and_then(|s| s.element(tags::REFERENCED_SEGMENT_NUMBER).ok())
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or_else(|| bad(path, format!("frame {f}: no ReferencedSegmentNumber")))?;
        let pos = first_item(item, tags::PLANE_POSITION_SEQUENCE)
            .and_then(|p| floats(p, tags::IMAGE_POSITION_PATIENT))
            .filter(|v| v.len() == 3)
            .ok_or_else(|| bad(path, format!("frame {f}: no ImagePositionPatient")))?;
        let d = pos[0] * normal[0] + pos[1] * normal[1] + pos[2] * normal[2];
        frame_info.push((seg, [pos[0], pos[1], pos[2]], d));
    }
    // distinct slice positions (within 1 µm), ascending along the normal
    let mut ds: Vec<(f64, [f64; 3])> = frame_info.iter().map(|f| (f.2, f.1)).collect();
    ds.sort_by(|a, b| a.0.total_cmp(&b.0));
    ds.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-3);
    let steps: Vec<f64> = ds.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let step = {
        let mut s = steps.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        s.get(s.len() / 2).copied().unwrap_or(thickness)
    };
    if steps.iter().any(|&s| (s - step).abs() > 0.01 * step.abs().max(1e-6)) {
        return Err(bad(
            path,
            "frames are not evenly spaced along the slice normal: no single grid",
        ));
    }
    let slices = ds.len();
    let n = rows * cols;
    let mut numbers: Vec<u32> = frame_info.iter().map(|f| f.0).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut segments: Vec<Segment> = numbers
        .iter()
        .map(|&number| Segment {
            number,
            label: labels
                .get(&number)
                .cloned()
                .unwrap_or_else(|| format!("segment {number}")),
            mask: vec![false; n * slices],
        })
        .collect();
    for (f, (seg, _, d)) in frame_info.iter().enumerate() {
        let k = ds.iter().position(|x| (x.0 - d).abs() < 1e-3).unwrap_or(0);
        let Some(s) = segments.iter_mut().find(|s| s.number == *seg) else {
            continue;
        };
        let src = img
            .values
            .get(f * n..(f + 1) * n)
            .ok_or_else(|| bad(path, "pixel data shorter than its frames"))?;
        for (dst, &v) in s.mask[k * n..(k + 1) * n].iter_mut().zip(src) {
            *dst |= v > threshold;
        }
    }
    let origin = ds.first().map(|x| x.1).unwrap_or_default();
    let affine = crate::dicom::ras_affine(o6, [sp[0], sp[1]], step, origin);
    Ok(SegVolume {
        shape: [cols, rows, slices],
        affine,
        spacing: [sp[1], sp[0], step],
        segments,
    })
}
