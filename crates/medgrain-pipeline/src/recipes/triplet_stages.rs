//! One sample through the triplet stages: load → ROIs → coarse caption → description → QC → record.
//! Each stage's failure is reported with the stage's name; nothing here panics on input.

use crate::sources::{SampleError, SampleRef, SampleSource};
use medgrain_generate::{caption, qc, GenerateError, Generated, Generator, SampleFacts};
use medgrain_imaging::{encode_png, PixelData, Raster};
use medgrain_records::{GeneratorInfo, ImageCell, SliceRef, TripletRecord};
use sha2::{Digest, Sha256};

/// Stable id of a sample: SHA-256 over source name, relative path and slice, first 16 bytes in hex.
pub fn sample_id(source: &str, rel_path: &str, slice: Option<&SliceRef>) -> String {
    let mut h = Sha256::new();
    h.update(b"medgrain-sample-v1\0");
    h.update(source.as_bytes());
    h.update(b"\0");
    h.update(rel_path.as_bytes());
    if let Some(s) = slice {
        h.update(format!("\0{}:{}", s.axis, s.index).as_bytes());
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Fraction of pixels whose luminance differs from the frame's border level by more than 0.08 (0..1 scale).
/// The border level is the median of the outermost pixels, which are background in nearly all medical images.
pub fn foreground_fraction(luma: &[f32], width: usize, height: usize) -> Option<f64> {
    if width < 3 || height < 3 || luma.len() != width * height {
        return None;
    }
    let mut border: Vec<f32> = Vec::with_capacity(2 * (width + height));
    for c in 0..width {
        border.push(luma[c]);
        border.push(luma[(height - 1) * width + c]);
    }
    for r in 0..height {
        border.push(luma[r * width]);
        border.push(luma[r * width + width - 1]);
    }
    border.sort_by(|a, b| a.total_cmp(b));
    let bg = border[border.len() / 2];
    let fg = luma.iter().filter(|&&v| (v - bg).abs() > 0.08).count();
    Some(fg as f64 / luma.len() as f64)
}

/// PNG bytes for the `image` column: the original file when it is a PNG (pixels untouched), else a lossless
/// PNG of the decoded pixels.
fn png_bytes(raster: &Raster, original: Vec<u8>) -> Result<Vec<u8>, SampleError> {
    if raster.format == "png" {
        return Ok(original);
    }
    match &raster.data {
        PixelData::U8(px) => encode_png(raster.width, raster.height, raster.channels, px)
            .map_err(|e| SampleError::new("image", e.to_string())),
        PixelData::U16(px) => {
            // 16-bit grey/colour: keep full depth via the image crate's 16-bit PNG encoder.
            // The PNG encoder takes 16-bit samples in native byte order.
            let bytes: Vec<u8> = px.iter().flat_map(|v| v.to_ne_bytes()).collect();
            let colour = match raster.channels {
                1 => image::ExtendedColorType::L16,
                2 => image::ExtendedColorType::La16,
                3 => image::ExtendedColorType::Rgb16,
                _ => image::ExtendedColorType::Rgba16,
            };
            let mut out = Vec::new();
            use image::ImageEncoder;
            image::codecs::png::PngEncoder::new(&mut out)
                .write_image(&bytes, raster.width, raster.height, colour)
                .map_err(|e| SampleError::new("image", format!("PNG encoding: {e}")))?;
            Ok(out)
        }
        PixelData::F32(_) => Err(SampleError::new(
            "image",
            "floating-point images are not stored as PNG yet",
        )),
    }
}

/// Patient side (from the world x of the ROI's centroid column against the midline; "center" within 5% of the
/// field of view) and in-plane measurements (mm, HU) for ROIs of a slice cut from a volume.
fn apply_patient_geometry(
    rois: &mut [medgrain_records::RoiRecord],
    g: &crate::sources::SliceGeometry,
    w: usize,
    h: usize,
) {
    let fov = g.pixel_mm * w as f64;
    let affine = [
        [g.pixel_mm, 0.0, 0.0, 0.0],
        [0.0, g.pixel_mm, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let grid = medgrain_roi::measure::Grid {
        shape: [w, h, 1],
        affine: &affine,
    };
    for roi in rois.iter_mut() {
        let col = (roi.centroid_xy[0].round() as usize).min(w.saturating_sub(1));
        let x = g.world_of_col.get(col).map_or(g.midline_x, |p| p[0]);
        roi.side = medgrain_roi::position::patient_side(x, g.midline_x, fov).map(str::to_string);
        roi.side_frame = "patient".into();
        roi.patient_position = patient_position(roi, g);
        if let Ok(mask) = medgrain_roi::rle::decode(&roi.mask_rle) {
            let voxels: Vec<usize> = mask.iter().enumerate().filter(|(_, &m)| m).map(|(i, _)| i).collect();
            let mut m = medgrain_roi::measure::measure_component(&voxels, grid, Some(&|i| g.values[i]), 10.0);
            m.volume_mm3 = None; // a slice has an area, not a volume
                                 // shape on the square-pixel display grid; entropy on the volume's values (HU), not the display
            let pixels: Vec<(usize, usize)> = voxels.iter().map(|&i| (i / w, i % w)).collect();
            let hu: Vec<f64> = voxels.iter().filter_map(|&i| g.values.get(i).copied()).collect();
            if let Some(s) = medgrain_roi::shape_measurements(&pixels, Some(&hu)) {
                m.circularity = s.circularity;
                m.solidity = s.solidity;
                m.eccentricity = s.eccentricity;
                m.elongation = s.elongation;
                m.entropy_bits = s.entropy_bits;
                m.uniformity = s.uniformity;
            }
            let roi_mean = m.mean_hu;
            roi.measurements = Some(m);
            if let Some((organs, names)) = &g.organs {
                roi.organ_context =
                    medgrain_roi::organ::organ_context(&mask, organs, w, h).map(|(k, relation, fraction_inside)| {
                        let stats = medgrain_roi::organ::organ_intensity(k, &mask, organs, &g.values, roi_mean);
                        medgrain_records::OrganContext {
                            organ: names.get(k as usize - 1).cloned().unwrap_or_default(),
                            relation: relation.into(),
                            fraction_inside,
                            organ_mean_hu: stats.map(|s| s.0),
                            organ_std_hu: stats.map(|s| s.1),
                            attenuation_vs_organ: stats.and_then(|s| s.2).map(str::to_string),
                        }
                    });
            }
        }
    }
}

/// "right, anterior, superior" for an ROI of a slice (see [`medgrain_roi::position::patient_position_words`]).
fn patient_position(roi: &medgrain_records::RoiRecord, g: &crate::sources::SliceGeometry) -> Option<String> {
    medgrain_roi::position::patient_position_words(
        roi.side.as_deref(),
        roi.centroid_xy.map(f64::from),
        &g.world_of_col,
        &g.world_of_row,
        g.volume_centre,
        g.volume_fov,
    )
}

/// A sample after loading and ROI extraction, waiting for its description.
pub struct Prepared {
    /// The record with everything but `description`, `sections`, `generator` and `qc`.
    pub record: TripletRecord,
    colour: bool,
    foreground: Option<f64>,
}

impl Prepared {
    /// The facts a writer may use.
    pub fn facts(&self) -> SampleFacts<'_> {
        let r = &self.record;
        SampleFacts {
            id: &r.id,
            modality: r.modality.as_deref(),
            organ: r.organ.as_deref(),
            diseases: &r.diseases,
            width: r.width as u32,
            height: r.height as u32,
            colour: self.colour,
            foreground_fraction: self.foreground,
            rois: &r.rois,
            knowledge: &r.knowledge,
            coarse_caption: &r.coarse_caption,
            image: Some(&r.image.bytes),
        }
    }

    /// Completes the record with a description (or turns a generation failure into a sample error).
    pub fn finish(mut self, generated: Result<Generated, GenerateError>) -> Result<TripletRecord, SampleError> {
        let g = generated.map_err(|e| SampleError::new("generate", e.to_string()))?;
        let qc = qc::check(&self.facts(), &g.description, &g.sections);
        self.record.description = g.description;
        self.record.sections = g.sections;
        self.record.generator = g.generator;
        self.record.qc = qc;
        Ok(self.record)
    }
}

/// Loads a sample and extracts its ROIs and caption: everything before the description.
/// With `knowledge`, the record's `knowledge` column is filled from the knowledge base.
pub fn prepare(
    source: &dyn SampleSource,
    sample: &SampleRef,
    knowledge: Option<&crate::knowledge::Knowledge>,
    splits: Option<&crate::config::SplitsConfig>,
) -> Result<Prepared, SampleError> {
    let loaded = source.load(sample)?;
    let split = match splits {
        None => None,
        Some(s) => {
            use crate::config::SplitBy;
            let key = match (s.by, s.key_name()) {
                (SplitBy::Image, _) => format!(
                    "{}:{}{}",
                    source.name(),
                    sample.rel_path,
                    sample
                        .slice
                        .as_ref()
                        .map(|sl| format!("#{}{}", sl.axis, sl.index))
                        .unwrap_or_default()
                ),
                (SplitBy::Volume, _) => crate::config::volume_split_key(&sample.rel_path),
                (_, Some(k)) => loaded.meta.keys.get(k).cloned().ok_or_else(|| {
                    SampleError::new(
                        "split",
                        format!(
                            "no {k:?} for this sample (splits by {:?} need it: a metadata column, or PatientID / \
                             StudyInstanceUID in DICOM); it has {:?}",
                            s.by,
                            loaded.meta.keys.keys().collect::<Vec<_>>()
                        ),
                    )
                })?,
                (_, None) => unreachable!("patient and study splits have a key name"),
            };
            Some(s.assign(&key).to_string())
        }
    };
    let raster = &loaded.raster;
    let (w, h) = (raster.width as usize, raster.height as usize);
    let luma = raster.luminance();
    let meta = &loaded.meta;
    let names = loaded.label_names.as_ref();
    let name_of = |l: u32| -> String {
        match names.and_then(|n| n.get((l as usize).wrapping_sub(1))) {
            Some(n) => n.clone(),
            None => source.label_name(l, meta),
        }
    };
    let mut rois = match &loaded.mask {
        Some(m) => medgrain_roi::rois_2d(&m.labels, h, w, Some(&luma), &name_of, &source.roi_options())
            .map_err(|e| SampleError::new("rois", e.to_string()))?,
        None => Vec::new(),
    };
    // where each label's mask came from, and the locator's confidence in it (value − 1 indexes both)
    for roi in rois.iter_mut() {
        let Some(k) = roi.label_id.map(|l| (l as usize).wrapping_sub(1)) else {
            continue;
        };
        if let Some(o) = loaded.label_origins.as_ref().and_then(|v| v.get(k)) {
            roi.origin = o.clone();
        }
        if let Some(&Some(p)) = loaded.label_scores.as_ref().and_then(|v| v.get(k)) {
            roi.score = Some(p);
        }
    }
    if let Some(g) = &loaded.geometry {
        apply_patient_geometry(&mut rois, g, w, h);
    }
    let mut coarse = caption::coarse_caption(meta.modality.as_deref(), meta.organ.as_deref(), &meta.diseases);
    if let Some(f) = &meta.study_facts {
        coarse.push(' ');
        coarse.push_str(f);
    }
    let colour = raster.is_colour();
    let foreground = foreground_fraction(&luma, w, h);
    let (width, height) = (raster.width as i32, raster.height as i32);
    let bytes = png_bytes(raster, loaded.bytes)?;
    let record = TripletRecord {
        id: sample_id(source.name(), &sample.rel_path, sample.slice.as_ref()),
        source: source.name().to_string(),
        source_path: sample.rel_path.clone(),
        slice: sample.slice.clone(),
        license: source.license().map(str::to_string),
        image: ImageCell {
            bytes,
            path: match &sample.slice {
                Some(sl) => format!("{}#{}{}", sample.rel_path, sl.axis, sl.index),
                None => sample.rel_path.clone(),
            },
        },
        width,
        height,
        modality: loaded.meta.modality.clone(),
        organ: loaded.meta.organ.clone(),
        diseases: loaded.meta.diseases.clone(),
        coarse_caption: coarse,
        rois,
        knowledge: Vec::new(),
        description: String::new(),
        sections: Default::default(),
        generator: GeneratorInfo {
            kind: String::new(),
            model: None,
            prompt_version: String::new(),
            prompt_tokens: None,
            completion_tokens: None,
            finish_reason: None,
        },
        qc: Default::default(),
        split,
    };
    let mut record = record;
    if let Some(k) = knowledge {
        k.attach(&mut record)?;
    }
    Ok(Prepared {
        record,
        colour,
        foreground,
    })
}

/// Builds the triplet record of one sample with a single generator call.
pub fn build_record(
    source: &dyn SampleSource,
    sample: &SampleRef,
    generator: &dyn Generator,
) -> Result<TripletRecord, SampleError> {
    let prepared = prepare(source, sample, None, None)?;
    let generated = generator.generate(&prepared.facts());
    prepared.finish(generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = sample_id("s", "images/a.png", None);
        assert_eq!(a.len(), 32);
        assert_eq!(a, sample_id("s", "images/a.png", None));
        assert_ne!(a, sample_id("t", "images/a.png", None));
        assert_ne!(
            a,
            sample_id(
                "s",
                "images/a.png",
                Some(&SliceRef {
                    axis: "axial".into(),
                    index: 0
                })
            )
        );
    }

    #[test]
    fn foreground_of_a_centred_square() {
        let (w, h) = (10, 10);
        let luma: Vec<f32> = (0..100)
            .map(|i| {
                if (3..7).contains(&(i / 10)) && (3..7).contains(&(i % 10)) {
                    0.9
                } else {
                    0.1
                }
            })
            .collect();
        assert_eq!(foreground_fraction(&luma, w, h), Some(0.16));
    }
}
