//! Volume sources: `nifti` (3D `.nii`/`.nii.gz` files) and `dicom-series` (folders of DICOM slices, one volume per
//! series, slices ordered by ImagePositionPatient — see `medgrain_imaging::dicom_series`), each with one binary
//! mask file per structure or lesion (TotalSegmentator style: `masks = "masks/{stem}/*.nii.gz"`, `{stem}` being the
//! file stem or the series folder's name), cut into 2D samples along a patient plane.
//! Slices are chosen per volume when listing (`select`): `largest` — each mask's largest cross-section; `roi` —
//! every `step`-th slice that contains mask voxels; `every` — every `step`-th slice. Each slice is rendered in
//! radiological convention with square pixels and a window (`mediastinum`, `lung`, `bone`, `brain`, `abdomen`,
//! or `percentile` for MR), its masks become one label map (value = mask number, names from the file names), and
//! ROIs get patient sides and measurements in mm and HU. A DICOM series with a gap between slices is refused
//! (its voxels would not sit on one grid).

use crate::config::{LoadedConfig, SourceConfig};
use crate::sources::sample::{LoadedSample, SampleError, SampleMeta, SampleRef, SampleSource, SliceGeometry};
use crate::PipelineError;
use medgrain_imaging::nifti_read::{read_nifti, read_nifti_header, NiftiImage};
use medgrain_imaging::render::{apply_window, ct_window, percentile_window, Plane, SliceLayout};
use medgrain_imaging::{LabelMap, PixelData, Raster};
use medgrain_records::SliceRef;
use medgrain_roi::boxmask::BoxMask;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A volume's values (HU for CT): as stored in a NIfTI file, scaled on access (a 512×512×300 int16 CT keeps its
/// 157 MB rather than 629 MB of f64), or already as f64 (DICOM series).
enum Values {
    Dense(Vec<f64>),
    Stored {
        voxels: medgrain_imaging::nifti_read::Voxels,
        scale: Option<(f64, f64)>,
        len: usize,
    },
}

impl Values {
    /// Value `i`, the number `crate::rois::scaled_values` gives there.
    fn get(&self, i: usize) -> f64 {
        match self {
            Values::Dense(v) => v[i],
            Values::Stored { voxels, scale, .. } => {
                let x = voxels.get(i).unwrap_or(f64::NAN);
                scale.map_or(x, |(s, c)| x * s + c)
            }
        }
    }

    /// All values as f64 (borrowed when they already are).
    fn dense(&self) -> std::borrow::Cow<'_, [f64]> {
        match self {
            Values::Dense(v) => std::borrow::Cow::Borrowed(v),
            Values::Stored { len, .. } => std::borrow::Cow::Owned((0..*len).map(|i| self.get(i)).collect()),
        }
    }
}

/// A decoded volume with its masks.
struct Volume {
    shape: [usize; 3],
    affine: [[f64; 4]; 4],
    values: Values,
    /// (name, mask voxels as bits in their bounding box).
    masks: Vec<(String, BoxMask)>,
    /// Origin per mask: "annotation" for mask files, the locator's name for masks it found.
    origins: Vec<String>,
    /// The locator's confidence per mask (experts only).
    scores: Vec<Option<f64>>,
    /// Organ context (`organs = …`): one label per voxel (0 = none, value − 1 indexes `organ_names`).
    organ_labels: Vec<u16>,
    organ_names: Vec<String>,
    /// Modality from the DICOM series (records' naming), when the source is `dicom-series`.
    modality: Option<&'static str>,
    /// PatientID / StudyInstanceUID of a DICOM series (split keys).
    keys: std::collections::BTreeMap<String, String>,
    /// What the series' header says about the study (see [`crate::dicom_meta`]).
    facts: Option<String>,
    /// The percentile window (`window = "percentile"`, MR), computed over the whole volume once, not per slice.
    percentile: std::sync::OnceLock<(f64, f64)>,
}

pub struct NiftiVolumeSource {
    cfg: SourceConfig,
    /// Class table for multilabel mask files (`mask_labels`: lines `value name`).
    class_names: std::collections::HashMap<u32, String>,
    /// ROI locator for structures without mask files (`locator = "classical:ct-lung"`, …).
    locator: Option<Arc<dyn medgrain_roi::locate::RoiLocator>>,
    /// Where the locator's masks are kept for the rest of a build (`OUT/.medgrain/located/…`), if anywhere.
    pub(crate) located_dir: Option<PathBuf>,
    /// `dicom-series` (folders of DICOM slices) rather than NIfTI files.
    dicom: bool,
    /// De-identification of DICOM headers (`deid`).
    deid: Option<medgrain_deid::Deidentifier>,
    root: PathBuf,
    plane: Plane,
    /// The most recently used volumes (shards read consecutive slices of a volume, one shard per worker).
    cache: Mutex<Vec<(String, Arc<Volume>)>>,
}

/// The source's locator (`locator = …`), with the model loaded once for the whole run.
pub(crate) fn open_locator(
    cfg: &SourceConfig,
    loaded: &LoadedConfig,
) -> Result<Option<Arc<dyn medgrain_roi::locate::RoiLocator>>, PipelineError> {
    let Some(name) = cfg.locator else {
        return Ok(None);
    };
    let onnx = cfg.onnx.clone().map(|o| o.resolved(&loaded.base_dir));
    crate::rois::build_locator(name, onnx.as_ref())
        .map(Some)
        .map_err(|reason| PipelineError::Config {
            path: loaded.path.clone(),
            reason: format!("source {:?}: {reason}", cfg.name),
        })
}

/// A mask value as a label (non-negative whole numbers; anything else counts as "set" = 1 if positive).
fn label_value(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        if v.fract() == 0.0 && v <= u32::MAX as f64 {
            v as u32
        } else {
            1
        }
    } else {
        0
    }
}

/// Whether two affines agree within 1e-3 (mm, and direction cosines × spacing).
fn affine_close(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> bool {
    (0..3).all(|i| (0..4).all(|j| (a[i][j] - b[i][j]).abs() < 1e-3))
}

fn invert3(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 {
        return None;
    }
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let (r1, r2) = ((j + 1) % 3, (j + 2) % 3);
            let (c1, c2) = ((i + 1) % 3, (i + 2) % 3);
            *v = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det;
        }
    }
    Some(inv)
}

/// Resamples a label volume (`src`, first axis fastest) onto another grid, nearest neighbour through world
/// coordinates (SAT and other tools write masks on their own resampled grid); outside the source grid is 0.
fn resample_nearest(
    src: &[f64],
    src_shape: [usize; 3],
    src_affine: &[[f64; 4]; 4],
    dst_shape: [usize; 3],
    dst_affine: &[[f64; 4]; 4],
) -> Option<Vec<u32>> {
    let inv = invert3(std::array::from_fn(|i| std::array::from_fn(|j| src_affine[i][j])))?;
    let mut out = Vec::with_capacity(dst_shape.iter().product());
    for k in 0..dst_shape[2] {
        for j in 0..dst_shape[1] {
            for i in 0..dst_shape[0] {
                let w: [f64; 3] = std::array::from_fn(|r| {
                    dst_affine[r][0] * i as f64
                        + dst_affine[r][1] * j as f64
                        + dst_affine[r][2] * k as f64
                        + dst_affine[r][3]
                        - src_affine[r][3]
                });
                let p: [f64; 3] = std::array::from_fn(|r| inv[r][0] * w[0] + inv[r][1] * w[1] + inv[r][2] * w[2]);
                let q = p.map(|x| x.round());
                let inside = (0..3).all(|a| q[a] >= 0.0 && (q[a] as usize) < src_shape[a]);
                out.push(if inside {
                    let idx = q[0] as usize + src_shape[0] * (q[1] as usize + src_shape[1] * q[2] as usize);
                    src.get(idx).map_or(0, |&v| label_value(v))
                } else {
                    0
                });
            }
        }
    }
    Some(out)
}

/// Volumes kept decoded per source.
const CACHED_VOLUMES: usize = 4;

/// "02_pleural_effusion" → "pleural effusion"; "lung_upper_lobe_left" → "lung upper lobe left".
pub(crate) fn mask_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.trim_end_matches(".gz").trim_end_matches(".nii");
    stem.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_')
        .replace('_', " ")
}

fn volume_stem(rel: &str) -> String {
    let rel = rel.split_once('#').map_or(rel, |(dir, _)| dir);
    let name = Path::new(rel)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.trim_end_matches(".gz").trim_end_matches(".nii").to_string()
}

impl NiftiVolumeSource {
    pub fn open(cfg: &SourceConfig, loaded: &LoadedConfig) -> Result<Self, PipelineError> {
        let root = loaded.resolve(&cfg.root);
        if !root.is_dir() {
            return Err(PipelineError::Config {
                path: loaded.path.clone(),
                reason: format!("source {:?}: root {} is not a folder", cfg.name, root.display()),
            });
        }
        let plane = Plane::parse(cfg.plane.as_deref().unwrap_or("axial")).unwrap_or(Plane::Axial);
        let class_names = match &cfg.mask_labels {
            Some(p) => {
                let path = root.join(p);
                crate::rois::read_label_names(&path).map_err(|e| PipelineError::Config {
                    path: loaded.path.clone(),
                    reason: format!("source {:?}: mask_labels: {}", cfg.name, e.message),
                })?
            }
            None => Default::default(),
        };
        Ok(NiftiVolumeSource {
            class_names,
            locator: open_locator(cfg, loaded)?,
            located_dir: None,
            cfg: cfg.clone(),
            dicom: cfg.kind == crate::config::SourceKind::DicomSeries,
            deid: crate::dicom_meta::source_deidentifier(cfg, loaded)?,
            root,
            plane,
            cache: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn has_locator(&self) -> bool {
        self.locator.is_some()
    }

    /// The locator's masks for volume `rel`: from the build's located cache when there, else found and stored.
    fn located(
        &self,
        loc: &dyn medgrain_roi::locate::RoiLocator,
        rel: &str,
        values: &[f64],
        grid: medgrain_roi::measure::Grid<'_>,
    ) -> Result<Vec<medgrain_roi::locate::LocatedMask>, SampleError> {
        let source_path = self.root.join(rel.split('#').next().unwrap_or(rel));
        let file = self
            .located_dir
            .as_ref()
            .and_then(|d| crate::sources::located_cache::cache_file(d, rel, &source_path, loc.name()));
        if let Some(found) = file
            .as_ref()
            .and_then(|f| crate::sources::located_cache::read(f, values.len()))
        {
            return Ok(found);
        }
        let found = loc
            .locate(values, grid)
            .map_err(|e| SampleError::new("locator", e.to_string()))?;
        if let Some(f) = &file {
            // the cache saves work; failing to write it costs only a second run of the locator
            if let Err(e) = crate::sources::located_cache::write(f, values.len(), &found) {
                tracing::warn!(file = %f.display(), error = %e, "could not keep the located masks");
            }
        }
        Ok(found)
    }

    fn mask_files(&self, rel: &str) -> Vec<PathBuf> {
        self.files_for(self.cfg.masks.as_deref(), rel)
    }

    /// Files a `{stem}` pattern names for a volume, sorted.
    fn files_for(&self, pattern: Option<&str>, rel: &str) -> Vec<PathBuf> {
        let Some(pattern) = pattern else {
            return Vec::new();
        };
        let p = pattern.replace("{stem}", &volume_stem(rel));
        let full = format!("{}/{}", glob::Pattern::escape(&self.root.to_string_lossy()), p);
        let mut files: Vec<PathBuf> = glob::glob(&full).map(|g| g.flatten().collect()).unwrap_or_default();
        files.sort();
        files
    }

    /// Reads a volume and its masks; `with_values = false` (listing) reads only the volume's header, since slice
    /// selection needs the geometry and the masks, not the intensities.
    fn read(&self, rel: &str, with_values: bool) -> Result<Arc<Volume>, SampleError> {
        if let Ok(guard) = self.cache.lock() {
            if let Some((_, v)) = guard.iter().find(|(k, _)| k == rel) {
                return Ok(v.clone());
            }
        }
        let image_err = |e: medgrain_imaging::ImagingError| SampleError::new("image", e.to_string());
        let mut keys = std::collections::BTreeMap::new();
        let mut facts = None;
        let (shape, values, affine, modality) = if self.dicom {
            let s = self.read_series(rel)?;
            let modality = s.modality.as_deref().and_then(medgrain_imaging::dicom::modality_name);
            let h = crate::dicom_meta::header_facts(&s.header, self.deid.as_ref())
                .map_err(|e| SampleError::new("deid", e))?;
            keys.extend(h.keys);
            facts = h.facts;
            (s.shape, Values::Dense(s.values), s.affine, modality)
        } else {
            let path = self.root.join(rel);
            let (header, voxels) = if with_values || self.locator.is_some() {
                let img: NiftiImage = read_nifti(&path).map_err(image_err)?;
                (img.header, Some(img.voxels))
            } else {
                (read_nifti_header(&path).map_err(image_err)?, None)
            };
            let shape = crate::rois::volume_shape(&header.shape).ok_or_else(|| {
                SampleError::new(
                    "image",
                    format!("{}: shape {:?} is not a 3D volume", path.display(), header.shape),
                )
            })?;
            let values = match voxels {
                Some(v) => Values::Stored {
                    len: shape.iter().product::<usize>().min(v.len()),
                    scale: header.scaling(),
                    voxels: v,
                },
                None => Values::Dense(Vec::new()),
            };
            (shape, values, header.best_affine(), None)
        };
        let n = shape.iter().product::<usize>();
        let mut masks = Vec::new();
        let mut scratch: Vec<u8> = Vec::new();
        for mp in self.mask_files(rel) {
            // One mask per label value; uint8 masks on the volume's grid (TotalSegmentator's) are read for their
            // non-zero bytes only (gzip'd ones without inflating the zeros).
            let (mheader, mask) = medgrain_imaging::nifti_read::read_nifti_mask(&mp, &mut scratch)
                .map_err(|e| SampleError::new("mask", e.to_string()))?;
            let mshape: Vec<usize> = mheader.shape.iter().take(3).copied().collect();
            let maffine = mheader.best_affine();
            let same_grid = mshape == shape.to_vec() && affine_close(&maffine, &affine);
            let uint8 = mheader.datatype == 2 && mask.len() >= n;
            let by_value: Vec<(u32, BoxMask)> = if same_grid && uint8 {
                BoxMask::by_value(shape, |f| {
                    mask.for_each_nonzero_u8(|i, v| {
                        if i < n {
                            f(i, v as u32)
                        }
                    });
                })
            } else {
                drop(mask);
                let (_, raw) = medgrain_imaging::nifti_read::read_nifti_raw(&mp, &mut scratch)
                    .map_err(|e| SampleError::new("mask", e.to_string()))?;
                let voxels = raw
                    .to_voxels()
                    .ok_or_else(|| SampleError::new("mask", format!("{}: unsupported datatype", mp.display())))?;
                let values: Vec<f64> = voxels.values().collect();
                let labels: Vec<u32> = if same_grid {
                    values.iter().take(n).map(|&v| label_value(v)).collect()
                } else if self.cfg.resample_masks && mshape.len() == 3 {
                    resample_nearest(&values, [mshape[0], mshape[1], mshape[2]], &maffine, shape, &affine).ok_or_else(
                        || SampleError::new("mask", format!("{}: its affine cannot be inverted", mp.display())),
                    )?
                } else {
                    return Err(SampleError::new(
                        "mask",
                        format!(
                            "{}: mask grid (shape {:?}, affine {:?}) differs from the volume's (shape {:?}, affine {:?}); set resample_masks = true to resample it nearest-neighbour",
                            mp.display(),
                            mheader.shape,
                            maffine,
                            shape,
                            affine
                        ),
                    ));
                };
                BoxMask::by_value(shape, |f| {
                    for (i, &l) in labels.iter().enumerate() {
                        if l > 0 {
                            f(i, l);
                        }
                    }
                })
            };
            let multilabel =
                by_value.len() > 1 || by_value.first().is_some_and(|(v, _)| self.class_names.contains_key(v));
            if !multilabel {
                // a binary mask (0/1, or 0/255): its name is the file's
                let m = by_value
                    .into_iter()
                    .next()
                    .map(|(_, m)| m)
                    .unwrap_or_else(|| BoxMask::empty(shape));
                masks.push((mask_name(&mp), m));
            } else {
                // a multilabel file (TotalSegmentator --ml, nnU-Net): one mask per value, named from the class table
                for (v, m) in by_value {
                    let name = self
                        .class_names
                        .get(&v)
                        .cloned()
                        .unwrap_or_else(|| format!("{} label {v}", mask_name(&mp)));
                    masks.push((name, m));
                }
            }
        }
        let mut origins = vec!["annotation".to_string(); masks.len()];
        let mut scores = vec![None; masks.len()];
        if let Some(loc) = &self.locator {
            // masks the locator finds join the annotated ones (a structure found both ways is listed twice)
            let grid = medgrain_roi::measure::Grid { shape, affine: &affine };
            let found = self.located(loc.as_ref(), rel, &values.dense(), grid)?;
            for m in found {
                masks.push((m.name, BoxMask::from_bools(shape, &m.mask)));
                origins.push(loc.name().to_string());
                scores.push(m.score);
            }
        }
        // organ context: binary organ masks on the volume's grid, one label each (later files win on overlap)
        let mut organ_labels = Vec::new();
        let mut organ_names = Vec::new();
        if with_values {
            for op in self.files_for(self.cfg.organs.as_deref(), rel) {
                let (mheader, raw) = medgrain_imaging::nifti_read::read_nifti_mask(&op, &mut scratch)
                    .map_err(|e| SampleError::new("mask", e.to_string()))?;
                let mshape: Vec<usize> = mheader.shape.iter().take(3).copied().collect();
                if mshape != shape.to_vec() || !affine_close(&mheader.best_affine(), &affine) {
                    return Err(SampleError::new(
                        "mask",
                        format!("{}: organ mask grid differs from the volume's", op.display()),
                    ));
                }
                if organ_names.len() >= u16::MAX as usize - 1 {
                    break;
                }
                if organ_labels.is_empty() {
                    organ_labels = vec![0u16; n];
                }
                organ_names.push(mask_name(&op));
                let k = organ_names.len() as u16;
                raw.for_each_positive(|i| {
                    if let Some(l) = organ_labels.get_mut(i) {
                        *l = k;
                    }
                });
            }
        }
        let v = Arc::new(Volume {
            shape,
            affine,
            values,
            masks,
            origins,
            scores,
            organ_labels,
            organ_names,
            modality,
            keys,
            facts,
            percentile: std::sync::OnceLock::new(),
        });
        if !with_values && !self.dicom && self.locator.is_none() {
            return Ok(v); // a listing read is not a complete volume: keep it out of the cache
        }
        if let Ok(mut guard) = self.cache.lock() {
            if guard.len() >= CACHED_VOLUMES {
                guard.remove(0);
            }
            guard.push((rel.to_string(), v.clone()));
        }
        Ok(v)
    }

    /// The series a `dicom-series` key names: `DIR` (the folder's only series) or `DIR#SERIES_UID`.
    fn read_series(&self, rel: &str) -> Result<medgrain_imaging::dicom_series::SeriesVolume, SampleError> {
        let (dir, uid) = match rel.split_once('#') {
            Some((d, u)) => (d, Some(u)),
            None => (rel, None),
        };
        let path = self.root.join(dir);
        let (series, _unreadable) = medgrain_imaging::dicom_series::read_series_dir(&path)
            .map_err(|e| SampleError::new("image", e.to_string()))?;
        let mut found = Vec::new();
        for s in series {
            match s {
                Ok(v) if uid.is_none_or(|u| u == v.series_uid) => found.push(v),
                Ok(_) => {}
                Err(e) if uid.is_none() => return Err(SampleError::new("image", e.to_string())),
                Err(_) => {}
            }
        }
        let v = match (found.len(), uid) {
            (1, _) => found.remove(0),
            (0, Some(u)) => {
                return Err(SampleError::new(
                    "image",
                    format!("{}: no readable series {u}", path.display()),
                ))
            }
            (0, None) => {
                return Err(SampleError::new(
                    "image",
                    format!("{}: no readable DICOM series", path.display()),
                ))
            }
            (k, _) => {
                return Err(SampleError::new(
                    "image",
                    format!(
                        "{}: {k} series in one folder; list them as DIR#SERIES_UID",
                        path.display()
                    ),
                ))
            }
        };
        if let Some((at, step)) = v.gaps.first() {
            return Err(SampleError::new(
                "image",
                format!(
                    "{}: series {} has a {step:.2} mm gap before slice {at} (median step {:.2} mm): its slices are not on one grid",
                    path.display(),
                    v.series_uid,
                    v.spacing[2]
                ),
            ));
        }
        Ok(v)
    }

    /// Volume keys: NIfTI files matching `images`, or for `dicom-series` the matching folders — `DIR` when the
    /// folder holds one series, `DIR#SERIES_UID` for each when it holds several.
    fn volume_keys(&self) -> Result<crate::sources::sample::Listing, PipelineError> {
        if !self.dicom {
            return crate::sources::sample::list_files(&self.root, &self.cfg.images, &self.cfg.name);
        }
        let (dirs, unreadable) = crate::sources::sample::list_dirs(&self.root, &self.cfg.images, &self.cfg.name)?;
        let mut keys = Vec::new();
        for d in dirs {
            let uids = medgrain_imaging::dicom_series::series_uids(&self.root.join(&d)).unwrap_or_default();
            if uids.len() > 1 {
                keys.extend(uids.into_iter().map(|u| format!("{d}#{u}")));
            } else {
                keys.push(d);
            }
        }
        Ok((keys, unreadable))
    }

    fn slices_of(&self, v: &Volume) -> Vec<usize> {
        let layout = SliceLayout::new(self.plane, v.shape, &v.affine);
        let step = self.cfg.step.unwrap_or(1).max(1);
        let ax = layout.slice_axis;
        let counts = |m: &BoxMask| {
            let mut c = vec![0usize; layout.slices];
            m.for_each(|p| c[p[ax]] += 1);
            c
        };
        let mut out: Vec<usize> = match self.cfg.select.as_deref().unwrap_or("largest") {
            "every" => (0..layout.slices).step_by(step).collect(),
            "roi" => {
                let mut any = vec![false; layout.slices];
                for (_, m) in &v.masks {
                    for (s, c) in counts(m).into_iter().enumerate() {
                        any[s] |= c > 0;
                    }
                }
                (0..layout.slices).filter(|&s| any[s]).step_by(step).collect()
            }
            _ => v
                .masks
                .iter()
                .filter_map(|(_, m)| {
                    let c = counts(m);
                    let best = (0..c.len()).max_by_key(|&s| (c[s], std::cmp::Reverse(s)))?;
                    (c[best] > 0).then_some(best)
                })
                .collect(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl SampleSource for NiftiVolumeSource {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn license(&self) -> Option<&str> {
        self.cfg.license.as_deref()
    }

    fn list(&self) -> Result<Vec<SampleRef>, PipelineError> {
        let (vols, unreadable) = self.volume_keys()?;
        let mut out = Vec::new();
        for rel in vols {
            match self.read(&rel, false) {
                Ok(v) => {
                    for s in self.slices_of(&v) {
                        out.push(SampleRef {
                            rel_path: rel.clone(),
                            slice: Some(SliceRef {
                                axis: self.plane.name().into(),
                                index: s as i32,
                            }),
                            listing_error: None,
                        });
                    }
                }
                Err(e) => out.push(SampleRef {
                    rel_path: rel.clone(),
                    slice: None,
                    listing_error: Some(e),
                }),
            }
        }
        out.extend(unreadable.into_iter().map(|(rel_path, e)| SampleRef {
            rel_path,
            slice: None,
            listing_error: Some(SampleError::new("enumerate", e)),
        }));
        Ok(out)
    }

    fn load(&self, sample: &SampleRef) -> Result<LoadedSample, SampleError> {
        if let Some(e) = &sample.listing_error {
            return Err(e.clone());
        }
        let v = self.read(&sample.rel_path, true)?;
        let s = sample.slice.as_ref().map(|s| s.index.max(0) as usize).unwrap_or(0);
        let layout = SliceLayout::new(self.plane, v.shape, &v.affine);
        if s >= layout.slices {
            return Err(SampleError::new(
                "image",
                format!("slice {s} is outside 0..{}", layout.slices),
            ));
        }
        // the voxel under each display pixel, once; masks whose box misses the slice are skipped
        let under: Vec<[usize; 3]> = (0..layout.width * layout.height)
            .map(|i| layout.voxel(s, i / layout.width, i % layout.width))
            .collect();
        let [nx, ny, _] = v.shape;
        let values: Vec<f64> = under
            .iter()
            .map(|p| v.values.get(p[0] + nx * (p[1] + ny * p[2])))
            .collect();
        let window = self.cfg.window.as_deref().unwrap_or("mediastinum");
        let (centre, width) = match ct_window(window) {
            Some(w) => w,
            None => *v.percentile.get_or_init(|| {
                let (lo, hi) = percentile_window(&v.values.dense(), 0.5);
                ((lo + hi) / 2.0, hi - lo)
            }),
        };
        let pixels: Vec<u8> = values.iter().map(|&x| apply_window(x, centre, width)).collect();
        let sample_mask = |m: &BoxMask| -> Option<Vec<bool>> {
            m.touches(layout.slice_axis, s)
                .then(|| under.iter().map(|&p| m.contains(p)).collect())
        };
        let mut labels = vec![0u32; layout.width * layout.height];
        for (k, (_, m)) in v.masks.iter().enumerate() {
            for (i, on) in sample_mask(m).into_iter().flatten().enumerate() {
                if on {
                    labels[i] = k as u32 + 1;
                }
            }
        }
        let world = |p: [usize; 3]| -> [f64; 3] {
            let a = &v.affine;
            std::array::from_fn(|r| a[r][0] * p[0] as f64 + a[r][1] * p[1] as f64 + a[r][2] * p[2] as f64 + a[r][3])
        };
        let world_of_col: Vec<[f64; 3]> = (0..layout.width)
            .map(|c| world(layout.voxel(s, layout.height / 2, c)))
            .collect();
        let world_of_row: Vec<[f64; 3]> = (0..layout.height)
            .map(|r| world(layout.voxel(s, r, layout.width / 2)))
            .collect();
        let (volume_centre, volume_fov) = {
            let lo = world([0, 0, 0]);
            let hi = world(v.shape.map(|n| n.saturating_sub(1)));
            (
                std::array::from_fn(|a| (lo[a] + hi[a]) / 2.0),
                std::array::from_fn(|a| (hi[a] - lo[a]).abs()),
            )
        };
        // The patient's own midline on this slice (the spine's, else the body's), not the field of view's centre:
        // patients are often not centred.
        let midline_x = {
            let is_spine = |n: &str| {
                let n = n.to_ascii_lowercase();
                n.starts_with("vertebra") || n == "spinal_cord" || n == "spinal cord" || n == "sacrum"
            };
            let mut spine = vec![false; layout.width * layout.height];
            for (_, m) in v.masks.iter().filter(|(n, _)| is_spine(n)) {
                for (i, on) in sample_mask(m).into_iter().flatten().enumerate() {
                    spine[i] |= on;
                }
            }
            if v.organ_names.iter().any(|n| is_spine(n)) {
                for (i, l) in layout.sample(&v.organ_labels, v.shape, s).into_iter().enumerate() {
                    if l > 0 && v.organ_names.get(l as usize - 1).is_some_and(|n| is_spine(n)) {
                        spine[i] = true;
                    }
                }
            }
            let world_x: Vec<f64> = (0..layout.width * layout.height)
                .map(|i| world(layout.voxel(s, i / layout.width, i % layout.width))[0])
                .collect();
            medgrain_roi::position::patient_midline_x(&world_x, &spine, &values, layout.width, layout.height)
                .unwrap_or(volume_centre[0])
        };
        let d = &self.cfg.defaults;
        // The findings this slice shows: the masks with voxels in it.
        let mut present = vec![false; v.masks.len()];
        for &l in &labels {
            if l > 0 {
                present[l as usize - 1] = true;
            }
        }
        let diseases: Vec<String> = v
            .masks
            .iter()
            .zip(&present)
            .filter(|(_, &p)| p)
            .map(|((n, _), _)| n.clone())
            .collect();
        Ok(LoadedSample {
            bytes: Vec::new(),
            raster: Raster {
                width: layout.width as u32,
                height: layout.height as u32,
                channels: 1,
                data: PixelData::U8(pixels),
                format: "nifti",
            },
            mask: Some(LabelMap {
                width: layout.width as u32,
                height: layout.height as u32,
                labels,
            }),
            meta: SampleMeta {
                modality: d.modality.clone().or(v.modality.map(str::to_string)),
                organ: d.organ.clone(),
                diseases: if diseases.is_empty() {
                    d.disease.iter().cloned().collect()
                } else {
                    diseases
                },
                notes: Some(format!("{} slice {s}, window {window}", self.plane.name())),
                keys: v.keys.clone(),
                study_facts: v.facts.clone(),
            },
            label_names: Some(v.masks.iter().map(|(n, _)| n.clone()).collect()),
            label_origins: Some(v.origins.clone()),
            label_scores: Some(v.scores.clone()),
            geometry: Some(SliceGeometry {
                organs: (!v.organ_names.is_empty())
                    .then(|| (layout.sample(&v.organ_labels, v.shape, s), v.organ_names.clone())),
                pixel_mm: layout.pixel_mm,
                midline_x,
                world_of_col,
                world_of_row,
                volume_centre,
                volume_fov,
                values,
            }),
        })
    }

    fn label_name(&self, label: u32, _meta: &SampleMeta) -> String {
        format!("region {label}")
    }

    fn roi_options(&self) -> medgrain_roi::RoiOptions {
        crate::sources::sample::roi_options(&self.cfg)
    }

    fn input_files(&self, sample: &SampleRef) -> Vec<(String, PathBuf)> {
        let rel_of = |p: &Path| {
            p.strip_prefix(&self.root)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        };
        let mut v = Vec::new();
        if self.dicom {
            // a series folder (`DIR` or `DIR#UID`): its files
            let dir = self.root.join(sample.rel_path.split('#').next().unwrap_or(""));
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            v.extend(files.into_iter().map(|p| (rel_of(&p), p)));
        } else {
            v.push((sample.rel_path.clone(), self.root.join(&sample.rel_path)));
        }
        v.extend(self.mask_files(&sample.rel_path).into_iter().map(|p| (rel_of(&p), p)));
        v
    }
}
