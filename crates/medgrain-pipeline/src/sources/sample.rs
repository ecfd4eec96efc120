//! What every source shares: a sample reference, a loaded sample with its metadata and slice geometry, the
//! [`SampleSource`] trait, file listing and the ROI options of a source's config.

use crate::config::SourceConfig;
pub use crate::engine::error::SampleError;
use crate::PipelineError;
use medgrain_imaging::{LabelMap, Raster};
use std::path::Path;

/// One sample to process: its path relative to the source root, or an error found while listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    pub rel_path: String,
    /// For samples cut from volumes: the plane and slice index.
    pub slice: Option<medgrain_records::SliceRef>,
    /// A problem found while listing (e.g. a metadata row naming a missing file): the sample fails with it.
    pub listing_error: Option<SampleError>,
}

/// Metadata of one image after defaults are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleMeta {
    pub modality: Option<String>,
    pub organ: Option<String>,
    pub diseases: Vec<String>,
    pub notes: Option<String>,
    /// Other metadata a split can be keyed on: every other column of the source's metadata CSV, and `PatientID` /
    /// `StudyInstanceUID` read from DICOM.
    pub keys: std::collections::BTreeMap<String, String>,
    /// What a DICOM header says about the study ("DICOM header: study …; patient …."), de-identified when the
    /// source has `deid` on; the coarse caption ends with it.
    pub study_facts: Option<String>,
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
    /// The input files a sample is made from, as (path relative to the source root, full path): what `build` hashes
    /// into `inputs.jsonl`. Files shared by every sample (a metadata CSV, annotations) are not listed here; the
    /// build hashes them once.
    fn input_files(&self, sample: &SampleRef) -> Vec<(String, std::path::PathBuf)>;
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
