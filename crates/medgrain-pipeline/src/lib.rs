//! The pipeline: build configs ([`config`]), the engine's errors and file helpers ([`engine`]), sample sources
//! ([`sources`]), the recipes ([`recipes`]: triplets with their per-sample stages, grounded reports), dataset
//! statistics ([`stats`]), the offline demo ([`demo`]) and dataset summaries for `inspect` ([`inspect`]).

pub mod batch;
pub mod config;
pub mod dedup;
pub mod demo;
pub mod dicom_meta;
pub mod engine;
pub mod generator;
pub mod inspect;
pub mod inspect_html;
pub mod knowledge;
pub mod recipes;
pub mod rois;
pub mod sources;
pub mod stats;

pub use engine::error::{PipelineError, SampleError};
pub use recipes::triplets::{build, BuildOptions, BuildSummary};
