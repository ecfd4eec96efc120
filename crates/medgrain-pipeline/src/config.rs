//! The build configuration (`medgrain build CONFIG.toml`): recipe, output sharding, sources, generator.
//! Unknown keys are rejected; errors name the file, the key and the line. Relative paths are resolved against
//! the directory of the config file.

use crate::PipelineError;
use medgrain_roi::locate::LocatorName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The recipes a config can name; each has its module in [`crate::recipes`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// MedTrinity-25M: image + ROIs + five-part description ([`crate::recipes::triplets`]).
    #[default]
    Triplets,
    /// RadGenome-Chest CT: grounded report sentences, VQA, structured findings
    /// ([`crate::recipes::grounded_reports`]); its inputs are the `[reports]` table.
    GroundedReports,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Which recipe the build runs (`recipe = "triplets"` or `"grounded-reports"`).
    #[serde(default)]
    pub recipe: Recipe,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub generator: GeneratorConfig,
    /// The inputs of `recipe = "grounded-reports"`.
    pub reports: Option<ReportsConfig>,
    /// Retrieval of knowledge passages for triplets (optional).
    pub knowledge: Option<KnowledgeConfig>,
    /// Train / validation / test assignment of every row (optional; rows carry `split = null` without it).
    pub splits: Option<SplitsConfig>,
}

/// What a split keeps together.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SplitBy {
    /// Every image of one patient in one split (`key`: a metadata column, or DICOM `PatientID`, the default).
    Patient,
    /// Every image of one study (`key`: a metadata column, or DICOM `StudyInstanceUID`, the default).
    Study,
    /// Every slice of one volume (source + volume path); for 2D sources the same as `image`.
    Volume,
    /// Each image on its own (source + path + slice).
    Image,
}

/// `[splits]`: deterministic assignment by hashing a key, stable when the dataset grows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitsConfig {
    pub by: SplitBy,
    /// The metadata column (or `PatientID` / `StudyInstanceUID` for DICOM) holding the key of `patient` / `study`.
    pub key: Option<String>,
    /// Shares of train, validation, test (summing to 1).
    #[serde(default = "default_ratios")]
    pub ratios: [f64; 3],
    #[serde(default)]
    pub seed: u64,
}

fn default_ratios() -> [f64; 3] {
    [0.8, 0.1, 0.1]
}

/// The key of a `volume` split: the volume's file name (the last path component), the same for the triplet recipe's
/// slices (`volumes/ct_001.nii.gz`) and the grounded-reports recipe's rows (`ct_001.nii.gz`), so one volume falls in
/// one split in both.
pub fn volume_split_key(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_string()
}

/// The split names, in the order of `ratios`.
pub const SPLIT_NAMES: [&str; 3] = ["train", "validation", "test"];

impl SplitsConfig {
    /// The key column of `patient` / `study` splits.
    pub fn key_name(&self) -> Option<&str> {
        match self.by {
            SplitBy::Patient => Some(self.key.as_deref().unwrap_or("PatientID")),
            SplitBy::Study => Some(self.key.as_deref().unwrap_or("StudyInstanceUID")),
            SplitBy::Volume | SplitBy::Image => None,
        }
    }

    /// The split of a key: the first 8 bytes of SHA-256(`"{seed}:{key}"`) as a little-endian integer, divided by
    /// 2⁶⁴, against the cumulative ratios.
    pub fn assign(&self, key: &str) -> &'static str {
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("{}:{key}", self.seed).as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        let u = u64::from_le_bytes(b) as f64 / 18446744073709551616.0;
        let (a, v) = (self.ratios[0], self.ratios[0] + self.ratios[1]);
        if u < a {
            SPLIT_NAMES[0]
        } else if u < v {
            SPLIT_NAMES[1]
        } else {
            SPLIT_NAMES[2]
        }
    }
}

/// `[knowledge]`: a knowledge base built by `medgrain kb build`, searched once per sample.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// The knowledge base folder.
    pub kb: PathBuf,
    /// Passages kept per sample.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// "bm25" | "dense" | "hybrid"; default: hybrid when the KB has embeddings and the model is found, else bm25.
    pub mode: Option<String>,
    /// all-MiniLM-L6-v2 folder; default `MEDGRAIN_EMBED_MODEL`.
    pub embed_model: Option<PathBuf>,
}

fn default_top_k() -> usize {
    3
}

/// `[reports]`: a CT-RATE CSV and the masks of its volumes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// CT-RATE CSV (`VolumeName`, `Findings_EN`, `Impressions_EN`).
    pub csv: PathBuf,
    /// The input root that mask paths (and `mask_ref`) are relative to.
    pub root: PathBuf,
    /// Organ masks: `ROOT/masks/{volume stem}/{class}.nii.gz` (TotalSegmentator layout).
    #[serde(default = "default_masks_dir")]
    pub masks: String,
    /// Lesion masks, optional: `ROOT/lesions/{volume stem}/*.nii.gz`, finding name from the file name.
    pub lesions: Option<String>,
    /// CT volumes, optional: `ROOT/volumes/{VolumeName}`; enables organ and lesion HU in the structured findings.
    pub volumes: Option<String>,
    /// Reports per shard (unit of parallel work and of resume).
    #[serde(default = "default_shard_volumes")]
    pub shard_volumes: usize,
    /// Replace dates, phone numbers, e-mail addresses, ID-like numbers and names after titles in the report text
    /// by placeholders (counted in `stats.json`). Default: on when the generator is `openai` with a base URL that
    /// is not loopback.
    pub deid: Option<bool>,
}

fn default_shard_volumes() -> usize {
    64
}

fn default_masks_dir() -> String {
    "masks".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Output folder (relative to the config file) when `--out` is not given.
    pub dir: Option<PathBuf>,
    /// Samples per shard: the unit of durable writing and of resumption.
    #[serde(default = "default_shard_size")]
    pub shard_size: usize,
}

fn default_shard_size() -> usize {
    256
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: None,
            shard_size: default_shard_size(),
        }
    }
}

/// The kinds of source a config can name (`kind = "…"`); [`crate::sources::open_source_in`] opens each.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A folder of 2D images (PNG/JPEG/TIFF, DICOM files) with masks, annotations or an expert segmenter.
    ImageFolder,
    /// 3D NIfTI files cut into slices.
    Nifti,
    /// Folders of DICOM slices, one volume per series, cut into slices.
    DicomSeries,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::ImageFolder => "image-folder",
            SourceKind::Nifti => "nifti",
            SourceKind::DicomSeries => "dicom-series",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name recorded in every row's `source`; must be unique in the config.
    pub name: String,
    /// `image-folder`, `nifti` or `dicom-series`.
    pub kind: SourceKind,
    /// Folder the other paths are relative to (itself relative to the config file).
    pub root: PathBuf,
    /// Glob of images under `root`, e.g. "images/*.png" or "**/*.jpg".
    #[serde(default = "default_images")]
    pub images: String,
    /// Mask path pattern under `root`: `{stem}` (file name without extension), `{name}` (file name),
    /// `{dir}` (the image's folder relative to root), e.g. "masks/{stem}.png".
    pub masks: Option<String>,
    /// A missing mask is an error (`true`) or means "no ROI" (`false`, default).
    #[serde(default)]
    pub require_masks: bool,
    /// Metadata CSV under `root`.
    pub metadata: Option<PathBuf>,
    #[serde(default)]
    pub columns: ColumnMap,
    #[serde(default)]
    pub defaults: Defaults,
    /// License recorded in every row.
    pub license: Option<String>,
    /// Names of mask label values, e.g. `{ "1" = "nodule" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rois: RoiConfig,
    /// nifti / dicom-series: the patient plane slices are cut along: "axial" (default), "coronal", "sagittal".
    pub plane: Option<String>,
    /// nifti / dicom-series: "largest" (each mask's largest cross-section, default), "roi" (slices with mask voxels), "every".
    pub select: Option<String>,
    /// nifti / dicom-series: keep every `step`-th selected slice (with "roi" and "every").
    pub step: Option<usize>,
    /// image-folder: a COCO instances file (relative to `root`) whose polygons, RLE masks or boxes give each image's
    /// regions, named by category; or a CSV of boxes (`*.csv`, one row per box, see `box_columns`); instead of
    /// `masks`.
    pub annotations: Option<String>,
    /// image-folder: column names of a box CSV (`file`, `label`, and `x_min y_min x_max y_max` or
    /// `x y width height`).
    pub box_columns: Option<crate::sources::boxes_csv::BoxColumns>,
    /// nifti / dicom-series: organ masks giving ROIs their organ context (`masks/{stem}/*.nii.gz`, binary files
    /// named by organ, on the volume's grid); they are context, not ROIs.
    pub organs: Option<String>,
    /// nifti / dicom-series: class table for multilabel mask files (TotalSegmentator `--ml`, nnU-Net), lines
    /// `value name`, relative to `root`; binary mask files are named by their file names.
    pub mask_labels: Option<String>,
    /// nifti / dicom-series: masks on another grid than the volume (SAT writes its own) are resampled
    /// nearest-neighbour through world coordinates instead of being refused.
    #[serde(default)]
    pub resample_masks: bool,
    /// An ROI locator run on each volume (`classical:ct-body`, `classical:ct-lung`, `classical:ct-bone`, or
    /// `expert:onnx` with an `[source.onnx]` table); its masks join the mask files and its ROIs carry its name as
    /// `origin`. image-folder sources take `expert:onnx` only, for images without a mask.
    pub locator: Option<medgrain_roi::locate::LocatorName>,
    /// The model behind `locator = "expert:onnx"` and its contract (README, "Expert segmenters"); paths relative
    /// to the config file.
    pub onnx: Option<medgrain_expert::OnnxConfig>,
    /// nifti / dicom-series: "mediastinum" (default), "lung", "bone", "brain", "abdomen", or "percentile"
    /// (0.5–99.5 %, for MR). image-folder: a CT preset for DICOM files (default: the file's own VOI window).
    pub window: Option<String>,
    /// De-identify what is read from DICOM headers before anything sees it (PS3.15 Basic Profile with the Clean
    /// Descriptors and Retain Patient Characteristics options; files at risk of burned-in text become error
    /// lines). Default: on for image-folder and dicom-series sources when the generator is `openai` with a base
    /// URL that is not loopback, off otherwise. Needs `MEDGRAIN_DEID_SECRET`.
    pub deid: Option<bool>,
}

/// `locator = "expert:onnx"` and an `onnx` table come together, and the table is sound.
fn validate_onnx(s: &SourceConfig, at: &str, path: &Path) -> Result<(), PipelineError> {
    match (s.locator == Some(LocatorName::ExpertOnnx), &s.onnx) {
        (true, None) => Err(config_err(
            path,
            format!("{at}: locator = \"expert:onnx\" needs an [source.onnx] table (model, classes, …)"),
        )),
        (false, Some(_)) => Err(config_err(
            path,
            format!("{at}: an onnx table is used only with locator = \"expert:onnx\""),
        )),
        (true, Some(o)) => o.validate().map_err(|e| config_err(path, format!("{at}: {e}"))),
        (false, None) => Ok(()),
    }
}

fn default_images() -> String {
    "**/*.png".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    #[serde(default = "c_file")]
    pub file: String,
    #[serde(default = "c_modality")]
    pub modality: String,
    #[serde(default = "c_organ")]
    pub organ: String,
    /// Diseases, several separated by ';' or '|'.
    #[serde(default = "c_disease")]
    pub disease: String,
    #[serde(default = "c_notes")]
    pub notes: String,
}

fn c_file() -> String {
    "file".into()
}
fn c_modality() -> String {
    "modality".into()
}
fn c_organ() -> String {
    "organ".into()
}
fn c_disease() -> String {
    "disease".into()
}
fn c_notes() -> String {
    "notes".into()
}

impl Default for ColumnMap {
    fn default() -> Self {
        ColumnMap {
            file: c_file(),
            modality: c_modality(),
            organ: c_organ(),
            disease: c_disease(),
            notes: c_notes(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub modality: Option<String>,
    pub organ: Option<String>,
    pub disease: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoiConfig {
    /// scipy connectivity: 1 = edges only, 2 = with diagonals (default).
    #[serde(default = "default_connectivity")]
    pub connectivity: usize,
    /// "component" (one ROI per connected component, default) or "label" (one per label value).
    #[serde(default = "default_unit")]
    pub unit: String,
    /// Components smaller than this many pixels are ignored.
    #[serde(default = "default_min_area")]
    pub min_area_px: u64,
}

fn default_connectivity() -> usize {
    2
}
fn default_unit() -> String {
    "component".into()
}
fn default_min_area() -> u64 {
    4
}

impl Default for RoiConfig {
    fn default() -> Self {
        RoiConfig {
            connectivity: default_connectivity(),
            unit: default_unit(),
            min_area_px: default_min_area(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// "template" (offline, deterministic) or "openai" (an OpenAI-compatible server).
    #[serde(default = "default_generator")]
    pub kind: String,
    /// openai: one base URL ending in /v1, or several (requests are spread over them).
    #[serde(default)]
    pub base_url: Option<BaseUrls>,
    /// openai: the model name the server serves.
    pub model: Option<String>,
    /// openai: environment variable that holds the API key (never written anywhere).
    #[serde(default = "default_key_env")]
    pub api_key_env: String,
    /// openai: requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// openai: shrink/grow the concurrency with 429s and timeouts (AIMD) below `max_concurrency`.
    #[serde(default)]
    pub adaptive_concurrency: bool,
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff step (full jitter, doubled per retry, capped by `backoff_max_s`).
    #[serde(default = "default_backoff_base")]
    pub backoff_base_s: f64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_s: f64,
    pub temperature: Option<f64>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: Option<u32>,
    pub seed: Option<i64>,
    /// "json_schema" (default), "json_object" or "none" for servers without structured output.
    #[serde(default = "default_response_format")]
    pub response_format: String,
    /// Longest image side sent to the model, pixels.
    #[serde(default = "default_max_image_side")]
    pub max_image_side: u32,
    #[serde(default = "default_repairs")]
    pub repair_attempts: u32,
    /// Request cache (SQLite); default OUT/cache/requests.sqlite. Kept by --force.
    pub cache: Option<PathBuf>,
    /// Answer only from the cache (after `batch import`).
    #[serde(default)]
    pub offline: bool,
    /// USD per million prompt / completion tokens, for the cost estimate in stats.json.
    pub price_prompt_per_mtok: Option<f64>,
    pub price_completion_per_mtok: Option<f64>,
}

/// One or several base URLs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BaseUrls {
    One(String),
    Many(Vec<String>),
}

/// Whether a base URL's host is this machine (127.0.0.0/8, ::1, localhost).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let host = host.to_ascii_lowercase();
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

impl GeneratorConfig {
    /// An `openai` generator with a base URL off this machine: what it is sent leaves the machine.
    pub fn is_remote(&self) -> bool {
        self.kind == "openai"
            && self
                .base_url
                .as_ref()
                .is_some_and(|u| u.to_vec().iter().any(|u| !is_loopback_url(u)))
    }
}

impl BaseUrls {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            BaseUrls::One(u) => vec![u.clone()],
            BaseUrls::Many(v) => v.clone(),
        }
    }
}

fn default_generator() -> String {
    "template".into()
}
fn default_key_env() -> String {
    "OPENAI_API_KEY".into()
}
fn default_concurrency() -> usize {
    32
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    5
}
fn default_backoff_base() -> f64 {
    1.0
}
fn default_backoff_max() -> f64 {
    60.0
}
fn default_max_tokens() -> Option<u32> {
    Some(1024)
}
fn default_response_format() -> String {
    "json_schema".into()
}
fn default_max_image_side() -> u32 {
    1024
}
fn default_repairs() -> u32 {
    1
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            kind: default_generator(),
            base_url: None,
            model: None,
            api_key_env: default_key_env(),
            max_concurrency: default_concurrency(),
            adaptive_concurrency: false,
            timeout_s: default_timeout(),
            max_retries: default_retries(),
            backoff_base_s: default_backoff_base(),
            backoff_max_s: default_backoff_max(),
            temperature: None,
            max_tokens: default_max_tokens(),
            seed: None,
            response_format: default_response_format(),
            max_image_side: default_max_image_side(),
            repair_attempts: default_repairs(),
            cache: None,
            offline: false,
            price_prompt_per_mtok: None,
            price_completion_per_mtok: None,
        }
    }
}

/// A parsed config and the directory its relative paths are resolved against.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: BuildConfig,
    pub base_dir: PathBuf,
    pub path: PathBuf,
}

impl LoadedConfig {
    /// Whether a source de-identifies its DICOM headers (its `deid`, else the default: on for sources that read
    /// DICOM when the generator sends to a server off this machine).
    pub fn source_deid(&self, s: &SourceConfig) -> bool {
        s.deid
            .unwrap_or(s.kind != SourceKind::Nifti && self.config.generator.is_remote())
    }

    /// Whether the grounded-reports recipe scrubs its report text.
    pub fn reports_deid(&self) -> bool {
        self.config
            .reports
            .as_ref()
            .and_then(|r| r.deid)
            .unwrap_or(self.config.generator.is_remote())
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// SHA-256 of the config's meaning (its parsed form), independent of comments and formatting.
    pub fn hash(&self) -> Result<String, PipelineError> {
        let json = serde_json::to_string(&self.config).map_err(|e| PipelineError::Internal(e.to_string()))?;
        Ok(crate::engine::fsio::sha256_hex([json]))
    }
}

fn config_err(path: &Path, reason: impl Into<String>) -> PipelineError {
    PipelineError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Parses and validates a config from text; `path` names it in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<LoadedConfig, PipelineError> {
    let config: BuildConfig = toml::from_str(text).map_err(|e| config_err(path, e.to_string().trim_end()))?;
    validate(&config, path).map_err(|e| with_line(e, text))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedConfig {
        config,
        base_dir,
        path: path.to_path_buf(),
    })
}

/// Adds "(line N)" to a validation error that quotes `key = value`, by finding that assignment in the text.
fn with_line(e: PipelineError, text: &str) -> PipelineError {
    let PipelineError::Config { path, reason } = e else {
        return e;
    };
    let Some(eq) = reason.find(" = ") else {
        return PipelineError::Config { path, reason };
    };
    let key = reason[..eq].rsplit(['.', ' ']).next().unwrap_or("").trim_matches('"');
    let rest = &reason[eq + 3..];
    let value = rest.split(": ").next().unwrap_or("").trim();
    let line = text.lines().position(|l| {
        let l = l.trim();
        l.starts_with(key) && l[key.len()..].trim_start().starts_with('=') && l.contains(value.trim_matches('"'))
    });
    match line {
        Some(n) => PipelineError::Config {
            path,
            reason: format!("line {}: {reason}", n + 1),
        },
        None => PipelineError::Config { path, reason },
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| config_err(path, format!("cannot read: {e}")))?;
    parse(&text, path)
}

/// Checks a `[generator]` table.
pub fn validate_generator(g: &GeneratorConfig, path: &Path) -> Result<(), PipelineError> {
    match g.kind.as_str() {
        "template" => Ok(()),
        "openai" => {
            let urls = g.base_url.as_ref().map(BaseUrls::to_vec).unwrap_or_default();
            if urls.is_empty() {
                return Err(config_err(
                    path,
                    "generator.base_url is required for kind = \"openai\" (e.g. \"http://127.0.0.1:8000/v1\")",
                ));
            }
            for u in &urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(config_err(
                        path,
                        format!("generator.base_url = {u:?}: must start with http:// or https://"),
                    ));
                }
            }
            if g.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return Err(config_err(path, "generator.model is required for kind = \"openai\""));
            }
            if g.max_concurrency == 0 || g.max_concurrency > 4096 {
                return Err(config_err(path, "generator.max_concurrency must be in 1..=4096"));
            }
            if !(g.timeout_s > 0.0 && g.backoff_base_s >= 0.0 && g.backoff_max_s >= g.backoff_base_s) {
                return Err(config_err(
                    path,
                    "generator: timeout_s must be > 0 and 0 <= backoff_base_s <= backoff_max_s",
                ));
            }
            if !["json_schema", "json_object", "none"].contains(&g.response_format.as_str()) {
                return Err(config_err(
                    path,
                    format!(
                        "generator.response_format = {:?}: use \"json_schema\", \"json_object\" or \"none\"",
                        g.response_format
                    ),
                ));
            }
            if g.max_image_side < 32 {
                return Err(config_err(path, "generator.max_image_side must be at least 32"));
            }
            Ok(())
        }
        other => Err(config_err(
            path,
            format!("generator.kind = {other:?}: supported generators are \"template\" and \"openai\""),
        )),
    }
}

fn validate(c: &BuildConfig, path: &Path) -> Result<(), PipelineError> {
    if let Some(s) = &c.splits {
        let sum: f64 = s.ratios.iter().sum();
        if s.ratios.iter().any(|r| !r.is_finite() || *r < 0.0) || (sum - 1.0).abs() > 1e-6 {
            return Err(config_err(
                path,
                format!(
                    "splits.ratios {:?}: three shares (train, validation, test) of at least 0 summing to 1",
                    s.ratios
                ),
            ));
        }
        if s.key.is_some() && matches!(s.by, SplitBy::Volume | SplitBy::Image) {
            return Err(config_err(
                path,
                "splits.key is for by = \"patient\" or \"study\"; volume and image splits need none",
            ));
        }
    }
    match c.recipe {
        Recipe::Triplets => {}
        Recipe::GroundedReports => {
            if c.splits
                .as_ref()
                .is_some_and(|s| matches!(s.by, SplitBy::Patient | SplitBy::Study))
            {
                return Err(config_err(
                    path,
                    "recipe = \"grounded-reports\" splits by volume (each report's volume); by = \"patient\" or \"study\" needs a key column this recipe does not read yet",
                ));
            }
            if c.reports.is_none() {
                return Err(config_err(
                    path,
                    "recipe = \"grounded-reports\" needs a [reports] table (csv, root)",
                ));
            }
            return Ok(());
        }
    }
    if c.output.shard_size == 0 {
        return Err(config_err(path, "output.shard_size must be at least 1"));
    }
    validate_generator(&c.generator, path)?;
    if c.sources.is_empty() {
        return Err(config_err(path, "no [[source]] tables: nothing to build"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in c.sources.iter().enumerate() {
        let at = format!("source[{i}] ({:?})", s.name);
        if s.name.trim().is_empty() {
            return Err(config_err(path, format!("source[{i}].name is empty")));
        }
        if !names.insert(s.name.clone()) {
            return Err(config_err(path, format!("{at}: duplicate source name")));
        }
        match s.kind {
            SourceKind::ImageFolder => {
                if s.annotations.is_some() && s.masks.is_some() {
                    return Err(config_err(path, format!("{at}: give masks or annotations, not both")));
                }
                if s.box_columns.is_some() && !s.annotations.as_deref().is_some_and(|a| a.ends_with(".csv")) {
                    return Err(config_err(
                        path,
                        format!("{at}: box_columns describes a CSV given as annotations = \"….csv\""),
                    ));
                }
                if s.mask_labels.is_some() || s.resample_masks || s.organs.is_some() {
                    return Err(config_err(
                        path,
                        format!("{at}: organs, mask_labels and resample_masks apply to volumes (kind = \"nifti\" or \"dicom-series\")"),
                    ));
                }
                if let Some(l) = s.locator.filter(|&l| l != LocatorName::ExpertOnnx) {
                    return Err(config_err(
                        path,
                        format!("{at}.locator = \"{l}\": image folders take \"expert:onnx\" (the classical locators need CT volumes)"),
                    ));
                }
                validate_onnx(s, &at, path)?;
                if let Some(w) = &s.window {
                    if medgrain_imaging::render::ct_window(w).is_none() {
                        return Err(config_err(
                            path,
                            format!("{at}.window = {w:?}: for DICOM files use mediastinum, lung, bone, brain or abdomen (default: the file's own window)"),
                        ));
                    }
                }
            }
            SourceKind::Nifti | SourceKind::DicomSeries => {
                // an unknown locator name does not parse: `LocatorName` is the one list
                validate_onnx(s, &at, path)?;
                if let Some(m) = &s.masks {
                    if !m.contains("{stem}") {
                        return Err(config_err(path, format!("{at}.masks = {m:?}: a {} source's mask pattern needs {{stem}} (e.g. \"masks/{{stem}}/*.nii.gz\")", s.kind)));
                    }
                }
                if let Some(p) = &s.plane {
                    if !["axial", "coronal", "sagittal"].contains(&p.as_str()) {
                        return Err(config_err(
                            path,
                            format!("{at}.plane = {p:?}: use \"axial\", \"coronal\" or \"sagittal\""),
                        ));
                    }
                }
                if let Some(x) = &s.select {
                    if !["largest", "roi", "every"].contains(&x.as_str()) {
                        return Err(config_err(
                            path,
                            format!("{at}.select = {x:?}: use \"largest\", \"roi\" or \"every\""),
                        ));
                    }
                }
                if let Some(w) = &s.window {
                    if w != "percentile" && medgrain_imaging::render::ct_window(w).is_none() {
                        return Err(config_err(
                            path,
                            format!("{at}.window = {w:?}: use mediastinum, lung, bone, brain, abdomen or percentile"),
                        ));
                    }
                }
            }
        }
        if !(1..=2).contains(&s.rois.connectivity) {
            return Err(config_err(
                path,
                format!(
                    "{at}.rois.connectivity = {}: must be 1 or 2 for 2D images",
                    s.rois.connectivity
                ),
            ));
        }
        if s.rois.unit != "component" && s.rois.unit != "label" {
            return Err(config_err(
                path,
                format!("{at}.rois.unit = {:?}: must be \"component\" or \"label\"", s.rois.unit),
            ));
        }
        for k in s.labels.keys() {
            if k.parse::<u32>().is_err() {
                return Err(config_err(
                    path,
                    format!("{at}.labels: key {k:?} is not a label value (a whole number)"),
                ));
            }
        }
        if let (Some(m), SourceKind::ImageFolder) = (&s.masks, s.kind) {
            if !m.contains("{stem}") && !m.contains("{name}") {
                return Err(config_err(
                    path,
                    format!("{at}.masks = {m:?}: the pattern needs {{stem}} or {{name}}"),
                ));
            }
        }
        glob::Pattern::new(&s.images).map_err(|e| config_err(path, format!("{at}.images = {:?}: {e}", s.images)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
recipe = "triplets"
[[source]]
name = "synth"
kind = "image-folder"
root = "synth/2d"
images = "images/*.png"
masks = "masks/{stem}.png"
metadata = "metadata.csv"
[source.labels]
1 = "nodule"
"#;

    #[test]
    fn deid_defaults_follow_where_the_generator_sends() {
        assert!(is_loopback_url("http://127.0.0.1:8000/v1"));
        assert!(is_loopback_url("http://localhost/v1"));
        assert!(is_loopback_url("http://[::1]:8080/v1"));
        assert!(is_loopback_url("http://127.1.2.3/v1"));
        assert!(!is_loopback_url("https://api.openai.com/v1"));
        assert!(!is_loopback_url("http://10.0.0.5:8000/v1"));
        assert!(!is_loopback_url("http://127.0.0.1.evil.example/v1"));
        assert!(!is_loopback_url("http://localhost.evil.example/v1"));
        let mut g = GeneratorConfig {
            kind: "openai".into(),
            base_url: Some(BaseUrls::One("http://127.0.0.1:9/v1".into())),
            ..GeneratorConfig::default()
        };
        assert!(!g.is_remote());
        g.base_url = Some(BaseUrls::Many(vec![
            "http://127.0.0.1:9/v1".into(),
            "https://api.example.com/v1".into(),
        ]));
        assert!(g.is_remote(), "one remote URL is enough");
        g.kind = "template".into();
        assert!(!g.is_remote());
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD, Path::new("/x/cfg.toml")).unwrap();
        assert_eq!(c.config.output.shard_size, 256);
        assert_eq!(c.config.sources[0].columns.file, "file");
        assert_eq!(c.resolve(Path::new("a")), PathBuf::from("/x/a"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let bad = GOOD.replace("images = ", "imagez = \"x\"\nimages = ");
        let e = parse(&bad, Path::new("cfg.toml")).unwrap_err().to_string();
        assert!(e.contains("imagez") && e.contains("line 7"), "{e}");
    }

    #[test]
    fn openai_generator_needs_url_and_model() {
        let with = |g: &str| parse(&format!("{GOOD}\n[generator]\n{g}"), Path::new("c.toml"));
        let e = with("kind = \"openai\"\nmodel = \"m\"").unwrap_err().to_string();
        assert!(e.contains("base_url"), "{e}");
        let e = with("kind = \"openai\"\nbase_url = \"http://h/v1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model"), "{e}");
        let e = with("kind = \"openai\"\nbase_url = \"h:8000\"\nmodel = \"m\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://"), "{e}");
        let ok = with("kind = \"openai\"\nbase_url = [\"http://a/v1\", \"http://b/v1\"]\nmodel = \"m\"").unwrap();
        assert_eq!(ok.config.generator.base_url.unwrap().to_vec().len(), 2);
        let e = with("kind = \"gpt\"").unwrap_err().to_string();
        assert!(e.contains("template") && e.contains("openai"), "{e}");
        let e = with("kind = \"openai\"\nbase_url = \"http://a/v1\"\nmodel = \"m\"\ntemprature = 0.2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("temprature"), "{e}");
    }

    #[test]
    fn semantic_errors_are_reported() {
        let e = parse(&GOOD.replace("image-folder", "ftp"), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind") && e.contains("ftp"), "{e}");
        let e = parse(&GOOD.replace("{stem}", "x"), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("masks"), "{e}");
        let e = parse("recipe = \"triplets\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no [[source]]"), "{e}");
        let e = parse(&GOOD.replace("1 = \"nodule\"", "one = \"nodule\""), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("one"), "{e}");
    }
}
