//! Description writers. A [`Generator`] turns the facts of a sample ([`SampleFacts`]: metadata, measured ROIs,
//! retrieved knowledge) into the five MedTrinity sections plus an integrated description. The
//! [`template::TemplateWriter`] does it offline and deterministically; model-backed writers plug in through the
//! same trait. [`caption`] builds the coarse caption from metadata; [`qc`] checks any generated text against the
//! record it describes.

pub mod caption;
pub mod openai;
pub mod qc;
pub mod template;
pub mod vocab;

use medgrain_records::{GeneratorInfo, KnowledgeRef, RoiRecord, Sections};

/// Everything a writer may say something about. Nothing else may appear in a description.
#[derive(Debug, Clone)]
pub struct SampleFacts<'a> {
    /// Stable sample id; writers use it to pick phrasings deterministically.
    pub id: &'a str,
    pub modality: Option<&'a str>,
    pub organ: Option<&'a str>,
    pub diseases: &'a [String],
    pub width: u32,
    pub height: u32,
    pub colour: bool,
    /// Fraction of the frame that differs from the background (0..1), when measured.
    pub foreground_fraction: Option<f64>,
    pub rois: &'a [RoiRecord],
    pub knowledge: &'a [KnowledgeRef],
    pub coarse_caption: &'a str,
    /// The stored image (PNG) for model-backed writers' visual prompt.
    pub image: Option<&'a [u8]>,
}

/// A written description.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub sections: Sections,
    pub description: String,
    pub generator: GeneratorInfo,
}

/// Errors a writer can report for one sample; the pipeline records them in `errors.jsonl`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("generator {generator}: {reason}")]
    Failed { generator: String, reason: String },
}

/// A description writer. Implementations must be deterministic for a given input, or cache their answers, so that
/// a resumed run produces the same records.
pub trait Generator: Send + Sync {
    /// Short name recorded in manifests ("template", "openai").
    fn kind(&self) -> &'static str;
    /// Version of the prompt or template set, recorded in every row.
    fn prompt_version(&self) -> &str;
    fn generate(&self, facts: &SampleFacts<'_>) -> Result<Generated, GenerateError>;

    /// Writes descriptions for several samples; remote writers run them concurrently. Results are in input order.
    fn generate_batch(&self, facts: &[SampleFacts<'_>]) -> Vec<Result<Generated, GenerateError>> {
        facts.iter().map(|f| self.generate(f)).collect()
    }

    /// Usage figures for the run so far (requests, cache hits, ...), when the writer has any.
    fn usage(&self) -> Option<serde_json::Value> {
        None
    }

    /// How many samples one [`Generator::generate_batch`] call should get: a few for a local writer (a shard is then
    /// loaded, described and written a few samples at a time, so memory is bounded by them, not by the shard), the
    /// whole shard (`None`) for a remote writer, whose concurrency is the batch.
    fn batch_size(&self) -> Option<usize> {
        Some(16)
    }
}

/// Lower-case normal/healthy markers in a disease column.
pub fn is_normal(disease: &str) -> bool {
    matches!(
        disease.trim().to_ascii_lowercase().as_str(),
        "" | "normal" | "none" | "healthy" | "no finding" | "no findings"
    )
}
