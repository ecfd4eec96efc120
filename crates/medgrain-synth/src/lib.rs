//! A deterministic synthetic corpus with known ground truth, laid out as `shared/SPEC.md` specifies:
//! `2d/` (images, label-map masks, `metadata.csv`, `ground_truth.jsonl`) and `3d/` (CT-like NIfTI volumes,
//! TotalSegmentator-style organ masks, lesion masks, CT-RATE-style `reports.csv`, `ground_truth.jsonl`).
//! The same seed gives byte-identical files: every sample draws from its own named random stream.

pub mod rng;
pub mod three_d;
pub mod two_d;

use std::path::{Path, PathBuf};

/// Errors while writing the corpus.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding failed: {0}")]
    Imaging(String),
}

pub type Result<T> = std::result::Result<T, SynthError>;

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> SynthError {
    SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How much to generate.
#[derive(Debug, Clone, Copy)]
pub struct SynthOptions {
    pub seed: u64,
    /// Images per 2D kind (there are seven kinds).
    pub images_per_kind: usize,
    pub volumes: usize,
    /// Grid and mask count of the volumes.
    pub volume: three_d::VolumeOptions,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 0,
            images_per_kind: 36,
            volumes: 8,
            volume: three_d::VolumeOptions::default(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    pub images: usize,
    pub volumes: usize,
}

/// Writes the whole corpus under `out`.
pub fn write_corpus(out: &Path, opts: &SynthOptions) -> Result<SynthSummary> {
    let images = two_d::write(&out.join("2d"), opts.seed, opts.images_per_kind)?;
    let volumes = three_d::write(&out.join("3d"), opts.seed, opts.volumes, &opts.volume)?;
    Ok(SynthSummary { images, volumes })
}
