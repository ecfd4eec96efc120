//! The binary's own error type: what a command can fail with, and the exit status each maps to (SPEC: 0 success,
//! 1 the run finished but something failed, 2 unusable arguments or config, 3 stopped for a cause worth retrying).

use medgrain_pipeline::PipelineError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Arguments that cannot work together or a request that conflicts with what is on disk (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An input file that cannot be used by a single-file command (exit 1).
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// What the library reported.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl CliError {
    /// The process exit status.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Pipeline(e) => e.exit_code() as u8,
            CliError::Input(_) | CliError::Io { .. } | CliError::Internal(_) => 1,
        }
    }
}

impl From<medgrain_eval::EvalError> for CliError {
    fn from(e: medgrain_eval::EvalError) -> Self {
        match e.exit_code() {
            2 => CliError::Usage(e.to_string()),
            _ => CliError::Input(e.to_string()),
        }
    }
}

impl From<medgrain_knowledge::KnowledgeError> for CliError {
    fn from(e: medgrain_knowledge::KnowledgeError) -> Self {
        CliError::Pipeline(e.into())
    }
}

impl From<medgrain_synth::SynthError> for CliError {
    fn from(e: medgrain_synth::SynthError) -> Self {
        CliError::Pipeline(e.into())
    }
}
