//! `kind = "image-folder"`: a folder of 2D images (PNG/JPEG/TIFF, DICOM files), with masks, COCO annotations, box
//! CSVs or an expert segmenter for the ROIs and a metadata CSV.

use super::sample::{list_files, roi_options, LoadedSample, SampleError, SampleMeta, SampleRef, SampleSource};
use crate::config::{LoadedConfig, SourceConfig};
use crate::PipelineError;
use medgrain_imaging::{decode_raster, read_label_map, LabelMap};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A folder of images with optional masks and a metadata CSV (`kind = "image-folder"`).
pub struct ImageFolderSource {
    cfg: SourceConfig,
    root: PathBuf,
    metadata: HashMap<String, SampleMeta>,
    /// Samples that exist only as problems found in the metadata file.
    metadata_problems: Vec<SampleRef>,
    /// COCO regions per image (`annotations = "instances.json"`).
    annotations: Option<crate::sources::coco::Annotations>,
    /// An expert segmenter for images without a mask (`locator = "expert:onnx"`).
    locator: Option<std::sync::Arc<dyn medgrain_roi::locate::RoiLocator>>,
    /// De-identification of DICOM headers (`deid`).
    deid: Option<medgrain_deid::Deidentifier>,
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
fn annotations_for<'a>(
    a: &'a crate::sources::coco::Annotations,
    rel: &str,
) -> Option<&'a Vec<crate::sources::coco::Region>> {
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
            locator: crate::sources::volume::open_locator(cfg, loaded)?,
            deid: crate::dicom_meta::source_deidentifier(cfg, loaded)?,
        };
        if let Some(a) = &cfg.annotations {
            let path = src.root.join(a);
            let read = if a.ends_with(".csv") {
                crate::sources::boxes_csv::read_box_csv(&path, &cfg.box_columns.clone().unwrap_or_default())
            } else {
                crate::sources::coco::read_coco(&path)
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
                keys: headers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| ![Some(file_col), mod_col, org_col, dis_col, notes_col].contains(&Some(*i)))
                    .filter_map(|(i, h)| field(Some(i)).map(|v| (h.trim().to_string(), v.to_string())))
                    .collect(),
                study_facts: None,
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
                keys: Default::default(),
                study_facts: None,
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
        let mut dicom_facts = crate::dicom_meta::HeaderFacts::default();
        let (raster, bytes, dicom_modality, dicom_locator_image) = if medgrain_imaging::dicom::is_dicom(&bytes) {
            // DICOM: the first frame, rendered for display (modality LUT, the source's CT window preset or else the
            // file's VOI window, MONOCHROME1 inverted); the record stores that rendering as PNG.
            let img = medgrain_imaging::dicom::read_dicom(&path).map_err(|e| image_err(e.to_string()))?;
            let window = self.cfg.window.as_deref().and_then(medgrain_imaging::render::ct_window);
            let r = img
                .render_frame(0, window)
                .map_err(|e| image_err(format!("{}: {e}", path.display())))?;
            let modality = img.modality.as_deref().and_then(medgrain_imaging::dicom::modality_name);
            dicom_facts = crate::dicom_meta::header_facts(&img.header, self.deid.as_ref())
                .map_err(|e| SampleError::new("deid", e))?;
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
                let (m, names) =
                    crate::sources::coco::label_map(regions, raster.height as usize, raster.width as usize)
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
                m.keys.extend(dicom_facts.keys);
                m.study_facts = dicom_facts.facts;
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

    fn input_files(&self, sample: &SampleRef) -> Vec<(String, PathBuf)> {
        let mut v = vec![(sample.rel_path.clone(), self.root.join(&sample.rel_path))];
        if let Some(m) = self.mask_path(&sample.rel_path).filter(|m| m.is_file()) {
            let rel = m
                .strip_prefix(&self.root)
                .unwrap_or(&m)
                .to_string_lossy()
                .replace('\\', "/");
            v.push((rel, m));
        }
        v
    }
}
