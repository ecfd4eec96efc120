//! The pipeline's error types: [`PipelineError`] stops a run (or a command); [`SampleError`] costs one sample, which
//! becomes one line of `errors.jsonl` while the run goes on.

use std::path::PathBuf;

/// Errors that stop a run. Per-sample problems never do: they go to `errors.jsonl`.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The config (or a path it names) is unusable; nothing was done.
    #[error("{path}: config: {reason}")]
    Config { path: PathBuf, reason: String },
    /// The request conflicts with what is on disk (e.g. resuming with another config).
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Export(#[from] medgrain_export::ExportError),
    #[error("synthetic corpus: {0}")]
    Synth(#[from] medgrain_synth::SynthError),
    #[error("knowledge base: {0}")]
    Knowledge(#[from] medgrain_knowledge::KnowledgeError),
    /// An input file cannot be used (a single-file command such as `render`).
    #[error("{0}")]
    Input(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// Work that is not finished yet (shards missing at `merge`): exit 1, rerun what is missing.
    #[error("{0}")]
    Incomplete(String),
}

impl PipelineError {
    /// The process exit status for this error: 2 for unusable arguments or config, 3 for a cause worth retrying
    /// (disk full), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        let full = |e: &std::io::Error| e.kind() == std::io::ErrorKind::StorageFull;
        match self {
            PipelineError::Config { .. } | PipelineError::Usage(_) => 2,
            PipelineError::Knowledge(medgrain_knowledge::KnowledgeError::Usage(_)) => 2,
            // a full disk is worth retrying once there is room: nothing half-written is ever read
            PipelineError::Io { source, .. } if full(source) => 3,
            PipelineError::Export(medgrain_export::ExportError::Io { source, .. }) if full(source) => 3,
            _ => 1,
        }
    }
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
