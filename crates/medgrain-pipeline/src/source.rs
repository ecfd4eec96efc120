//! Sample sources: where samples come from and how one is loaded. A source lists its samples (sorted, so ids and
//! shards are deterministic) and loads one at a time, reporting failures per sample with the stage that failed.
//! New sources (DICOM series, NIfTI volumes, WebDataset, ...) implement [`SampleSource`].

use crate::config::{LoadedConfig, SourceConfig};
use crate::PipelineError;
use medgrain_imaging::{decode_raster, read_label_map, LabelMap, Raster};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One sample to process: its path relative to the source root, or an error found while listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    pub rel_path: String,
    /// For samples cut from volumes: the plane and slice index.
    pub slice: Option<medgrain_records::SliceRef>,
    /// A problem found while listing (e.g. a metadata row naming a missing file): the sample fails with it.
    pub listing_error: Option<SampleError>,
}

/// A per-sample failure: the stage and the reason. It becomes one line of `errors.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleError {
    pub stage: &'static str,
    pub message: String,
}

impl SampleError {
    pub fn new(stage: &'static str, message: impl Into<String>) -> Self {
        SampleError {
            stage,
            message: message.into(),
        }
    }
}

/// Metadata of one image after defaults are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleMeta {
    pub modality: Option<String>,
    pub organ: Option<String>,
    pub diseases: Vec<String>,
    pub notes: Option<String>,
}

/// A loaded sample: original file bytes, decoded pixels, optional label map, metadata.
#[derive(Debug, Clone)]
pub struct LoadedSample {
    pub bytes: Vec<u8>,
    pub raster: Raster,
    pub mask: Option<LabelMap>,
    pub meta: SampleMeta,
    /// Names of the mask's label values (value − 1 indexes it) when they differ per sample.
    pub label_names: Option<Vec<String>>,
    /// Where each label's mask came from (value − 1 indexes it), when not all from annotations: e.g.
    /// `classical:ct-lung` for masks a locator found. ROIs carry it as `origin`.
    pub label_origins: Option<Vec<String>>,
    /// The locator's confidence per label (value − 1 indexes it; experts only). ROIs carry it as `score`.
    pub label_scores: Option<Vec<Option<f64>>>,
    /// Patient geometry of a slice cut from a volume.
    pub geometry: Option<SliceGeometry>,
}

/// What a slice of a volume knows about the patient: pixel size, the x of the patient midline (RAS, mm), the
/// unwindowed values (HU for CT) in display order, and where its columns and rows lie in the patient.
#[derive(Debug, Clone)]
pub struct SliceGeometry {
    pub pixel_mm: f64,
    pub midline_x: f64,
    pub values: Vec<f64>,
    /// World position (RAS mm) of each display column at the middle row (its x gives the side), and of each row at
    /// the middle column; with the volume's centre and field of view per world axis, for patient-frame positions.
    pub world_of_col: Vec<[f64; 3]>,
    pub world_of_row: Vec<[f64; 3]>,
    pub volume_centre: [f64; 3],
    pub volume_fov: [f64; 3],
    /// Organ label per display pixel (0 = none; value − 1 indexes the names), when the source has organ masks.
    pub organs: Option<(Vec<u16>, Vec<String>)>,
}

/// A source of 2D samples.
pub trait SampleSource: Send + Sync {
    fn name(&self) -> &str;
    fn license(&self) -> Option<&str>;
    /// All samples, sorted by `rel_path`.
    fn list(&self) -> Result<Vec<SampleRef>, PipelineError>;
    fn load(&self, sample: &SampleRef) -> Result<LoadedSample, SampleError>;
    /// The name of a mask label value in this sample.
    fn label_name(&self, label: u32, meta: &SampleMeta) -> String;
    /// ROI options for this source.
    fn roi_options(&self) -> medgrain_roi::RoiOptions;
}

/// A folder of images with optional masks and a metadata CSV (`kind = "image-folder"`).
pub struct ImageFolderSource {
    cfg: SourceConfig,
    root: PathBuf,
    metadata: HashMap<String, SampleMeta>,
    /// Samples that exist only as problems found in the metadata file.
    metadata_problems: Vec<SampleRef>,
    /// COCO regions per image (`annotations = "instances.json"`).
    annotations: Option<crate::coco::Annotations>,
    /// An expert segmenter for images without a mask (`locator = "expert:onnx"`).
    locator: Option<std::sync::Arc<dyn medgrain_roi::locate::RoiLocator>>,
}

fn normalise_rel(p: &str) -> String {
    let p = p.trim().replace('\\', "/");
    p.trim_start_matches("./").to_string()
}

fn split_diseases(v: &str) -> Vec<String> {
    v.split([';', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An image's regions: by its path relative to the root, else by its file stem (box CSVs name images by id).
fn annotations_for<'a>(a: &'a crate::coco::Annotations, rel: &str) -> Option<&'a Vec<crate::coco::Region>> {
    a.get(rel).or_else(|| {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
        a.get(stem)
    })
}

impl ImageFolderSource {
    pub fn open(cfg: &SourceConfig, loaded: &LoadedConfig) -> Result<Self, PipelineError> {
        let root = loaded.resolve(&cfg.root);
        if !root.is_dir() {
            return Err(PipelineError::Config {
                path: loaded.path.clone(),
                reason: format!("source {:?}: root {} is not a folder", cfg.name, root.display()),
            });
        }
        let mut src = ImageFolderSource {
            cfg: cfg.clone(),
            root,
            metadata: HashMap::new(),
            metadata_problems: Vec::new(),
            annotations: None,
            locator: crate::volume_source::open_locator(cfg, loaded)?,
        };
        if let Some(a) = &cfg.annotations {
            let path = src.root.join(a);
            let read = if a.ends_with(".csv") {
                crate::boxes_csv::read_box_csv(&path, &cfg.box_columns.clone().unwrap_or_default())
            } else {
                crate::coco::read_coco(&path)
            };
            src.annotations = Some(read.map_err(|reason| PipelineError::Config {
                path: loaded.path.clone(),
                reason: format!("source {:?}: annotations: {reason}", cfg.name),
            })?);
        }
        if let Some(m) = &cfg.metadata {
            let path = src.root.join(m);
            src.read_metadata(&path, loaded)?;
        }
        Ok(src)
    }

    fn read_metadata(&mut self, path: &Path, loaded: &LoadedConfig) -> Result<(), PipelineError> {
        let cfg_err = |reason: String| PipelineError::Config {
            path: loaded.path.clone(),
            reason,
        };
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| cfg_err(format!("source {:?}: metadata {}: {e}", self.cfg.name, path.display())))?;
        let headers = rdr
            .headers()
            .map_err(|e| cfg_err(format!("source {:?}: metadata {}: {e}", self.cfg.name, path.display())))?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let c = &self.cfg.columns;
        let file_col = col(&c.file).ok_or_else(|| {
            cfg_err(format!(
                "source {:?}: metadata {} has no column {:?} (columns.file); its columns are {:?}",
                self.cfg.name,
                path.display(),
                c.file,
                headers.iter().collect::<Vec<_>>()
            ))
        })?;
        let (mod_col, org_col, dis_col, notes_col) = (col(&c.modality), col(&c.organ), col(&c.disease), col(&c.notes));
        let meta_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for rec in rdr.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    self.metadata_problems.push(SampleRef {
                        slice: None,
                        rel_path: format!("{meta_name}#line{line}"),
                        listing_error: Some(SampleError::new(
                            "metadata",
                            format!("{}: line {line}: {e}", path.display()),
                        )),
                    });
                    continue;
                }
            };
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let field = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::trim).filter(|s| !s.is_empty());
            let Some(file) = field(Some(file_col)).map(normalise_rel) else {
                self.metadata_problems.push(SampleRef {
                    slice: None,
                    rel_path: format!("{meta_name}#line{line}"),
                    listing_error: Some(SampleError::new(
                        "metadata",
                        format!("{}: line {line}: empty {:?} field", path.display(), c.file),
                    )),
                });
                continue;
            };
            if let Some(first) = first_line.get(&file) {
                self.metadata_problems.push(SampleRef {
                    slice: None,
                    rel_path: format!("{meta_name}#line{line}"),
                    listing_error: Some(SampleError::new(
                        "metadata",
                        format!(
                            "{}: line {line}: duplicate row for {file} (first at line {first}); the first is used",
                            path.display()
                        ),
                    )),
                });
                continue;
            }
            first_line.insert(file.clone(), line);
            let d = &self.cfg.defaults;
            let meta = SampleMeta {
                modality: field(mod_col).map(str::to_string).or_else(|| d.modality.clone()),
                organ: field(org_col).map(str::to_string).or_else(|| d.organ.clone()),
                diseases: field(dis_col)
                    .map(split_diseases)
                    .or_else(|| d.disease.as_deref().map(split_diseases))
                    .unwrap_or_default(),
                notes: field(notes_col).map(str::to_string),
            };
            if !self.root.join(&file).is_file() {
                self.metadata_problems.push(SampleRef {
                    slice: None,
                    rel_path: file.clone(),
                    listing_error: Some(SampleError::new(
                        "metadata",
                        format!(
                            "{}: line {line} names {file}, which does not exist under {}",
                            path.display(),
                            self.root.display()
                        ),
                    )),
                });
            }
            self.metadata.insert(file, meta);
        }
        Ok(())
    }

    fn mask_path(&self, rel: &str) -> Option<PathBuf> {
        let pattern = self.cfg.masks.as_ref()?;
        let p = Path::new(rel);
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = p
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir = p.parent().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        Some(
            self.root.join(
                pattern
                    .replace("{stem}", &stem)
                    .replace("{name}", &name)
                    .replace("{dir}", &dir),
            ),
        )
    }

    fn meta_for(&self, rel: &str) -> SampleMeta {
        self.metadata.get(rel).cloned().unwrap_or_else(|| {
            let d = &self.cfg.defaults;
            SampleMeta {
                modality: d.modality.clone(),
                organ: d.organ.clone(),
                diseases: d.disease.as_deref().map(split_diseases).unwrap_or_default(),
                notes: None,
            }
        })
    }
}

impl SampleSource for ImageFolderSource {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn license(&self) -> Option<&str> {
        self.cfg.license.as_deref()
    }

    fn list(&self) -> Result<Vec<SampleRef>, PipelineError> {
        let (files, unreadable) = list_files(&self.root, &self.cfg.images, &self.cfg.name)?;
        let mut out: Vec<SampleRef> = files
            .into_iter()
            .map(|rel_path| SampleRef {
                rel_path,
                slice: None,
                listing_error: None,
            })
            .collect();
        out.extend(unreadable.into_iter().map(|(rel_path, e)| SampleRef {
            rel_path,
            slice: None,
            listing_error: Some(SampleError::new("enumerate", e)),
        }));
        out.extend(self.metadata_problems.iter().cloned());
        out.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        // A metadata row naming a missing file and a listed file never collide (the file does not exist).
        out.dedup_by(|a, b| a.rel_path == b.rel_path && a.listing_error == b.listing_error);
        Ok(out)
    }

    fn load(&self, sample: &SampleRef) -> Result<LoadedSample, SampleError> {
        if let Some(e) = &sample.listing_error {
            return Err(e.clone());
        }
        let path = self.root.join(&sample.rel_path);
        let bytes = std::fs::read(&path).map_err(|e| SampleError::new("image", format!("{}: {e}", path.display())))?;
        let image_err = |e: String| SampleError::new("image", e);
        let (raster, bytes, dicom_modality, dicom_locator_image) = if medgrain_imaging::dicom::is_dicom(&bytes) {
            // DICOM: the first frame, rendered for display (modality LUT, the source's CT window preset or else the
            // file's VOI window, MONOCHROME1 inverted); the record stores that rendering as PNG.
            let img = medgrain_imaging::dicom::read_dicom(&path).map_err(|e| image_err(e.to_string()))?;
            let window = self.cfg.window.as_deref().and_then(medgrain_imaging::render::ct_window);
            let r = img
                .render_frame(0, window)
                .map_err(|e| image_err(format!("{}: {e}", path.display())))?;
            let modality = img.modality.as_deref().and_then(medgrain_imaging::dicom::modality_name);
            // an expert sees the DICOM's own values (HU for CT), not the display rendering
            let for_locator = self
                .locator
                .as_ref()
                .map(|_| crate::rois::LocatorImage::from_dicom(&img, &r));
            (r, Vec::new(), modality, for_locator)
        } else {
            let r = decode_raster(&bytes, &path).map_err(|e| image_err(e.to_string()))?;
            (r, bytes, None, None)
        };
        let mut label_names = None;
        let from_coco = match self.annotations.as_ref().map(|a| annotations_for(a, &sample.rel_path)) {
            Some(Some(regions)) => {
                let (m, names) = crate::coco::label_map(regions, raster.height as usize, raster.width as usize)
                    .map_err(|e| SampleError::new("mask", format!("{}: {e}", sample.rel_path)))?;
                label_names = Some(names);
                Some(m)
            }
            _ => None,
        };
        let mask = match self.mask_path(&sample.rel_path) {
            _ if from_coco.is_some() => from_coco,
            None => None,
            Some(mp) if !mp.exists() => {
                if self.cfg.require_masks {
                    return Err(SampleError::new(
                        "mask",
                        format!("{}: mask file not found", mp.display()),
                    ));
                }
                None
            }
            Some(mp) => {
                let mb = std::fs::read(&mp).map_err(|e| SampleError::new("mask", format!("{}: {e}", mp.display())))?;
                if mb.is_empty() {
                    return Err(SampleError::new(
                        "mask",
                        format!("{}: mask file is empty", mp.display()),
                    ));
                }
                let m = read_label_map(&mb, &mp).map_err(|e| SampleError::new("mask", e.to_string()))?;
                if (m.width, m.height) != (raster.width, raster.height) {
                    return Err(SampleError::new(
                        "mask",
                        format!(
                            "{}: mask is {}×{} but the image is {}×{}",
                            mp.display(),
                            m.width,
                            m.height,
                            raster.width,
                            raster.height
                        ),
                    ));
                }
                Some(m)
            }
        };
        let (mut label_origins, mut label_scores) = (None, None);
        let mask = match (mask, &self.locator) {
            (None, Some(loc)) => {
                // no annotation: the expert segments the image (a volume of depth 1, see `LocatorImage`)
                let (w, h) = (raster.width as usize, raster.height as usize);
                let image = dicom_locator_image.unwrap_or_else(|| crate::rois::LocatorImage::from_raster(&raster));
                let found = crate::rois::locate_2d(loc.as_ref(), &image)
                    .map_err(|e| SampleError::new("locator", e.to_string()))?;
                let mut labels = vec![0u32; w * h];
                for (i, m) in found.iter().enumerate() {
                    for (l, &b) in labels.iter_mut().zip(&m.mask) {
                        if b {
                            *l = i as u32 + 1;
                        }
                    }
                }
                label_names = Some(found.iter().map(|m| m.name.clone()).collect());
                label_origins = Some(vec![loc.name().to_string(); found.len()]);
                label_scores = Some(found.iter().map(|m| m.score).collect());
                Some(LabelMap {
                    width: raster.width,
                    height: raster.height,
                    labels,
                })
            }
            (m, _) => m,
        };
        Ok(LoadedSample {
            bytes,
            raster,
            mask,
            meta: {
                let mut m = self.meta_for(&sample.rel_path);
                if m.modality.is_none() {
                    m.modality = dicom_modality.map(str::to_string);
                }
                m
            },
            label_names,
            label_origins,
            label_scores,
            geometry: None,
        })
    }

    fn label_name(&self, label: u32, meta: &SampleMeta) -> String {
        if let Some(n) = self.cfg.labels.get(&label.to_string()) {
            return n.clone();
        }
        let abnormal: Vec<&String> = meta
            .diseases
            .iter()
            .filter(|d| !medgrain_generate::is_normal(d))
            .collect();
        match abnormal.as_slice() {
            [one] => (*one).clone(),
            _ => format!("region {label}"),
        }
    }

    fn roi_options(&self) -> medgrain_roi::RoiOptions {
        roi_options(&self.cfg)
    }
}

/// Matching files, and `(path, reason)` for paths the glob could not read.
pub(crate) type Listing = (Vec<String>, Vec<(String, String)>);

/// Files under `root` matching the glob `pattern` (paths relative to `root`, `/`-separated, sorted), and the
/// paths the glob could not read with the reason.
pub(crate) fn list_files(root: &Path, pattern: &str, source: &str) -> Result<Listing, PipelineError> {
    list_matching(root, pattern, source, Path::is_file)
}

/// Folders under `root` matching the glob `pattern` (for `dicom-series` sources), like [`list_files`].
pub(crate) fn list_dirs(root: &Path, pattern: &str, source: &str) -> Result<Listing, PipelineError> {
    list_matching(root, pattern, source, Path::is_dir)
}

fn list_matching(root: &Path, pattern: &str, source: &str, keep: fn(&Path) -> bool) -> Result<Listing, PipelineError> {
    let full = format!("{}/{}", glob::Pattern::escape(&root.to_string_lossy()), pattern);
    let entries = glob::glob(&full).map_err(|e| PipelineError::Config {
        path: root.to_path_buf(),
        reason: format!("source {source:?}: images pattern: {e}"),
    })?;
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_string_lossy().replace('\\', "/");
    let (mut found, mut unreadable) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry {
            Ok(p) if keep(&p) => found.push(rel(&p)),
            Ok(_) => {}
            Err(e) => unreadable.push((rel(e.path()), e.to_string())),
        }
    }
    found.sort();
    Ok((found, unreadable))
}

/// The ROI options of a source's `[source.rois]` table.
pub(crate) fn roi_options(cfg: &SourceConfig) -> medgrain_roi::RoiOptions {
    medgrain_roi::RoiOptions {
        connectivity: cfg.rois.connectivity,
        unit: if cfg.rois.unit == "label" {
            medgrain_roi::RoiUnit::Label
        } else {
            medgrain_roi::RoiUnit::Component
        },
        min_area_px: cfg.rois.min_area_px,
        ..Default::default()
    }
}

/// Opens the source a config table describes.
pub fn open_source(cfg: &SourceConfig, loaded: &LoadedConfig) -> Result<Box<dyn SampleSource>, PipelineError> {
    open_source_in(cfg, loaded, None)
}

/// Opens a source for a build into OUT: `work` (`OUT/.medgrain`) keeps what a volume source's locator found, so
/// that it runs once per volume and build (see [`crate::located_cache`]).
pub fn open_source_in(
    cfg: &SourceConfig,
    loaded: &LoadedConfig,
    work: Option<&Path>,
) -> Result<Box<dyn SampleSource>, PipelineError> {
    match cfg.kind.as_str() {
        "image-folder" => Ok(Box::new(ImageFolderSource::open(cfg, loaded)?)),
        "nifti" | "dicom-series" => {
            let mut src = crate::volume_source::NiftiVolumeSource::open(cfg, loaded)?;
            if src.has_locator() {
                let key = crate::run::sha256_hex([cfg.name.as_str()]);
                src.located_dir = work.map(|w| w.join("located").join(&key[..16]));
            }
            Ok(Box::new(src))
        }
        other => Err(PipelineError::Config {
            path: loaded.path.clone(),
            reason: format!("unknown source kind {other:?}"),
        }),
    }
}
