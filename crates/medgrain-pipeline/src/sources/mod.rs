//! Sample sources: where samples come from and how one is loaded. A source lists its samples (sorted, so ids and
//! shards are deterministic) and loads one at a time, reporting failures per sample with the stage that failed.
//!
//! One module per source kind ([`image_folder`], [`volume`] for `nifti` and `dicom-series`), the annotation readers
//! they use ([`coco`], [`boxes_csv`]) and the kept locator masks ([`located_cache`]); [`open_source_in`] is the one
//! registry from a config's `kind` to a source. A new source implements [`SampleSource`] in its own module and gets
//! one line there (and its `kind` in `config::SOURCE_KINDS`).

pub mod boxes_csv;
pub mod coco;
pub mod image_folder;
pub mod located_cache;
pub mod sample;
pub mod volume;

use crate::config::{LoadedConfig, SourceConfig, SourceKind};
use crate::PipelineError;
pub use image_folder::ImageFolderSource;
pub use sample::{LoadedSample, SampleError, SampleMeta, SampleRef, SampleSource, SliceGeometry};
use std::path::Path;

/// Opens the source a config table describes.
pub fn open_source(cfg: &SourceConfig, loaded: &LoadedConfig) -> Result<Box<dyn SampleSource>, PipelineError> {
    open_source_in(cfg, loaded, None)
}

/// Opens a source for a build into OUT: `work` (`OUT/.medgrain`) keeps what a volume source's locator found, so
/// that it runs once per volume and build (see [`crate::sources::located_cache`]).
pub fn open_source_in(
    cfg: &SourceConfig,
    loaded: &LoadedConfig,
    work: Option<&Path>,
) -> Result<Box<dyn SampleSource>, PipelineError> {
    match cfg.kind {
        SourceKind::ImageFolder => Ok(Box::new(ImageFolderSource::open(cfg, loaded)?)),
        SourceKind::Nifti | SourceKind::DicomSeries => {
            let mut src = crate::sources::volume::NiftiVolumeSource::open(cfg, loaded)?;
            if src.has_locator() {
                let key = crate::engine::fsio::sha256_hex([cfg.name.as_str()]);
                src.located_dir = work.map(|w| w.join("located").join(&key[..16]));
            }
            Ok(Box::new(src))
        }
    }
}
