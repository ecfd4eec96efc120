//! Scores models on the datasets medgrain builds, by the published protocols, offline and the same way every time:
//! - [`vqa`]: medical VQA (VQA-RAD, SLAKE, PathVQA layouts, LLaVA conversation JSON, and medgrain's own VQA rows) by
//!   the LLaVA-Med protocol (closed accuracy, open recall) or the MedTrinity-25M one (exact match, token F1,
//!   precision, recall, BLEU-1..3, yes/no accuracy);
//! - [`grounding`]: predicted against gold masks per finding, ReXGroundingCT's global Dice, hit rate and instance
//!   precision / recall / F1;
//! - [`report`]: generated against reference reports, finding-level precision / recall / F1 through medgrain's own
//!   report grounding (finding, negation, anatomy), with BLEU-4 and ROUGE-L.
//!
//! Bad input never stops an evaluation half-way: predictions without a gold item, gold items without a prediction,
//! duplicated ids, empty answers and masks on another grid are counted and listed in the result. Only an input that
//! cannot be read at all, or a gold file in an unknown layout, is an error.

pub mod grounding;
pub mod normalize;
pub mod report;
pub mod text;
pub mod vqa;

use std::path::{Path, PathBuf};

/// What an evaluation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file that cannot be read or parsed at all.
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    /// A file in a layout this command does not know; the message names the fields it expected.
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
}

impl EvalError {
    /// SPEC exit status: a layout that will never work is 2, an unreadable input 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            EvalError::Layout { .. } => 2,
            EvalError::Input { .. } => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;

pub(crate) fn input_err(path: &Path, reason: impl std::fmt::Display) -> EvalError {
    EvalError::Input {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(crate) fn layout_err(path: &Path, reason: impl std::fmt::Display) -> EvalError {
    EvalError::Layout {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Precision, recall and F1 from counts; 0 where a denominator is 0.
pub(crate) fn prf(tp: u64, fp: u64, fn_: u64) -> (f64, f64, f64) {
    let p = if tp + fp > 0 { tp as f64 / (tp + fp) as f64 } else { 0.0 };
    let r = if tp + fn_ > 0 {
        tp as f64 / (tp + fn_) as f64
    } else {
        0.0
    };
    let f = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    (p, r, f)
}
