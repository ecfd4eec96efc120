//! The build configuration (`medgrain build CONFIG.toml`): recipe, output sharding, sources, generator.
//! Unknown keys are rejected; errors name the file, the key and the line. Relative paths are resolved against
//! the directory of the config file.

use crate::PipelineError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// "triplets" (MedTrinity recipe).
    #[serde(default = "default_recipe")]
    pub recipe: String,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub generator: GeneratorConfig,
}

fn default_recipe() -> String {
    "triplets".into()
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name recorded in every row's `source`; must be unique in the config.
    pub name: String,
    /// "image-folder".
    pub kind: String,
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
    /// "template" (offline, deterministic).
    #[serde(default = "default_generator")]
    pub kind: String,
}

fn default_generator() -> String {
    "template".into()
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            kind: default_generator(),
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
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
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
    validate(&config, path)?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedConfig {
        config,
        base_dir,
        path: path.to_path_buf(),
    })
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| config_err(path, format!("cannot read: {e}")))?;
    parse(&text, path)
}

fn validate(c: &BuildConfig, path: &Path) -> Result<(), PipelineError> {
    if c.recipe != "triplets" {
        return Err(config_err(
            path,
            format!("recipe = {:?}: supported recipes are \"triplets\"", c.recipe),
        ));
    }
    if c.output.shard_size == 0 {
        return Err(config_err(path, "output.shard_size must be at least 1"));
    }
    if c.generator.kind != "template" {
        return Err(config_err(
            path,
            format!(
                "generator.kind = {:?}: supported generators are \"template\"",
                c.generator.kind
            ),
        ));
    }
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
        if s.kind != "image-folder" {
            return Err(config_err(
                path,
                format!("{at}.kind = {:?}: supported kinds are \"image-folder\"", s.kind),
            ));
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
        if let Some(m) = &s.masks {
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
