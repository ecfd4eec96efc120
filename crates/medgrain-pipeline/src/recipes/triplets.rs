//! Running a build: list samples, split them into shards, process pending shards in parallel, write each shard's
//! Parquet part and a completion marker atomically, then assemble `errors.jsonl`, `stats.json` and
//! `manifest.json` from the markers. A shard whose marker matches the current plan and config is finished and is
//! skipped on the next run; `--force` clears previous output first.
//!
//! Output layout: `OUT/triplets/part-NNNNN.parquet`, `OUT/.medgrain/shards/triplets-NNNNN.json` (markers),
//! `OUT/errors.jsonl`, `OUT/stats.json`, `OUT/manifest.json`.

use crate::config::LoadedConfig;
use crate::engine::fsio::{io_err, sha256_hex, write_atomic};
use crate::engine::shards::{run_shards, ShardWork};
use crate::generator::{make_generator, shard_workers};
use crate::recipes::triplet_stages::{prepare, sample_id, Prepared};
use crate::sources::{open_source_in, SampleError, SampleRef, SampleSource};
use crate::stats::Stats;
use crate::PipelineError;
use indicatif::{ProgressBar, ProgressStyle};
use medgrain_export::{RowWriter, TripletParquetWriter};
use medgrain_generate::Generator;
use medgrain_records::{ErrorRecord, TripletRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of a run that are not part of the config.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Discard previous output in `OUT` and start over.
    pub force: bool,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    pub out: PathBuf,
    pub samples: u64,
    pub rows: u64,
    pub failed: u64,
    pub shards: usize,
    pub shards_resumed: usize,
    /// Samples processed in this run (not kept from a previous one).
    pub processed: u64,
    pub elapsed_s: f64,
    pub stats: Stats,
    /// Requests, cache hits, retries of a model-backed writer.
    pub generator_usage: Option<serde_json::Value>,
}

/// Completion marker of one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardMarker {
    plan_hash: String,
    config_hash: String,
    /// Parquet part relative to OUT, or null when every sample failed.
    file: Option<String>,
    errors: Vec<ErrorRecord>,
    stats: Stats,
}

/// One planned sample.
struct Planned<'a> {
    source: &'a dyn SampleSource,
    sample: SampleRef,
    id: String,
}

/// Hash of a config's meaning (its parsed form), independent of comments and formatting.
pub fn config_hash(loaded: &LoadedConfig) -> Result<String, PipelineError> {
    let json = serde_json::to_string(&loaded.config).map_err(|e| PipelineError::Internal(e.to_string()))?;
    Ok(sha256_hex([json]))
}

/// Paths in OUT that a build owns and `--force` removes.
const OWNED: &[&str] = &["triplets", ".medgrain", "errors.jsonl", "stats.json", "manifest.json"];

fn clear_output(out: &Path) -> Result<(), PipelineError> {
    for name in OWNED {
        let p = out.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
        } else if p.exists() {
            std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic into a sample error (a bug must cost one sample, not the run).
fn guarded<T>(f: impl FnOnce() -> Result<T, SampleError>) -> Result<T, SampleError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(SampleError::new(
            "internal",
            format!("internal error (please report): {msg}"),
        ))
    })
}

/// What every shard of one build shares.
struct ShardContext<'a> {
    config_hash: &'a str,
    out: &'a Path,
    generator: &'a dyn Generator,
    knowledge: Option<&'a crate::knowledge::Knowledge>,
    bar: &'a ProgressBar,
}

fn process_shard(
    k: usize,
    shard: &[Planned<'_>],
    plan_hash: &str,
    cx: &ShardContext<'_>,
) -> Result<ShardMarker, PipelineError> {
    let ShardContext {
        config_hash,
        out,
        generator,
        knowledge,
        bar,
    } = *cx;
    let mut rows: Vec<TripletRecord> = Vec::with_capacity(shard.len());
    let mut errors = Vec::new();
    let mut stats = Stats::default();
    let mut record_error = |p: &Planned<'_>, e: SampleError, stats: &mut Stats| {
        let rec = ErrorRecord {
            source: p.source.name().to_string(),
            source_path: p.sample.rel_path.clone(),
            stage: e.stage.to_string(),
            error: e.message,
        };
        tracing::debug!(source = %rec.source, path = %rec.source_path, stage = %rec.stage, "{}", rec.error);
        stats.add_error(&rec);
        errors.push(rec);
    };
    // Stage 1: load and measure every sample (CPU).
    let mut prepared: Vec<(&Planned<'_>, Prepared)> = Vec::with_capacity(shard.len());
    for p in shard {
        match guarded(|| prepare(p.source, &p.sample, knowledge)) {
            Ok(r) => prepared.push((p, r)),
            Err(e) => {
                record_error(p, e, &mut stats);
                bar.inc(1);
            }
        }
    }
    // Stage 2: describe them (remote writers run the whole shard concurrently).
    let generated = {
        let facts: Vec<_> = prepared.iter().map(|(_, r)| r.facts()).collect();
        generator.generate_batch(&facts)
    };
    // Stage 3: QC and collect, keeping the planned order.
    for ((p, r), g) in prepared.into_iter().zip(generated) {
        match guarded(|| r.finish(g)) {
            Ok(rec) => {
                stats.add_row(&rec);
                rows.push(rec);
            }
            Err(e) => record_error(p, e, &mut stats),
        }
        bar.inc(1);
    }
    let file = if rows.is_empty() {
        None
    } else {
        let rel = format!("triplets/part-{k:05}.parquet");
        let mut w = Box::new(TripletParquetWriter::create(&out.join(&rel))?);
        w.write(&rows)?;
        w.finish()?;
        Some(rel)
    };
    let marker = ShardMarker {
        plan_hash: plan_hash.into(),
        config_hash: config_hash.into(),
        file,
        errors,
        stats,
    };
    Ok(marker)
}

/// The triplet recipe's shards for the engine's runner: a shard is a slice of the plan, its key the hash of its
/// sample ids.
struct TripletWork<'a> {
    cx: ShardContext<'a>,
}

impl<'a> ShardWork for TripletWork<'a> {
    type Input = &'a [Planned<'a>];
    type Marker = ShardMarker;

    fn prefix(&self) -> &'static str {
        "triplets"
    }

    fn key(&self, _k: usize, shard: &Self::Input) -> Result<String, PipelineError> {
        Ok(sha256_hex(shard.iter().map(|p| {
            format!("{}{}", p.id, if p.sample.listing_error.is_some() { "!" } else { "" })
        })))
    }

    fn keep(&self, _k: usize, key: &str, m: &ShardMarker) -> bool {
        m.plan_hash == key
            && m.config_hash == self.cx.config_hash
            && m.file.as_ref().is_none_or(|f| self.cx.out.join(f).is_file())
            // Generation failures are worth retrying (server down, rate limits); the shard's other samples come
            // back from the request cache without new requests.
            && !m.errors.iter().any(|e| e.stage == "generate")
    }

    fn process(&self, k: usize, shard: Self::Input, key: String) -> Result<ShardMarker, PipelineError> {
        process_shard(k, shard, &key, &self.cx)
    }

    fn remove_parts(&self, k: usize) -> Result<(), PipelineError> {
        let p = self.cx.out.join(format!("triplets/part-{k:05}.parquet"));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&p, e)),
            _ => Ok(()),
        }
    }

    fn kept(&self, _k: usize, shard: &Self::Input) {
        self.cx.bar.inc(shard.len() as u64);
    }
}

/// Runs the build a config describes into `out`.
pub fn build(loaded: &LoadedConfig, out: &Path, opts: &BuildOptions) -> Result<BuildSummary, PipelineError> {
    let started = Instant::now();
    let cfg = &loaded.config;
    let knowledge = crate::knowledge::Knowledge::open(loaded)?;
    let mut chash = match &knowledge {
        Some(k) => sha256_hex([config_hash(loaded)?, k.fingerprint()]),
        None => config_hash(loaded)?,
    };
    // an expert model replaced under the same path changes every ROI it found: its bytes are part of the settings
    for src in &cfg.sources {
        if let Some(o) = &src.onnx {
            let model = loaded.resolve(&o.model);
            if let Ok(bytes) = std::fs::read(&model) {
                chash = sha256_hex([chash.as_bytes(), &Sha256::digest(&bytes)[..]]);
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let manifest_path = out.join("manifest.json");
    if opts.force {
        clear_output(out)?;
    } else if let Ok(bytes) = std::fs::read(&manifest_path) {
        let old: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Some(h) = old.get("config_hash").and_then(|v| v.as_str()) {
            if h != chash {
                return Err(PipelineError::Usage(format!(
                    "{} was built from a different config, knowledge base or expert model (hash {} ≠ {}); pass --force to start over, or choose another --out",
                    out.display(),
                    &h[..12.min(h.len())],
                    &chash[..12]
                )));
            }
        }
    }
    for d in ["triplets", ".medgrain/shards"] {
        let p = out.join(d);
        std::fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
    }

    // Plan.
    let sources: Vec<Box<dyn SampleSource>> = cfg
        .sources
        .iter()
        .map(|s| open_source_in(s, loaded, Some(&out.join(".medgrain"))))
        .collect::<Result<_, _>>()?;
    let mut plan: Vec<Planned<'_>> = Vec::new();
    let mut inputs = Vec::new();
    for src in &sources {
        let list = src.list()?;
        inputs.push(serde_json::json!({"source": src.name(), "samples": list.len()}));
        for sample in list {
            let id = sample_id(src.name(), &sample.rel_path, None);
            plan.push(Planned {
                source: src.as_ref(),
                sample,
                id,
            });
        }
    }
    let shard_size = cfg.output.shard_size;
    let shards: Vec<&[Planned<'_>]> = plan.chunks(shard_size).collect();
    tracing::info!(samples = plan.len(), shards = shards.len(), shard_size, "planned");

    let bar = if opts.progress {
        ProgressBar::new(plan.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} samples ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let generator = make_generator(loaded, out)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(shard_workers(&cfg.generator, shard_size))
        .build()
        .map_err(|e| PipelineError::Internal(format!("thread pool: {e}")))?;
    let work = TripletWork {
        cx: ShardContext {
            config_hash: &chash,
            out,
            generator: generator.as_ref(),
            knowledge: knowledge.as_ref(),
            bar: &bar,
        },
    };
    let run = run_shards(&work, out, shards.iter().copied().map(Ok), Some(&pool))?;
    bar.finish_and_clear();
    let resumed = run.resumed();
    if resumed > 0 {
        tracing::info!(resumed, "resuming: finished shards were kept");
    }
    let pending_samples: u64 = shards
        .iter()
        .zip(&run.kept)
        .filter(|(_, &kept)| !kept)
        .map(|(s, _)| s.len() as u64)
        .sum();
    let markers = run.markers;

    // Remove parts and markers of a previous, longer plan.
    let parts_dir = out.join("triplets");
    if let Ok(rd) = std::fs::read_dir(&parts_dir) {
        let keep: std::collections::HashSet<String> = markers.iter().filter_map(|m| m.file.clone()).collect();
        for e in rd.flatten() {
            let rel = format!("triplets/{}", e.file_name().to_string_lossy());
            if !keep.contains(&rel) {
                std::fs::remove_file(e.path()).map_err(|err| io_err(&e.path(), err))?;
            }
        }
    }

    // Assemble.
    let mut stats = Stats::default();
    let mut errors_jsonl = Vec::new();
    let mut files = Vec::new();
    for m in &markers {
        stats.merge(&m.stats);
        for e in &m.errors {
            let line = serde_json::to_string(e).map_err(|e| PipelineError::Internal(e.to_string()))?;
            errors_jsonl.extend_from_slice(line.as_bytes());
            errors_jsonl.push(b'\n');
        }
        if let Some(f) = &m.file {
            files.push(f.clone());
        }
    }
    write_atomic(&out.join("errors.jsonl"), &errors_jsonl)?;
    let g = &cfg.generator;
    if g.price_prompt_per_mtok.is_some() || g.price_completion_per_mtok.is_some() {
        stats.estimated_cost_usd = Some(
            stats.prompt_tokens as f64 / 1e6 * g.price_prompt_per_mtok.unwrap_or(0.0)
                + stats.completion_tokens as f64 / 1e6 * g.price_completion_per_mtok.unwrap_or(0.0),
        );
    }
    let stats_json = serde_json::to_vec_pretty(&stats).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&out.join("stats.json"), &stats_json)?;
    let manifest = serde_json::json!({
        "tool": "medgrain",
        "version": env!("CARGO_PKG_VERSION"),
        "recipe": cfg.recipe,
        "config_path": loaded.path,
        "config": cfg,
        "config_hash": chash,
        "inputs": inputs,
        "counts": {"samples": stats.samples, "rows": stats.rows, "failed": stats.failed, "rois": stats.rois},
        "generator": {"kind": generator.kind(), "prompt_version": generator.prompt_version(), "usage": generator.usage()},
        "shards": {"size": shard_size, "count": shards.len(), "files": files},
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&manifest_path, &manifest_bytes)?;
    Ok(BuildSummary {
        out: out.to_path_buf(),
        samples: stats.samples,
        rows: stats.rows,
        failed: stats.failed,
        shards: shards.len(),
        shards_resumed: resumed,
        processed: pending_samples,
        elapsed_s: started.elapsed().as_secs_f64(),
        generator_usage: generator.usage(),
        stats,
    })
}
