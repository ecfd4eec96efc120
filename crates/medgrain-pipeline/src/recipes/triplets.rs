//! Running a build: list samples, split them into shards, process pending shards in parallel, write each shard's
//! Parquet part and a completion marker atomically, then assemble `errors.jsonl`, `stats.json` and
//! `manifest.json` from the markers. A shard whose marker matches the current plan and config is finished and is
//! skipped on the next run; `--force` clears previous output first.
//!
//! Output layout: `OUT/triplets/part-NNNNN.parquet`, `OUT/.medgrain/shards/triplets-NNNNN.json` (markers),
//! `OUT/errors.jsonl`, `OUT/stats.json`, `OUT/manifest.json`.

use crate::config::LoadedConfig;
use crate::engine::fsio::{file_entry, io_err, remove_temporaries, same_size, sha256_hex, write_atomic, FileEntry};
use crate::engine::plan::{Plan, PlanInput, ShardState, Status};
use crate::engine::shards::{run_some_shards, MarkerStore, ShardLimits, ShardTimeout, ShardWork};
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
    /// Run only worker `I` of `N`'s shards (`k % N == I`) of the plan in OUT, and do not assemble (see [`merge`]).
    pub worker: Option<(usize, usize)>,
    /// What happens when a shard runs longer than a limit (`--shard-timeout`).
    pub shard_timeout: Option<ShardTimeout>,
    /// Skip hashing the input files (`--no-input-hash`): no `inputs.jsonl`.
    pub no_input_hash: bool,
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
    /// Samples whose description failed in this run (model server unreachable, timeouts): their shards are not
    /// kept, so running again retries them.
    pub retry_worthy: u64,
}

impl BuildSummary {
    /// The summary of a run over `markers` (those it ran or kept), with the dataset's `stats`.
    #[allow(clippy::too_many_arguments)]
    fn new(
        out: &Path,
        stats: Stats,
        markers: &[ShardMarker],
        shards: usize,
        shards_resumed: usize,
        processed: u64,
        started: Instant,
        generator: &dyn Generator,
    ) -> Self {
        BuildSummary {
            retry_worthy: generate_failures(markers),
            out: out.to_path_buf(),
            samples: stats.samples,
            rows: stats.rows,
            failed: stats.failed,
            shards,
            shards_resumed,
            processed,
            elapsed_s: started.elapsed().as_secs_f64(),
            generator_usage: generator.usage(),
            stats,
        }
    }
}

/// Completion marker of one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardMarker {
    plan_hash: String,
    config_hash: String,
    /// Parquet part relative to OUT, or null when every sample failed.
    file: Option<String>,
    /// The part's size and SHA-256 (for `manifest.json`'s `files`).
    #[serde(default)]
    part: Option<FileEntry>,
    errors: Vec<ErrorRecord>,
    stats: Stats,
    /// Size and SHA-256 of every input file of the shard's samples (`None` with `--no-input-hash`).
    #[serde(default)]
    inputs: Option<Vec<InputFile>>,
}

/// One input file of the build: `OUT/inputs.jsonl` lists them, so a dataset can be shipped as a recipe and rebuilt
/// from another copy of the inputs (`export --format recipe`, `verify --recipe`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct InputFile {
    pub source: String,
    /// Relative to the source's root.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl ShardMarker {
    /// Whether the marker stands for a finished shard of this key and config: its part intact, and no description
    /// failed (generation failures are worth retrying — server down, rate limits; the shard's other samples come
    /// back from the request cache without new requests).
    fn stands_for(&self, key: &str, config_hash: &str, out: &Path) -> bool {
        self.plan_hash == key
            && self.config_hash == config_hash
            && self.part_intact(out)
            && !self.errors.iter().any(|e| e.stage == "generate")
    }

    /// Whether the marker's part is on disk as it was written (the size it recorded).
    fn part_intact(&self, out: &Path) -> bool {
        match (&self.file, &self.part) {
            (None, _) => true,
            (Some(_), Some(e)) => same_size(out, e),
            // a marker of an older medgrain without the part's checksum: redo it
            (Some(_), None) => false,
        }
    }
}

/// One planned sample.
struct Planned<'a> {
    source: &'a dyn SampleSource,
    sample: SampleRef,
}

/// Paths in OUT that a build owns and `--force` removes.
const OWNED: &[&str] = &[
    "triplets",
    ".medgrain",
    "errors.jsonl",
    "stats.json",
    "manifest.json",
    "inputs.jsonl",
];

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
    splits: Option<&'a crate::config::SplitsConfig>,
    hash_inputs: bool,
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
        splits,
        hash_inputs,
        bar,
    } = *cx;
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
    // A shard is loaded, described and written a batch at a time (the whole shard for a remote writer, whose
    // concurrency is the batch): rows go to the part as they are made, so memory is bounded by a batch.
    let rel = format!("triplets/part-{k:05}.parquet");
    let mut writer: Option<Box<TripletParquetWriter>> = None;
    let mut rows_written = 0usize;
    let batch = generator.batch_size().unwrap_or(shard.len()).max(1);
    for chunk in shard.chunks(batch) {
        // Stage 1: load and measure every sample (CPU).
        let mut prepared: Vec<(&Planned<'_>, Prepared)> = Vec::with_capacity(chunk.len());
        for p in chunk {
            match guarded(|| prepare(p.source, &p.sample, knowledge, splits)) {
                Ok(r) => prepared.push((p, r)),
                Err(e) => {
                    record_error(p, e, &mut stats);
                    bar.inc(1);
                }
            }
        }
        // Stage 2: describe them (remote writers run the whole batch concurrently).
        let generated = {
            let facts: Vec<_> = prepared.iter().map(|(_, r)| r.facts()).collect();
            generator.generate_batch(&facts)
        };
        // Stage 3: QC and collect, keeping the planned order.
        let mut rows: Vec<TripletRecord> = Vec::with_capacity(prepared.len());
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
        if rows.is_empty() {
            continue;
        }
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(Box::new(TripletParquetWriter::create(&out.join(&rel))?)),
        };
        w.write(&rows)?;
        rows_written += rows.len();
    }
    // no rows, no part (every sample failed)
    let (file, part) = match writer {
        Some(w) if rows_written > 0 => {
            w.finish()?;
            let entry = file_entry(out, &rel)?;
            (Some(rel), Some(entry))
        }
        _ => (None, None),
    };
    // The inputs of the shard's samples, each file hashed once (streamed).
    let inputs = if hash_inputs {
        let mut files = std::collections::BTreeMap::new();
        for p in shard {
            if p.sample.listing_error.is_some() {
                continue;
            }
            for (rel, full) in p.source.input_files(&p.sample) {
                files.entry((p.source.name().to_string(), rel)).or_insert(full);
            }
        }
        let mut v = Vec::with_capacity(files.len());
        for ((source, path), full) in files {
            if let Ok((bytes, sha256)) = crate::engine::fsio::hash_file(&full) {
                v.push(InputFile {
                    source,
                    path,
                    bytes,
                    sha256,
                });
            }
        }
        Some(v)
    } else {
        None
    };
    let marker = ShardMarker {
        plan_hash: plan_hash.into(),
        config_hash: config_hash.into(),
        file,
        part,
        errors,
        stats,
        inputs,
    };
    Ok(marker)
}

/// The triplet recipe's shards for the engine's runner: a shard is a slice of the plan, its key the hash of its
/// sample ids.
struct TripletWork<'a> {
    cx: ShardContext<'a>,
}

impl TripletWork<'_> {
    /// A shard's key: the hash of its sample ids (a listing error marks its sample).
    fn key_of(shard: &[Planned<'_>]) -> String {
        sha256_hex(shard.iter().map(|p| {
            let id = sample_id(p.source.name(), &p.sample.rel_path, None);
            format!("{id}{}", if p.sample.listing_error.is_some() { "!" } else { "" })
        }))
    }
}

impl<'a> ShardWork for TripletWork<'a> {
    type Input = &'a [Planned<'a>];
    type Marker = ShardMarker;

    fn prefix(&self) -> &'static str {
        "triplets"
    }

    fn key(&self, _k: usize, shard: &Self::Input) -> Result<String, PipelineError> {
        Ok(Self::key_of(shard))
    }

    fn keep(&self, _k: usize, key: &str, m: &ShardMarker) -> bool {
        m.stands_for(key, self.cx.config_hash, self.cx.out)
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
    let chash = settings_hash(loaded, knowledge.as_ref())?;
    if opts.force && opts.worker.is_some() {
        return Err(PipelineError::Usage(
            "--force with --worker would delete the other workers' shards: start over with `plan --force` and a \
             plain build, or remove OUT"
                .into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let manifest_path = out.join("manifest.json");
    if opts.force {
        clear_output(out)?;
        // starting over starts without the old plan too
        let p = crate::engine::plan::plan_path(out);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
        }
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
    let sources = open_sources(loaded, out)?;
    let (plan, inputs) = list_samples(&sources)?;
    let shard_size = cfg.output.shard_size;
    // With a plan in OUT (`medgrain plan`), its shards; else shards of `shard_size` in listing order.
    let saved = Plan::read(out)?;
    if opts.worker.is_some() && saved.is_none() {
        return Err(PipelineError::Usage(format!(
            "--worker needs a plan in {0}: run `medgrain plan {1} --out {0}` first",
            out.display(),
            loaded.path.display()
        )));
    }
    let ranges: Vec<(usize, usize)> = match &saved {
        Some(p) => {
            check_plan(p, &chash, &plan_inputs(loaded, &plan), out)?;
            p.shards.iter().map(|s| (s.first, s.count)).collect()
        }
        None => (0..plan.len().div_ceil(shard_size))
            .map(|k| (k * shard_size, shard_size.min(plan.len() - k * shard_size)))
            .collect(),
    };
    let shards: Vec<&[Planned<'_>]> = ranges
        .iter()
        .map(|&(first, count)| &plan[first..first + count])
        .collect();
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
            splits: cfg.splits.as_ref(),
            hash_inputs: !opts.no_input_hash,
            bar: &bar,
        },
    };
    let mine = opts.worker.map(|(i, n)| move |k: usize| k % n == i);
    let run = run_some_shards(
        &work,
        out,
        shards.iter().copied().map(Ok),
        Some(&pool),
        ShardLimits {
            mine: mine.as_ref().map(|f| f as &(dyn Fn(usize) -> bool + Sync)),
            timeout: opts.shard_timeout,
        },
    )?;
    bar.finish_and_clear();
    let resumed = run.resumed();
    if resumed > 0 {
        tracing::info!(resumed, "resuming: finished shards were kept");
    }
    let pending_samples: u64 = run
        .shards
        .iter()
        .zip(&run.kept)
        .filter(|(_, &kept)| !kept)
        .map(|(&k, _)| shards[k].len() as u64)
        .sum();
    if opts.worker.is_some() {
        // A worker writes its shards and stops: `merge` assembles the dataset from every worker's markers.
        let mut stats = Stats::default();
        for m in &run.markers {
            stats.merge(&m.stats);
        }
        return Ok(BuildSummary::new(
            out,
            stats,
            &run.markers,
            run.shards.len(),
            resumed,
            pending_samples,
            started,
            generator.as_ref(),
        ));
    }
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

    remove_temporaries(&out.join(".medgrain/shards"))?;
    if let Ok(rd) = std::fs::read_dir(out.join(".medgrain/located")) {
        for d in rd.flatten() {
            remove_temporaries(&d.path())?;
        }
    }

    // Assemble.
    let stats = assemble(loaded, out, &chash, generator.as_ref(), &markers, &inputs, shards.len())?;
    Ok(BuildSummary::new(
        out,
        stats,
        &markers,
        shards.len(),
        resumed,
        pending_samples,
        started,
        generator.as_ref(),
    ))
}

/// Writes `errors.jsonl`, `stats.json` and `manifest.json` from the shards' markers (in shard order); returns the
/// dataset's stats. What a single-process build and `merge` both end with.
fn assemble(
    loaded: &LoadedConfig,
    out: &Path,
    chash: &str,
    generator: &dyn Generator,
    markers: &[ShardMarker],
    inputs: &[serde_json::Value],
    shard_count: usize,
) -> Result<Stats, PipelineError> {
    let cfg = &loaded.config;
    // what a killed earlier assembly left (errors.jsonl, stats.json, manifest.json are written here)
    remove_temporaries(out)?;
    let mut stats = Stats::default();
    let mut errors_jsonl = Vec::new();
    let mut files = Vec::new();
    let mut entries: Vec<FileEntry> = Vec::new();
    for m in markers {
        stats.merge(&m.stats);
        entries.extend(m.part.iter().cloned());
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
    // inputs.jsonl: every input file once, sorted; plus the files every sample of a source shares.
    let input_hashes = markers.iter().all(|m| m.inputs.is_some());
    if input_hashes {
        let mut all: std::collections::BTreeSet<InputFile> = markers
            .iter()
            .flat_map(|m| m.inputs.iter().flatten().cloned())
            .collect();
        for s in &cfg.sources {
            let root = loaded.resolve(&s.root);
            for rel in [s.metadata.clone(), s.annotations.as_ref().map(std::path::PathBuf::from)]
                .into_iter()
                .flatten()
            {
                let full = root.join(&rel);
                if let Ok((bytes, sha256)) = crate::engine::fsio::hash_file(&full) {
                    all.insert(InputFile {
                        source: s.name.clone(),
                        path: rel.to_string_lossy().replace('\\', "/"),
                        bytes,
                        sha256,
                    });
                }
            }
        }
        let mut text = Vec::new();
        for f in &all {
            text.extend(serde_json::to_vec(f).map_err(|e| PipelineError::Internal(e.to_string()))?);
            text.push(b'\n');
        }
        write_atomic(&out.join("inputs.jsonl"), &text)?;
        entries.push(file_entry(out, "inputs.jsonl")?);
    } else if out.join("inputs.jsonl").exists() {
        std::fs::remove_file(out.join("inputs.jsonl")).map_err(|e| io_err(&out.join("inputs.jsonl"), e))?;
    }
    let g = &cfg.generator;
    if g.price_prompt_per_mtok.is_some() || g.price_completion_per_mtok.is_some() {
        stats.estimated_cost_usd = Some(
            stats.prompt_tokens as f64 / 1e6 * g.price_prompt_per_mtok.unwrap_or(0.0)
                + stats.completion_tokens as f64 / 1e6 * g.price_completion_per_mtok.unwrap_or(0.0),
        );
    }
    let stats_json = serde_json::to_vec_pretty(&stats).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&out.join("stats.json"), &stats_json)?;
    entries.push(file_entry(out, "errors.jsonl")?);
    entries.push(file_entry(out, "stats.json")?);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = serde_json::json!({
        "tool": "medgrain",
        "version": env!("CARGO_PKG_VERSION"),
        "recipe": cfg.recipe,
        "config_path": loaded.path,
        "config": cfg,
        "config_hash": chash,
        "inputs": inputs,
        "input_hashes": input_hashes,
        "counts": {"samples": stats.samples, "rows": stats.rows, "failed": stats.failed, "rois": stats.rois},
        "generator": {"kind": generator.kind(), "prompt_version": generator.prompt_version(), "usage": generator.usage()},
        "shards": {"size": cfg.output.shard_size, "count": shard_count, "files": files},
        "files": entries,
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&out.join("manifest.json"), &manifest_bytes)?;
    Ok(stats)
}

/// The config's sources, opened for a build into `out` (a volume source keeps what its locator found there).
fn open_sources(loaded: &LoadedConfig, out: &Path) -> Result<Vec<Box<dyn SampleSource>>, PipelineError> {
    loaded
        .config
        .sources
        .iter()
        .map(|s| open_source_in(s, loaded, Some(&out.join(".medgrain"))))
        .collect()
}

/// Every source's samples in listing order with their ids, and the per-source counts for the manifest.
fn list_samples(
    sources: &[Box<dyn SampleSource>],
) -> Result<(Vec<Planned<'_>>, Vec<serde_json::Value>), PipelineError> {
    let mut plan = Vec::new();
    let mut inputs = Vec::new();
    for src in sources {
        let list = src.list()?;
        inputs.push(serde_json::json!({"source": src.name(), "samples": list.len()}));
        for sample in list {
            plan.push(Planned {
                source: src.as_ref(),
                sample,
            });
        }
    }
    Ok((plan, inputs))
}

/// The hash of everything that makes a shard's rows: the config's meaning, the knowledge base's contents and the
/// bytes of any expert model (a model replaced under the same path changes every ROI it found).
fn settings_hash(
    loaded: &LoadedConfig,
    knowledge: Option<&crate::knowledge::Knowledge>,
) -> Result<String, PipelineError> {
    let mut chash = match knowledge {
        Some(k) => sha256_hex([loaded.hash()?, k.fingerprint()]),
        None => loaded.hash()?,
    };
    for src in &loaded.config.sources {
        if let Some(o) = &src.onnx {
            let model = loaded.resolve(&o.model);
            if let Ok(bytes) = std::fs::read(&model) {
                chash = sha256_hex([chash.as_bytes(), &Sha256::digest(&bytes)[..]]);
            }
        }
    }
    Ok(chash)
}

/// The plan's view of the listing: per sample its source, path and work — the input file's bytes, shared out
/// between the samples cut from it (slices of one volume).
fn plan_inputs(loaded: &LoadedConfig, plan: &[Planned<'_>]) -> Vec<PlanInput> {
    let roots: std::collections::HashMap<&str, PathBuf> = loaded
        .config
        .sources
        .iter()
        .map(|s| (s.name.as_str(), loaded.resolve(&s.root)))
        .collect();
    let mut per_file: std::collections::HashMap<(&str, &str), u64> = std::collections::HashMap::new();
    for p in plan {
        *per_file
            .entry((p.source.name(), p.sample.rel_path.as_str()))
            .or_default() += 1;
    }
    plan.iter()
        .map(|p| {
            let (src, rel) = (p.source.name(), p.sample.rel_path.as_str());
            let bytes = roots
                .get(src)
                .and_then(|r| std::fs::metadata(r.join(rel)).ok())
                .map_or(0, |m| m.len());
            let path = match &p.sample.slice {
                Some(s) => format!("{rel}#{}{}", s.axis, s.index),
                None => rel.to_string(),
            };
            PlanInput {
                source: src.to_string(),
                path,
                bytes: bytes / per_file[&(src, rel)].max(1),
            }
        })
        .collect()
}

/// A plan made for another config, or for other inputs, is refused (exit 2) with what changed.
fn check_plan(p: &Plan, chash: &str, now: &[PlanInput], out: &Path) -> Result<(), PipelineError> {
    p.refuse_for_other_config(chash, "config, knowledge base or expert model", out)?;
    Plan::refuse_changes(&p.input_changes(now, 10), out)
}

/// `medgrain plan`: lists the inputs and writes `OUT/plan.json` with shards balanced by input bytes (as many as
/// `shard_size` samples per shard would give). The same inputs give the same plan; an existing plan whose inputs or
/// config differ is refused unless `force`.
pub fn make_plan(loaded: &LoadedConfig, out: &Path, force: bool) -> Result<Plan, PipelineError> {
    let knowledge = crate::knowledge::Knowledge::open(loaded)?;
    let chash = settings_hash(loaded, knowledge.as_ref())?;
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let sources = open_sources(loaded, out)?;
    let (planned, _) = list_samples(&sources)?;
    let inputs = plan_inputs(loaded, &planned);
    if let (Some(old), false) = (Plan::read(out)?, force) {
        check_plan(&old, &chash, &inputs, out)?;
        return Ok(old);
    }
    let size = loaded.config.output.shard_size.max(1);
    let plan = Plan::balanced(
        "triplets",
        &loaded.path,
        chash,
        inputs,
        planned.len().div_ceil(size),
        |first, count| TripletWork::key_of(&planned[first..first + count]),
    );
    plan.write(out)?;
    Ok(plan)
}

/// Which of a plan's shards are finished in OUT (a valid marker and its part, and no description failed).
fn finished(plan: &Plan, out: &Path) -> Result<Vec<Option<(ShardMarker, ShardState)>>, PipelineError> {
    Ok(MarkerStore::open(out, "triplets")?.finished(
        plan,
        |_, key, m: &ShardMarker| m.stands_for(key, &plan.config_hash, out),
        |m| (m.stats.samples, !m.errors.is_empty()),
    ))
}

/// `medgrain merge`: assembles `errors.jsonl`, `stats.json` and `manifest.json` from the markers on disk of every
/// shard of the plan (never from a process's memory); idempotent. Missing shards are an error naming them.
pub fn merge(out: &Path, plan: &Plan) -> Result<BuildSummary, PipelineError> {
    let started = Instant::now();
    let loaded = &crate::config::load(&plan.config_path)?;
    let knowledge = crate::knowledge::Knowledge::open(loaded)?;
    let chash = settings_hash(loaded, knowledge.as_ref())?;
    plan.refuse_other_config(&chash, out)?;
    let markers: Vec<ShardMarker> = plan.all_finished(finished(plan, out)?, out)?;
    let mut inputs_per_source: Vec<(String, usize)> = Vec::new();
    for i in &plan.inputs {
        match inputs_per_source.last_mut() {
            Some((s, n)) if *s == i.source => *n += 1,
            _ => inputs_per_source.push((i.source.clone(), 1)),
        }
    }
    let inputs: Vec<serde_json::Value> = inputs_per_source
        .iter()
        .map(|(s, n)| serde_json::json!({"source": s, "samples": n}))
        .collect();
    // what killed workers left behind (merge runs once they are done)
    for d in ["triplets", ".medgrain/shards"] {
        remove_temporaries(&out.join(d))?;
    }
    let generator = make_generator(loaded, out)?;
    let stats = assemble(
        loaded,
        out,
        &chash,
        generator.as_ref(),
        &markers,
        &inputs,
        plan.shards.len(),
    )?;
    Ok(BuildSummary::new(
        out,
        stats,
        &markers,
        plan.shards.len(),
        plan.shards.len(),
        0,
        started,
        generator.as_ref(),
    ))
}

/// `medgrain status` of a triplets plan: done, missing and failed shards, the rate and the ETA.
pub fn status(out: &Path, plan: &Plan) -> Result<Status, PipelineError> {
    let done: Vec<Option<ShardState>> = finished(plan, out)?.into_iter().map(|d| d.map(|(_, s)| s)).collect();
    Ok(Status::of(plan, &done))
}

/// Samples whose description failed (stage `generate`), a cause worth retrying.
fn generate_failures(markers: &[ShardMarker]) -> u64 {
    markers
        .iter()
        .flat_map(|m| &m.errors)
        .filter(|e| e.stage == "generate")
        .count() as u64
}
