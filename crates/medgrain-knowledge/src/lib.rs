//! medgrain's medical knowledge base: ingest a corpus ([`ingest`]), chunk it ([`chunk`]), index it for BM25
//! ([`bm25`], tantivy) and, when the embedding model is present, for dense retrieval ([`dense`], all-MiniLM-L6-v2 in
//! candle); search by BM25, dense or hybrid (reciprocal rank fusion); build queries for triplets ([`query`]).
//!
//! A knowledge base is a folder:
//! ```text
//! KBDIR/kb.json        manifest: format, model, chunking, counts, every ingested file with its hash and report
//! KBDIR/chunks.jsonl   one chunk per line (id, doc_id, title, source, url, text, tokens, mesh), row = ordinal
//! KBDIR/chunks.idx     byte offset of each line (u64 LE), for random access
//! KBDIR/vectors.f32    n × dim f32 LE embeddings (only with a model)
//! KBDIR/dense.ann/     approximate index of the vectors, in segments (only after `kb build --ann`; see [`ann`])
//! KBDIR/bm25/          tantivy index (ordinal stored)
//! ```
//! Building is incremental: files whose content hash is already in the manifest are skipped, and new chunks whose
//! text equals an existing chunk's are dropped as duplicates. The manifest is written last, so an interrupted build
//! leaves the previous knowledge base intact (extra bytes past the manifest's counts are cut on the next build).

pub mod ann;
pub mod bm25;
pub mod chunk;
pub mod dense;
pub mod ingest;
pub mod onnx_bert;
pub mod query;

use chunk::{chunk_document, Chunk, ChunkOptions, TokenCounter, WordEstimate};
use dense::Embedder;
use ingest::FileReport;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Errors of the knowledge base.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index: {0}")]
    Index(String),
    #[error("embedding model: {0}")]
    Model(String),
    #[error("{0}")]
    Usage(String),
}

impl KnowledgeError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        KnowledgeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

const FORMAT: u32 = 1;

/// The embedding model a knowledge base was built with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub dim: usize,
}

/// One ingested input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub chunks: usize,
    pub report: FileReport,
}

/// `kb.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// An approximate index (`dense.ann/`) is kept with the vectors and extended by every build.
    #[serde(default)]
    pub ann: bool,
    pub model: Option<ModelInfo>,
    pub max_tokens: usize,
    pub overlap: usize,
    pub documents: usize,
    pub chunks: usize,
    pub tokens: usize,
    pub duplicates: usize,
    pub files: Vec<FileEntry>,
}

/// Settings of `kb build`.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Embedding model folder; else `MEDGRAIN_EMBED_MODEL`; without one the KB is BM25-only.
    pub embed_model: Option<PathBuf>,
    pub chunk: ChunkOptions,
    /// Build (or extend) the approximate dense index `dense.ann/`; once a KB has one, every build extends it.
    pub ann: bool,
}

/// What one `kb build` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildSummary {
    /// Vectors added to the approximate index (`None`: no index).
    pub ann_added: Option<usize>,
    pub files_read: usize,
    pub files_already_ingested: usize,
    pub documents: usize,
    pub chunks: usize,
    pub duplicates: usize,
    pub tokens: usize,
    pub problems: usize,
    pub dense: bool,
    /// The embedding model and its runtime, e.g. `all-MiniLM-L6-v2 (onnxruntime)`.
    pub embedder: Option<String>,
    pub total_chunks: usize,
    pub reports: Vec<FileReport>,
}

/// SHA-256 of a file's content, streamed.
fn file_sha256(path: &Path) -> Result<String, KnowledgeError> {
    let mut f = std::fs::File::open(path).map_err(|e| KnowledgeError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| KnowledgeError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn text_key(text: &str) -> u64 {
    let norm: String = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let d = Sha256::digest(norm.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, KnowledgeError> {
    let p = dir.join("kb.json");
    if !p.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).map_err(|e| KnowledgeError::io(&p, e))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| KnowledgeError::Usage(format!("{}: not a medgrain knowledge base manifest: {e}", p.display())))?;
    if m.format != FORMAT {
        return Err(KnowledgeError::Usage(format!(
            "{}: knowledge base format {} (this medgrain reads {FORMAT}); rebuild it",
            p.display(),
            m.format
        )));
    }
    Ok(Some(m))
}

/// Cuts `path` to `len` bytes (drops what an interrupted build appended).
fn truncate(path: &Path, len: u64) -> Result<(), KnowledgeError> {
    if !path.exists() {
        return Ok(());
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| KnowledgeError::io(path, e))?;
    f.set_len(len).map_err(|e| KnowledgeError::io(path, e))
}

struct Counter<'a>(&'a Embedder);

impl TokenCounter for Counter<'_> {
    fn count(&self, text: &str) -> usize {
        self.0.count_tokens(text)
    }
}

/// Builds (or extends) the knowledge base in `out` from `inputs`. `on_file` is called after each file.
pub fn build(
    inputs: &[PathBuf],
    out: &Path,
    opts: &BuildOptions,
    on_file: &mut dyn FnMut(&FileReport, usize, usize),
) -> Result<BuildSummary, KnowledgeError> {
    std::fs::create_dir_all(out).map_err(|e| KnowledgeError::io(out, e))?;
    let previous = read_manifest(out)?;
    let model_dir = dense::model_dir(opts.embed_model.as_deref());
    let embedder = match (&previous, &model_dir) {
        (Some(m), _) if m.model.is_none() => {
            if model_dir.is_some() {
                tracing::warn!(
                    "{} was built without embeddings; adding BM25-only chunks (rebuild for dense retrieval)",
                    out.display()
                );
            }
            None
        }
        (Some(m), None) => {
            return Err(KnowledgeError::Usage(format!(
                "{} holds {}-dimensional embeddings from {:?}: set --embed-model or {} to add to it",
                out.display(),
                m.model.as_ref().map_or(0, |x| x.dim),
                m.model.as_ref().map(|x| x.name.clone()).unwrap_or_default(),
                dense::MODEL_ENV
            )))
        }
        (_, Some(dir)) => Some(Embedder::load(dir)?),
        (None, None) => {
            tracing::warn!(
                "no embedding model (--embed-model or {}): building a BM25-only knowledge base",
                dense::MODEL_ENV
            );
            None
        }
    };
    if let (Some(Some(m)), Some(e)) = (previous.as_ref().map(|p| p.model.as_ref()), embedder.as_ref()) {
        if m.dim != e.dim {
            return Err(KnowledgeError::Usage(format!(
                "{} holds {}-dimensional embeddings; the model in {} gives {}: use the model the KB was built with",
                out.display(),
                m.dim,
                model_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
                e.dim
            )));
        }
    }
    let mut manifest = previous.unwrap_or(Manifest {
        format: FORMAT,
        ann: false,
        model: embedder.as_ref().map(|e| ModelInfo {
            name: e.name.clone(),
            dim: e.dim,
        }),
        max_tokens: opts.chunk.max_tokens,
        overlap: opts.chunk.overlap,
        documents: 0,
        chunks: 0,
        tokens: 0,
        duplicates: 0,
        files: Vec::new(),
    });
    let chunk_opts = ChunkOptions {
        max_tokens: manifest.max_tokens,
        overlap: manifest.overlap,
    };
    let dim = manifest.model.as_ref().map_or(0, |m| m.dim);
    // Cut anything an interrupted build appended past the manifest; collect the existing texts for dedup.
    let (chunks_path, idx_path, vec_path) = (
        out.join("chunks.jsonl"),
        out.join("chunks.idx"),
        out.join(ann::VECTORS_FILE),
    );
    let offsets = read_offsets(&idx_path, manifest.chunks)?;
    let end = match offsets.last() {
        Some(&last) => last + line_len(&chunks_path, last)?,
        None => 0,
    };
    truncate(&chunks_path, end)?;
    truncate(&idx_path, 8 * manifest.chunks as u64)?;
    truncate(&vec_path, (4 * dim * manifest.chunks) as u64)?;
    let mut seen: HashSet<u64> = HashSet::new();
    if chunks_path.is_file() {
        let f = std::fs::File::open(&chunks_path).map_err(|e| KnowledgeError::io(&chunks_path, e))?;
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(|e| KnowledgeError::io(&chunks_path, e))?;
            if let Ok(c) = serde_json::from_str::<Chunk>(&line) {
                seen.insert(text_key(&c.text));
            }
        }
    }
    let bm25 = bm25::Bm25Index::open_or_create(&out.join("bm25"))?;
    if bm25.num_docs() as usize != manifest.chunks {
        return Err(KnowledgeError::Usage(format!(
            "{}: the BM25 index holds {} chunks, the manifest {}: the knowledge base is damaged; rebuild it into an empty folder",
            out.display(),
            bm25.num_docs(),
            manifest.chunks
        )));
    }
    let open_append = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| KnowledgeError::io(p, e))
    };
    let mut sink = Sink {
        embedder: embedder.as_ref(),
        chunks_w: open_append(&chunks_path)?,
        idx_w: open_append(&idx_path)?,
        vec_w: open_append(&vec_path)?,
        paths: [chunks_path.clone(), idx_path.clone(), vec_path.clone()],
        writer: bm25.writer()?,
        pos: end,
    };
    let mut summary = BuildSummary {
        dense: embedder.is_some(),
        embedder: embedder.as_ref().map(|e| format!("{} ({})", e.name, e.runtime())),
        ..Default::default()
    };
    let mut known: HashSet<String> = manifest.files.iter().map(|f| f.sha256.clone()).collect();
    let files = ingest::input_files(inputs).map_err(|e| KnowledgeError::Usage(e.to_string()))?;
    let total_files = files.len();
    let word_estimate = WordEstimate;
    let model_counter = embedder.as_ref().map(Counter);
    let counter: &dyn TokenCounter = match &model_counter {
        Some(c) => c,
        None => &word_estimate,
    };
    for (fi, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let hash = file_sha256(path)?;
        // Already in the KB, or given twice in this run.
        if !known.insert(hash.clone()) {
            summary.files_already_ingested += 1;
            continue;
        }
        // Chunks go out in blocks of 1,024 while the file is read (memory stays flat for huge files): each block is
        // embedded in length-sorted batches of 32 (little padding), then written in the original order.
        let mut pending: Vec<Chunk> = Vec::new();
        let mut file_chunks = 0usize;
        let mut failure: Option<KnowledgeError> = None;
        let report = ingest::read_file(path, &name, &mut |doc| {
            summary.documents += 1;
            manifest.documents += 1;
            for c in chunk_document(&doc, chunk_opts, counter) {
                if seen.insert(text_key(&c.text)) {
                    pending.push(c);
                } else {
                    summary.duplicates += 1;
                    manifest.duplicates += 1;
                }
            }
            if pending.len() >= 1024 && failure.is_none() {
                file_chunks += pending.len();
                if let Err(e) = sink.write_block(&pending, &mut manifest, &mut summary) {
                    failure = Some(e);
                }
                pending.clear();
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        file_chunks += pending.len();
        sink.write_block(&pending, &mut manifest, &mut summary)?;
        summary.files_read += 1;
        summary.problems += report.problem_count();
        on_file(&report, fi + 1, total_files);
        manifest.files.push(FileEntry {
            sha256: hash,
            chunks: file_chunks,
            report: report.clone(),
        });
        summary.reports.push(report);
    }
    let Sink {
        mut chunks_w,
        mut idx_w,
        mut vec_w,
        writer,
        ..
    } = sink;
    for (w, p) in [
        (&mut chunks_w, &chunks_path),
        (&mut idx_w, &idx_path),
        (&mut vec_w, &vec_path),
    ] {
        w.flush().map_err(|e| KnowledgeError::io(p, e))?;
        w.get_ref().sync_all().map_err(|e| KnowledgeError::io(p, e))?;
    }
    writer.commit()?;
    if opts.ann || manifest.ann {
        if dim == 0 {
            tracing::warn!("an approximate index needs embeddings: {} is BM25-only", out.display());
        } else {
            // the index is brought up to the vectors before the manifest: an interrupted build leaves an index
            // that no longer matches, which search refuses (exact scan) and the next build rebuilds
            summary.ann_added = Some(ann::Ann::update(out, dim, manifest.chunks)?);
            manifest.ann = true;
        }
    }
    let tmp = out.join("kb.json.tmp");
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| KnowledgeError::Index(e.to_string()))?;
    std::fs::write(&tmp, bytes).map_err(|e| KnowledgeError::io(&tmp, e))?;
    std::fs::rename(&tmp, out.join("kb.json")).map_err(|e| KnowledgeError::io(out, e))?;
    summary.total_chunks = manifest.chunks;
    Ok(summary)
}

/// Where a build writes: the chunk lines, their offsets, the vectors and the BM25 index.
struct Sink<'a> {
    embedder: Option<&'a Embedder>,
    chunks_w: std::io::BufWriter<std::fs::File>,
    idx_w: std::io::BufWriter<std::fs::File>,
    vec_w: std::io::BufWriter<std::fs::File>,
    paths: [PathBuf; 3],
    writer: bm25::Bm25Writer,
    pos: u64,
}

impl Sink<'_> {
    fn write_block(
        &mut self,
        block: &[Chunk],
        manifest: &mut Manifest,
        summary: &mut BuildSummary,
    ) -> Result<(), KnowledgeError> {
        let [chunks_path, idx_path, vec_path] = &self.paths;
        let (chunks_w, idx_w, vec_w) = (&mut self.chunks_w, &mut self.idx_w, &mut self.vec_w);
        let writer = &mut self.writer;
        let embedder = &self.embedder;
        let pos = &mut self.pos;
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        if let Some(e) = &embedder {
            let texts: Vec<String> = block.iter().map(passage_text).collect();
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| (texts[i].len(), i));
            vectors = vec![Vec::new(); texts.len()];
            // Length-sorted batches of 32 (little padding). candle runs its small matrix products on one thread,
            // so its batches go to the cores; ONNX Runtime spreads each batch over its own threads.
            use rayon::prelude::*;
            let embed = |batch: &[usize]| {
                let refs: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
                e.embed(&refs)
            };
            let done: Vec<Result<Vec<Vec<f32>>, KnowledgeError>> = if e.parallel_batches() {
                order.par_chunks(32).map(embed).collect()
            } else {
                order.chunks(32).map(embed).collect()
            };
            for (batch, vs) in order.chunks(32).zip(done) {
                for (&i, v) in batch.iter().zip(vs?) {
                    vectors[i] = v;
                }
            }
        }
        for (j, c) in block.iter().enumerate() {
            if let Some(v) = vectors.get(j) {
                for x in v {
                    vec_w
                        .write_all(&x.to_le_bytes())
                        .map_err(|e| KnowledgeError::io(vec_path, e))?;
                }
            }
            let ord = manifest.chunks as u64;
            let mut line = serde_json::to_vec(c).map_err(|e| KnowledgeError::Index(e.to_string()))?;
            line.push(b'\n');
            chunks_w
                .write_all(&line)
                .map_err(|e| KnowledgeError::io(chunks_path, e))?;
            idx_w
                .write_all(&pos.to_le_bytes())
                .map_err(|e| KnowledgeError::io(idx_path, e))?;
            *pos += line.len() as u64;
            writer.add(ord, &c.title, &c.text)?;
            manifest.chunks += 1;
            manifest.tokens += c.tokens;
            summary.tokens += c.tokens;
            summary.chunks += 1;
        }
        Ok(())
    }
}

/// The text embedded for a passage: title and text, as indexed for BM25.
fn passage_text(c: &Chunk) -> String {
    if c.title.is_empty() {
        c.text.clone()
    } else {
        format!("{}. {}", c.title, c.text)
    }
}

fn read_offsets(path: &Path, n: usize) -> Result<Vec<u64>, KnowledgeError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| KnowledgeError::io(path, e))?;
    if bytes.len() < 8 * n {
        return Err(KnowledgeError::Usage(format!(
            "{}: {} offsets for {n} chunks: the knowledge base is damaged; rebuild it",
            path.display(),
            bytes.len() / 8
        )));
    }
    Ok(bytes[..8 * n]
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect())
}

/// Reads `n` little-endian f32 values in 1 MiB pieces (peak memory: the vectors, not twice their size).
fn read_vectors(path: &Path, n: usize) -> Result<Vec<f32>, KnowledgeError> {
    let f = std::fs::File::open(path).map_err(|e| KnowledgeError::io(path, e))?;
    ann::read_rows(&f, path, 1, 0, n)
}

fn line_len(path: &Path, offset: u64) -> Result<u64, KnowledgeError> {
    let mut f = std::fs::File::open(path).map_err(|e| KnowledgeError::io(path, e))?;
    f.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| KnowledgeError::io(path, e))?;
    let mut line = Vec::new();
    std::io::BufReader::new(f)
        .read_until(b'\n', &mut line)
        .map_err(|e| KnowledgeError::io(path, e))?;
    Ok(line.len() as u64)
}

/// Retrieval mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bm25,
    Dense,
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bm25" => Ok(Mode::Bm25),
            "dense" => Ok(Mode::Dense),
            "hybrid" => Ok(Mode::Hybrid),
            o => Err(format!("mode {o:?}: expected bm25, dense or hybrid")),
        }
    }
}

/// One retrieved passage (`kb search --json` hit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub source: String,
    pub score: f64,
    pub text: String,
}

/// Reciprocal rank fusion constant (Cormack et al. 2009).
pub const RRF_K: f64 = 60.0;

/// An opened knowledge base.
pub struct KnowledgeBase {
    dir: PathBuf,
    pub manifest: Manifest,
    bm25: bm25::Bm25Index,
    offsets: Vec<u64>,
    vectors: Option<Vec<f32>>,
    /// The approximate index, memory-mapped (then `vectors` is not read).
    ann: Option<ann::Ann>,
    embedder: Option<Embedder>,
}

impl KnowledgeBase {
    /// Opens `dir`. Dense retrieval is on when the KB has vectors and the model is found (`model` or
    /// `MEDGRAIN_EMBED_MODEL`); otherwise BM25 alone, said once.
    pub fn open(dir: &Path, model: Option<&Path>) -> Result<KnowledgeBase, KnowledgeError> {
        let manifest = read_manifest(dir)?.ok_or_else(|| {
            KnowledgeError::Usage(format!(
                "{}: not a knowledge base (no kb.json); run `medgrain kb build`",
                dir.display()
            ))
        })?;
        let bm25 = bm25::Bm25Index::open_or_create(&dir.join("bm25"))?;
        let offsets = read_offsets(&dir.join("chunks.idx"), manifest.chunks)?;
        let (mut vectors, mut embedder, mut ann) = (None, None, None);
        if let Some(m) = &manifest.model {
            match dense::model_dir(model) {
                Some(md) => {
                    ann = manifest
                        .ann
                        .then(|| ann::Ann::open(dir, m.dim, manifest.chunks))
                        .flatten();
                    if ann.is_none() {
                        let p = dir.join(ann::VECTORS_FILE);
                        vectors = Some(read_vectors(&p, m.dim * manifest.chunks)?);
                    }
                    embedder = Some(Embedder::load(&md)?);
                }
                None => tracing::warn!(
                    "embedding model not found (set {}): searching {} with BM25 only",
                    dense::MODEL_ENV,
                    dir.display()
                ),
            }
        }
        Ok(KnowledgeBase {
            dir: dir.to_path_buf(),
            manifest,
            bm25,
            offsets,
            vectors,
            ann,
            embedder,
        })
    }

    /// Whether dense retrieval is available.
    pub fn dense(&self) -> bool {
        (self.vectors.is_some() || self.ann.is_some()) && self.embedder.is_some()
    }

    /// The chunk with ordinal `ord`.
    pub fn chunk(&self, ord: u64) -> Result<Chunk, KnowledgeError> {
        let p = self.dir.join("chunks.jsonl");
        let off = *self
            .offsets
            .get(ord as usize)
            .ok_or_else(|| KnowledgeError::Index(format!("chunk {ord} out of range")))?;
        let mut f = std::fs::File::open(&p).map_err(|e| KnowledgeError::io(&p, e))?;
        f.seek(std::io::SeekFrom::Start(off))
            .map_err(|e| KnowledgeError::io(&p, e))?;
        let mut line = String::new();
        std::io::BufReader::new(f)
            .read_line(&mut line)
            .map_err(|e| KnowledgeError::io(&p, e))?;
        serde_json::from_str(&line).map_err(|e| KnowledgeError::Index(format!("chunk {ord}: {e}")))
    }

    /// Ranked ordinals and scores for `query`.
    pub fn rank(&self, query: &str, k: usize, mode: Mode) -> Result<Vec<(u64, f64)>, KnowledgeError> {
        let mode = if mode != Mode::Bm25 && !self.dense() {
            Mode::Bm25
        } else {
            mode
        };
        let dense = |n: usize| -> Result<Vec<(u64, f32)>, KnowledgeError> {
            match (&self.embedder, &self.ann, &self.vectors) {
                (Some(e), Some(a), _) => {
                    let q = e.embed(&[query])?.pop().unwrap_or_default();
                    a.search(&q, n)
                }
                (Some(e), None, Some(v)) => {
                    let q = e.embed(&[query])?.pop().unwrap_or_default();
                    Ok(dense::top_k(v, e.dim, &q, n))
                }
                _ => Ok(Vec::new()),
            }
        };
        Ok(match mode {
            Mode::Bm25 => self
                .bm25
                .search(query, k)?
                .into_iter()
                .map(|(o, s)| (o, s as f64))
                .collect(),
            Mode::Dense => dense(k)?.into_iter().map(|(o, s)| (o, s as f64)).collect(),
            Mode::Hybrid => {
                let depth = (k * 4).max(50);
                let lists = [self.bm25.search(query, depth)?, dense(depth)?];
                let mut fused: std::collections::HashMap<u64, f64> = Default::default();
                for list in &lists {
                    for (rank, (o, _)) in list.iter().enumerate() {
                        *fused.entry(*o).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
                    }
                }
                let mut v: Vec<(u64, f64)> = fused.into_iter().collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v.truncate(k);
                v
            }
        })
    }

    /// The top `k` passages for `query`.
    pub fn search(&self, query: &str, k: usize, mode: Mode) -> Result<Vec<Hit>, KnowledgeError> {
        self.rank(query, k, mode)?
            .into_iter()
            .map(|(o, score)| {
                let c = self.chunk(o)?;
                Ok(Hit {
                    id: c.id,
                    title: c.title,
                    source: c.source,
                    score,
                    text: c.text,
                })
            })
            .collect()
    }
}
