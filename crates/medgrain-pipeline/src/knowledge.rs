//! Knowledge retrieval for triplets: opens the `[knowledge]` knowledge base once per build, builds each sample's
//! query from its modality, organ, diseases and ROI labels (with the synonym table of
//! `medgrain_knowledge::query`), and stores the top passages with ids and scores in the record's `knowledge`.

use crate::config::{KnowledgeConfig, LoadedConfig};
use crate::engine::error::SampleError;
use crate::PipelineError;
use medgrain_knowledge::{KnowledgeBase, Mode};
use medgrain_records::{KnowledgeRef, TripletRecord};

/// An opened knowledge base with its retrieval settings.
pub struct Knowledge {
    kb: KnowledgeBase,
    top_k: usize,
    mode: Mode,
}

impl Knowledge {
    /// Opens the `[knowledge]` table's knowledge base, if the config has one.
    pub fn open(loaded: &LoadedConfig) -> Result<Option<Knowledge>, PipelineError> {
        let Some(cfg) = &loaded.config.knowledge else {
            return Ok(None);
        };
        Self::open_with(cfg, &|p| loaded.resolve(p)).map(Some)
    }

    pub fn open_with(
        cfg: &KnowledgeConfig,
        resolve: &dyn Fn(&std::path::Path) -> std::path::PathBuf,
    ) -> Result<Knowledge, PipelineError> {
        let model = cfg.embed_model.as_deref().map(resolve);
        let kb = KnowledgeBase::open(&resolve(&cfg.kb), model.as_deref())?;
        let mode = match cfg.mode.as_deref() {
            Some(m) => {
                let m: Mode = m.parse().map_err(PipelineError::Usage)?;
                if m != Mode::Bm25 && !kb.dense() {
                    return Err(PipelineError::Usage(format!(
                        "[knowledge] mode = {:?}: {} has no usable embeddings (built without a model, or the model is not found)",
                        cfg.mode.as_deref().unwrap_or(""),
                        cfg.kb.display()
                    )));
                }
                m
            }
            None if kb.dense() => Mode::Hybrid,
            None => Mode::Bm25,
        };
        Ok(Knowledge {
            kb,
            top_k: cfg.top_k,
            mode,
        })
    }

    /// A fingerprint of the knowledge base and settings (part of the build's config hash: a rebuilt KB redoes
    /// the shards).
    pub fn fingerprint(&self) -> String {
        let files: Vec<&str> = self.kb.manifest.files.iter().map(|f| f.sha256.as_str()).collect();
        format!(
            "{}|{}|{:?}|{}",
            self.kb.manifest.chunks,
            files.join(","),
            self.mode,
            self.top_k
        )
    }

    /// The query for a record.
    pub fn query(record: &TripletRecord) -> String {
        let labels: Vec<String> = record.rois.iter().map(|r| r.label.clone()).collect();
        medgrain_knowledge::query::build_query(
            record.modality.as_deref().unwrap_or(""),
            record.organ.as_deref().unwrap_or(""),
            &record.diseases,
            &labels,
        )
    }

    /// Retrieves passages for `record` into its `knowledge` column.
    pub fn attach(&self, record: &mut TripletRecord) -> Result<(), SampleError> {
        let q = Self::query(record);
        let hits = self
            .kb
            .search(&q, self.top_k, self.mode)
            .map_err(|e| SampleError::new("knowledge", e.to_string()))?;
        record.knowledge = hits
            .into_iter()
            .map(|h| KnowledgeRef {
                id: h.id,
                source: h.source,
                score: h.score,
                text: h.text,
            })
            .collect();
        Ok(())
    }
}
