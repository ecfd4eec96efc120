//! The `medgrain` command line: argument parsing, logging and exit codes. All work happens in the library crates.

use clap::{Parser, Subcommand};
use medgrain_pipeline::{batch, config, demo, inspect, BuildOptions, BuildSummary, PipelineError};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "medgrain",
    version,
    about = "Build grounded, multigranular medical vision-language datasets",
    long_about = "medgrain turns medical images and their annotations into image–ROI–description triplets \
                  (the MedTrinity-25M recipe), offline and resumably.\n\n\
                  Start with `medgrain demo --out demo`, then `medgrain inspect demo`.",
    after_help = "Exit status: 0 success · 1 finished, but some samples failed (see OUT/errors.jsonl) · 2 unusable arguments or config.\n\
                  Logs go to stderr; set MEDGRAIN_LOG=debug for per-sample detail."
)]
struct Cli {
    /// Only print errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a deterministic synthetic corpus with known ground truth (2D images + masks, 3D CT + organ masks + reports).
    Synth {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Seed: the same seed gives byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Images per 2D kind (seven kinds).
        #[arg(long, default_value_t = 36)]
        images_per_kind: usize,
        /// Number of 3D CT volumes.
        #[arg(long, default_value_t = 8)]
        volumes: usize,
    },
    /// Run the main job on embedded defaults: synthetic corpus, then the triplet recipe; offline.
    Demo {
        /// Output folder (the corpus goes to OUT/synth, the dataset to OUT).
        #[arg(long)]
        out: PathBuf,
        /// Corpus seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Discard previous output in OUT and start over (default: resume).
        #[arg(long)]
        force: bool,
        /// Write descriptions with an OpenAI-compatible server at URL (ending in /v1); key from OPENAI_API_KEY.
        #[arg(long, requires = "model")]
        generator_url: Option<String>,
        /// The model name the server serves (with --generator-url).
        #[arg(long, requires = "generator_url")]
        model: Option<String>,
    },
    /// Run the pipeline a TOML config describes (resumes when OUT already holds a run of the same config).
    Build {
        /// The config file.
        config: PathBuf,
        /// Output folder (default: `[output] dir` of the config).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Discard previous output in OUT and start over.
        #[arg(long)]
        force: bool,
    },
    /// Offline batch generation through OpenAI Batch API files (also read by `vllm run-batch`).
    Batch {
        #[command(subcommand)]
        action: BatchAction,
    },
    /// A local Chat Completions server for trying configs and testing clients (answers from the prompt's facts).
    MockServer {
        /// Port on 127.0.0.1 (0 = any free port; the address is printed).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The model name it serves.
        #[arg(long, default_value = "mock-model")]
        model: String,
        /// Latency added to every answer, milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Inject faults deterministically per prompt (429, 500, stalls, malformed and truncated answers).
        #[arg(long)]
        faults: bool,
        /// How long a stalled answer (a fault class) hangs, milliseconds.
        #[arg(long, default_value_t = 5000)]
        stall_ms: u64,
        /// Require `Authorization: Bearer $VAR`.
        #[arg(long)]
        require_key_env: Option<String>,
    },
    /// Facts about images and volumes (NIfTI-1/2, PNG, JPEG, TIFF), one JSON object per line.
    Probe {
        /// Files, or folders of DICOM files (one line per series: slices ordered by position, gaps reported).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON lines (the only output form).
        #[arg(long)]
        json: bool,
        /// Also write each DICOM file's decoded stored values as float64 `.npy` (`DIR/N.npy`, N = the output line,
        /// 0-based; the line gains "values_npy").
        #[arg(long)]
        npy_dir: Option<PathBuf>,
    },
    /// Render one frame of a DICOM file to an 8-bit PNG for display: modality LUT, VOI window (the file's, or
    /// --window), MONOCHROME1 inverted, YCbCr as RGB.
    Render {
        file: PathBuf,
        /// PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Frame of a multi-frame file (0-based).
        #[arg(long, default_value_t = 0)]
        frame: usize,
        /// `CENTRE,WIDTH` or a CT preset (lung, mediastinum, bone, brain, abdomen); default: the file's window, else
        /// the frame's full range.
        #[arg(long, allow_hyphen_values = true)]
        window: Option<String>,
    },
    /// Reorient a 3D NIfTI volume to RAS+ (nibabel's as_closest_canonical: axes permuted and flipped, never
    /// resampled) and write it as .nii.gz.
    Reorient {
        file: PathBuf,
        /// Output .nii.gz.
        #[arg(long)]
        out: PathBuf,
    },
    /// Find ROIs in an unannotated volume (NIfTI, or a DICOM series folder) or 2D image with a locator and write
    /// one mask per structure (`OUT/<name>.nii.gz` on the volume's grid; `OUT/<name>.png` for images).
    Locate {
        file: PathBuf,
        /// classical:ct-body, classical:ct-lung, classical:ct-bone (CT volumes), or expert:onnx (with --onnx).
        #[arg(long)]
        locator: medgrain_roi::locate::LocatorName,
        /// The model config for expert:onnx (TOML: model, classes, normalize, tile, …; see README).
        #[arg(long)]
        onnx: Option<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Connected components of a label map or mask (NIfTI, PNG, TIFF) per label, as JSON.
    Rois {
        file: PathBuf,
        /// JSON output (the only form).
        #[arg(long)]
        json: bool,
        /// scipy connectivity: 1 = faces only … rank = full (default: full).
        #[arg(long)]
        connectivity: Option<usize>,
        /// Label names, lines `value name` (default: FILE.txt next to the file, if present).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Intensity volume on the same grid (e.g. the CT) for mean/std HU and attenuation.
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// Medical knowledge base: build from JSONL / Markdown / text / PubMed XML, search by BM25, dense or hybrid.
    Kb {
        #[command(subcommand)]
        action: KbAction,
    },
    /// Radiology reports: grounding of report sentences to anatomy and findings.
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// Summarise an output dataset: counts per modality/organ/source, failures, sample rows.
    Inspect {
        /// The output folder of `build` or `demo`.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// How many rows to show in full.
        #[arg(long, default_value_t = 3)]
        samples: usize,
    },
}

#[derive(Subcommand)]
enum KbAction {
    /// Build (or extend) a knowledge base. Files already ingested (same content) are skipped.
    Build {
        /// Input files or folders (.jsonl, .md, .txt, PubMed .xml).
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// The knowledge base folder.
        #[arg(long)]
        out: PathBuf,
        /// all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer.json); default $MEDGRAIN_EMBED_MODEL.
        /// Without one the knowledge base is BM25-only.
        #[arg(long)]
        embed_model: Option<PathBuf>,
        /// Chunk size limit in model tokens.
        #[arg(long, default_value_t = 200)]
        max_tokens: usize,
        /// Sentences shared by consecutive chunks.
        #[arg(long, default_value_t = 1)]
        overlap: usize,
    },
    /// Retrieve passages: {"query", "hits": [{"id", "title", "source", "score", "text"}]}.
    Search {
        kb: PathBuf,
        /// The query (or give --queries).
        #[arg(required_unless_present = "queries")]
        query: Option<String>,
        /// A file with one query per line: one JSON object per query, in order (model loaded once).
        #[arg(long, conflicts_with = "query")]
        queries: Option<PathBuf>,
        /// JSON output (the default form is text).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// bm25 | dense | hybrid (default: hybrid when the KB has embeddings and the model is found, else bm25).
        #[arg(long)]
        mode: Option<medgrain_knowledge::Mode>,
        #[arg(long)]
        embed_model: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReportAction {
    /// Ground every sentence of a report file: one JSON object per sentence. A CSV (CT-RATE's columns VolumeName,
    /// Findings_EN, Impressions_EN by default), or plain text with one report per line (`.txt`, or --lines).
    Ground {
        reports: PathBuf,
        /// JSON lines (the only output form).
        #[arg(long)]
        json: bool,
        /// The CSV column that names the report (default VolumeName).
        #[arg(long, default_value = "VolumeName")]
        id_column: String,
        /// The CSV column with the findings section (default Findings_EN).
        #[arg(long, default_value = "Findings_EN")]
        findings_column: String,
        /// The CSV column with the impression section (default Impressions_EN).
        #[arg(long, default_value = "Impressions_EN")]
        impression_column: String,
        /// Read plain text, one report per line (ids `line-N`); the default for files ending in .txt.
        #[arg(long)]
        lines: bool,
    },
    /// Negation and uncertainty of a concept in a sentence: for JSON lines {"concept", "sentence"}, one JSON object
    /// {"concept", "sentence", "negated", "uncertain", "cue", "found"} per line, in order.
    Context {
        file: PathBuf,
        /// JSON lines (the only output form).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BatchAction {
    /// Write the requests a build would send (those not already cached) to OUT/batch/requests-NNNNN.jsonl.
    Export {
        config: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Lines per file at most.
        #[arg(long, default_value_t = 50_000)]
        max_lines: usize,
        /// Megabytes per file at most.
        #[arg(long, default_value_t = 200)]
        max_mb: usize,
    },
    /// Read Batch API output/error files into the request cache; then `build` writes the answered samples.
    Import {
        config: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output and error files of the batch.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn out_dir(loaded: &config::LoadedConfig, out: Option<PathBuf>) -> Result<PathBuf, PipelineError> {
    match (out, &loaded.config.output.dir) {
        (Some(o), _) => Ok(o),
        (None, Some(d)) => Ok(loaded.resolve(d)),
        (None, None) => Err(PipelineError::Usage(format!(
            "{}: no output folder: pass --out DIR or set `dir` under [output]",
            loaded.path.display()
        ))),
    }
}

fn init_logging(quiet: bool) {
    let default = if quiet { "error" } else { "info,tantivy=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDGRAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .compact()
        .init();
}

fn top_counts(m: &std::collections::BTreeMap<String, u64>, n: usize) -> String {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .take(n)
        .map(|(k, c)| format!("{k} {c}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn print_build(title: &str, s: &BuildSummary) {
    let rate = if s.elapsed_s > 0.0 {
        (s.processed as f64) / s.elapsed_s
    } else {
        0.0
    };
    println!("{title}");
    println!(
        "  rows {} · failed {} · shards {} ({} kept from a previous run) · {} processed in {:.1} s ({:.0} samples/s)",
        s.rows, s.failed, s.shards, s.shards_resumed, s.processed, s.elapsed_s, rate
    );
    println!("  modality  {}", top_counts(&s.stats.by_modality, 8));
    println!("  organ     {}", top_counts(&s.stats.by_organ, 8));
    println!("  ROIs {} · rows with QC flags {}", s.stats.rois, s.stats.qc_failed);
    if let Some(u) = &s.generator_usage {
        println!(
            "  generator requests {} · cache hits {} · retries {} · tokens {} in / {} out{}",
            u["requests_sent"],
            u["cache_hits"],
            u["retries"],
            s.stats.prompt_tokens,
            s.stats.completion_tokens,
            s.stats
                .estimated_cost_usd
                .map(|c| format!(" · ≈ ${c:.2}"))
                .unwrap_or_default()
        );
    }
    let out = s.out.display();
    println!("  output    {out}/triplets/*.parquet · {out}/errors.jsonl · {out}/stats.json · {out}/manifest.json");
    if s.failed > 0 {
        println!(
            "  failures  {} (see {out}/errors.jsonl)",
            top_counts(&s.stats.failures_by_stage, 8)
        );
    }
}

fn run(cli: Cli) -> std::result::Result<ExitCode, PipelineError> {
    let progress = !cli.quiet && std::io::stderr().is_terminal();
    match cli.command {
        Command::Synth {
            out,
            seed,
            images_per_kind,
            volumes,
        } => {
            let opts = medgrain_synth::SynthOptions {
                seed,
                images_per_kind,
                volumes,
            };
            let s = medgrain_synth::write_corpus(&out, &opts)?;
            println!(
                "wrote {} images and {} volumes to {} (seed {seed})",
                s.images,
                s.volumes,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            out,
            seed,
            force,
            generator_url,
            model,
        } => {
            let remote = match (generator_url, model) {
                (Some(base_url), Some(model)) => Some(demo::DemoGenerator { base_url, model }),
                _ => None,
            };
            let d = demo::demo(&out, seed, &BuildOptions { force, progress }, remote.as_ref())?;
            println!("medgrain demo → {}", out.display());
            println!(
                "  synthetic corpus: {} images, {} CT volumes in {}{}",
                d.synth.images,
                d.synth.volumes,
                out.join("synth").display(),
                if d.synth_reused {
                    " (kept from the previous run)"
                } else {
                    ""
                }
            );
            let writer = if remote.is_some() {
                "model server"
            } else {
                "template writer"
            };
            print_build(
                &format!("  triplets from 2D images and CT slices (MedTrinity recipe, {writer}):"),
                &d.triplets,
            );
            let r = &d.reports;
            println!("  grounded reports (RadGenome recipe, {} CT reports):", r.volumes);
            println!(
                "  sentences {} ({} abnormal) · grounded rows {} · VQA pairs {} · lesion masks measured {} · size disagreements {}",
                r.sentences, r.abnormal_sentences, r.grounded_rows, r.vqa_rows, r.lesions_measured, r.size_disagreements
            );
            println!(
                "  shards {} ({} resumed) · volumes with report/mask contradictions {} · errors {}",
                r.shards, r.shards_resumed, r.volumes_flagged, r.errors
            );
            println!(
                "  output    {0}/grounded_reports/ · {0}/vqa/ (Parquet and RadGenome-style CSV) · {0}/structured_findings/",
                out.display()
            );
            if let Some((volume, report, block)) = &d.example {
                println!("\n  {volume} — report (findings):");
                for s in medgrain_reports::split_sentences(report) {
                    println!("    {s}");
                }
                println!("  {volume} — measured on its masks:");
                for line in block.lines() {
                    println!("    {line}");
                }
            }
            println!("  next: medgrain inspect {}", out.display());
            Ok(if d.triplets.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Build {
            config: path,
            out,
            force,
        } => {
            let loaded = config::load(&path)?;
            let out = out_dir(&loaded, out)?;
            if let (Some(r), medgrain_pipeline::config::Recipe::GroundedReports) =
                (&loaded.config.reports, loaded.config.recipe)
            {
                let job = medgrain_pipeline::recipes::grounded_reports::ReportsJob {
                    csv: loaded.resolve(&r.csv),
                    root: loaded.resolve(&r.root),
                    masks: r.masks.clone(),
                    lesions: r.lesions.clone(),
                    volumes: r.volumes.clone(),
                    shard_volumes: r.shard_volumes,
                    top_level_files: true,
                };
                let s = medgrain_pipeline::recipes::grounded_reports::build_grounded_reports(&job, &out)?;
                println!(
                    "medgrain build {} → {} (grounded reports)",
                    path.display(),
                    out.display()
                );
                println!(
                    "  reports {} · sentences {} ({} abnormal) · grounded rows {} · VQA pairs {} · lesion masks measured {} · size disagreements {}",
                    s.volumes, s.sentences, s.abnormal_sentences, s.grounded_rows, s.vqa_rows, s.lesions_measured, s.size_disagreements
                );
                println!(
                    "  shards {} ({} resumed) · volumes with report/mask contradictions {} · errors {}",
                    s.shards, s.shards_resumed, s.volumes_flagged, s.errors
                );
                println!(
                    "  output    {0}/grounded_reports/ · {0}/vqa/ · {0}/structured_findings/",
                    out.display()
                );
                return Ok(if s.errors > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                });
            }
            let s = medgrain_pipeline::build(&loaded, &out, &BuildOptions { force, progress })?;
            print_build(&format!("medgrain build {} → {}", path.display(), out.display()), &s);
            Ok(if s.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Batch { action } => match action {
            BatchAction::Export {
                config: path,
                out,
                max_lines,
                max_mb,
            } => {
                let loaded = config::load(&path)?;
                let out = out_dir(&loaded, out)?;
                let limits = batch::BatchLimits {
                    max_lines: max_lines.max(1),
                    max_bytes: max_mb.max(1) * 1024 * 1024,
                };
                let s = batch::export(&loaded, &out, limits)?;
                println!(
                    "{} samples: {} requests in {} file(s) under {}, {} already cached, {} failed (see {})",
                    s.samples,
                    s.requests,
                    s.files.len(),
                    out.join("batch").display(),
                    s.already_cached,
                    s.failed,
                    out.join("batch/errors.jsonl").display()
                );
                Ok(if s.failed > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                })
            }
            BatchAction::Import {
                config: path,
                out,
                files,
            } => {
                let loaded = config::load(&path)?;
                let out = out_dir(&loaded, out)?;
                let s = batch::import(&loaded, &out, &files)?;
                println!(
                    "imported {} answers into the request cache; {} failed; {} unknown ids",
                    s.imported,
                    s.failed.len(),
                    s.unknown
                );
                for (id, why) in s.failed.iter().take(20) {
                    println!("  failed {id}: {why}");
                }
                println!("next: medgrain build {} --out {}", path.display(), out.display());
                Ok(if s.failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        },
        Command::MockServer {
            port,
            model,
            latency_ms,
            faults,
            stall_ms,
            require_key_env,
        } => {
            let api_key = match require_key_env {
                Some(var) => Some(
                    std::env::var(&var)
                        .map_err(|_| PipelineError::Usage(format!("--require-key-env: ${var} is not set")))?,
                ),
                None => None,
            };
            let opts = medgrain_generate::openai::mock::MockOptions {
                model,
                api_key,
                latency: std::time::Duration::from_millis(latency_ms),
                faults,
                stall: std::time::Duration::from_millis(stall_ms),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .map_err(|e| PipelineError::Usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| PipelineError::Internal(e.to_string()))?;
                println!(
                    "mock server listening on http://{addr}/v1 (model {:?}; statistics at GET /v1/stats)",
                    opts.model
                );
                use std::io::Write;
                let _ = std::io::stdout().flush();
                let stats = std::sync::Arc::new(medgrain_generate::openai::mock::MockStats::default());
                medgrain_generate::openai::mock::serve(listener, opts, stats).await;
                Ok::<(), PipelineError>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            file,
            out,
            frame,
            window,
        } => {
            let window = match window.as_deref() {
                None => None,
                Some(w) => Some(parse_window(w).ok_or_else(|| {
                    PipelineError::Usage(format!(
                        "--window {w:?}: give CENTRE,WIDTH (e.g. 40,400) or lung, mediastinum, bone, brain, abdomen"
                    ))
                })?),
            };
            let img = medgrain_imaging::dicom::read_dicom(&file).map_err(|e| PipelineError::Input(e.to_string()))?;
            let r = img
                .render_frame(frame, window)
                .map_err(|e| PipelineError::Input(format!("{}: {e}", file.display())))?;
            let medgrain_imaging::PixelData::U8(px) = &r.data else {
                return Err(PipelineError::Internal("render gave non-8-bit pixels".into()));
            };
            let png = medgrain_imaging::encode_png(r.width, r.height, r.channels, px)
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            std::fs::write(&out, png).map_err(|e| PipelineError::Input(format!("{}: {e}", out.display())))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Locate {
            file,
            locator,
            onnx,
            out,
        } => {
            let expert = locator == medgrain_roi::locate::LocatorName::ExpertOnnx;
            let onnx = match (onnx, expert) {
                (Some(p), true) => {
                    Some(medgrain_expert::OnnxConfig::from_file(&p).map_err(|e| PipelineError::Usage(e.to_string()))?)
                }
                (Some(_), false) => return Err(PipelineError::Usage("--onnx goes with --locator expert:onnx".into())),
                (None, true) => {
                    return Err(PipelineError::Usage(
                        "--locator expert:onnx needs --onnx MODEL.toml".into(),
                    ))
                }
                (None, false) => None,
            };
            // the name is known: what fails now is loading (the library, the model, its signature)
            let loc = medgrain_pipeline::rois::build_locator(locator, onnx.as_ref()).map_err(PipelineError::Input)?;
            let written = medgrain_pipeline::rois::locate_file(&file, loc.as_ref(), &out)
                .map_err(|e| PipelineError::Input(e.message))?;
            for f in written {
                match f.score {
                    Some(p) => println!(
                        "{}: {} voxels, mean confidence {p:.4} → {}",
                        f.name,
                        f.voxels,
                        f.path.display()
                    ),
                    None => println!("{}: {} voxels → {}", f.name, f.voxels, f.path.display()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reorient { file, out } => {
            let (codes, shape) = medgrain_imaging::reorient::reorient_nifti_file(&file, &out)
                .map_err(|e| PipelineError::Input(e.to_string()))?;
            println!(
                "{}: {codes} → RAS, shape {shape:?}, written to {}",
                file.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe {
            files,
            json: _,
            npy_dir,
        } => {
            let mut failed = false;
            let mut n = 0usize;
            if let Some(d) = &npy_dir {
                std::fs::create_dir_all(d).map_err(|e| PipelineError::Io {
                    path: d.clone(),
                    source: e,
                })?;
            }
            for f in &files {
                for r in medgrain_imaging::probe::probe_path(f) {
                    let line = match r {
                        Ok(mut v) => {
                            if let (Some(d), Some("dicom")) = (&npy_dir, v["format"].as_str()) {
                                let p = PathBuf::from(v["path"].as_str().unwrap_or_default());
                                let img = medgrain_imaging::dicom::read_dicom(&p)
                                    .map_err(|e| PipelineError::Input(e.to_string()))?;
                                let out = d.join(format!("{n}.npy"));
                                let bytes = medgrain_imaging::probe::npy_f64(&img.values, &img.shape());
                                std::fs::write(&out, bytes).map_err(|e| PipelineError::Io {
                                    path: out.clone(),
                                    source: e,
                                })?;
                                v["values_npy"] = serde_json::json!(out.display().to_string());
                            }
                            v
                        }
                        Err(e) => {
                            failed = true;
                            serde_json::json!({"path": f.display().to_string(), "error": e.to_string()})
                        }
                    };
                    println!("{line}");
                    n += 1;
                }
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Rois {
            file,
            json: _,
            connectivity,
            labels,
            image,
        } => match medgrain_pipeline::rois::rois_of_file(&file, connectivity, labels.as_deref(), image.as_deref()) {
            Ok(v) => {
                println!("{v}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) if e.usage => Err(PipelineError::Usage(e.message)),
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"path": file.display().to_string(), "error": e.message})
                );
                Ok(ExitCode::from(1))
            }
        },
        Command::Kb {
            action:
                KbAction::Build {
                    input,
                    out,
                    embed_model,
                    max_tokens,
                    overlap,
                },
        } => {
            let opts = medgrain_knowledge::BuildOptions {
                embed_model,
                chunk: medgrain_knowledge::chunk::ChunkOptions { max_tokens, overlap },
            };
            let started = std::time::Instant::now();
            let s = medgrain_knowledge::build(&input, &out, &opts, &mut |r, i, n| {
                if !cli.quiet {
                    let problems = if r.problems.is_empty() {
                        String::new()
                    } else {
                        format!(" · problems {:?}", r.problems)
                    };
                    eprintln!(
                        "[{i}/{n}] {} ({}): {} documents{problems}",
                        r.path, r.format, r.documents
                    );
                }
            })?;
            let secs = started.elapsed().as_secs_f64();
            println!("medgrain kb build → {}", out.display());
            println!(
                "  files {} read · {} already in the knowledge base · documents {} · chunks {} (+{} duplicates dropped) · tokens {}",
                s.files_read, s.files_already_ingested, s.documents, s.chunks, s.duplicates, s.tokens
            );
            println!(
                "  {} · {:.1} s ({:.0} chunks/s) · knowledge base now holds {} chunks",
                if s.dense {
                    "BM25 + dense (all-MiniLM-L6-v2)"
                } else {
                    "BM25 only"
                },
                secs,
                s.chunks as f64 / secs.max(1e-9),
                s.total_chunks
            );
            for r in s.reports.iter().filter(|r| !r.problems.is_empty()) {
                println!(
                    "  problems in {}: {:?} e.g. {}",
                    r.path,
                    r.problems,
                    r.examples.join("; ")
                );
            }
            Ok(if s.problems > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Kb {
            action:
                KbAction::Search {
                    kb,
                    query,
                    queries,
                    json,
                    top,
                    mode,
                    embed_model,
                },
        } => {
            let base = medgrain_knowledge::KnowledgeBase::open(&kb, embed_model.as_deref())?;
            let mode = match mode {
                Some(m) => {
                    if m != medgrain_knowledge::Mode::Bm25 && !base.dense() {
                        return Err(PipelineError::Usage(format!(
                            "--mode {m:?}: {} has no usable embeddings (built without a model, or the model is not found: set --embed-model or MEDGRAIN_EMBED_MODEL)",
                            kb.display()
                        )));
                    }
                    m
                }
                None if base.dense() => medgrain_knowledge::Mode::Hybrid,
                None => medgrain_knowledge::Mode::Bm25,
            };
            let list: Vec<String> = match (&query, &queries) {
                (Some(q), _) => vec![q.clone()],
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| PipelineError::Io {
                        path: f.clone(),
                        source: e,
                    })?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
                (None, None) => Vec::new(),
            };
            for query in list {
                let hits = base.search(&query, top, mode)?;
                if json {
                    println!("{}", serde_json::json!({"query": query, "hits": hits}));
                } else {
                    println!("{query}");
                    for (i, h) in hits.iter().enumerate() {
                        println!("{}. [{:.4}] {} — {} ({})", i + 1, h.score, h.id, h.title, h.source);
                        println!("   {}", h.text);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            action:
                ReportAction::Ground {
                    reports,
                    json: _,
                    id_column,
                    findings_column,
                    impression_column,
                    lines,
                },
        } => {
            let ont = medgrain_reports::Ontology::embedded().map_err(|e| PipelineError::Internal(e.to_string()))?;
            let layout = if lines || reports.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
                medgrain_reports::ReportLayout::Lines
            } else {
                medgrain_reports::ReportLayout::Csv {
                    id_column,
                    findings_column,
                    impression_column,
                }
            };
            let mut out = JsonLines::stdout();
            let n = medgrain_reports::ground_reports(&ont, &reports, &layout, &mut |g| out.write(&g))
                .map_err(|e| PipelineError::Usage(e.to_string()))?;
            if out.finish()? {
                tracing::info!(reports = n, "grounded");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            action: ReportAction::Context { file, json: _ },
        } => {
            use std::io::BufRead;
            let f = std::fs::File::open(&file).map_err(|e| PipelineError::Io {
                path: file.clone(),
                source: e,
            })?;
            let mut out = JsonLines::stdout();
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| PipelineError::Io {
                    path: file.clone(),
                    source: e,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |why: String| PipelineError::Usage(format!("{} line {}: {why}", file.display(), i + 1));
                let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
                let field = |k: &str| {
                    v.get(k)
                        .and_then(|x| x.as_str())
                        .ok_or_else(|| bad(format!("no string field {k:?}")))
                };
                let (concept, sentence) = (field("concept")?, field("sentence")?);
                out.write(&medgrain_reports::context::concept_context(concept, sentence));
            }
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { dir, json, samples } => {
            let ins = inspect::inspect(&dir, samples)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&ins).map_err(|e| PipelineError::Internal(e.to_string()))?
                );
            } else {
                print!("{}", ins.render());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let err = anyhow::Error::new(e);
            eprintln!("medgrain: error: {err:#}");
            let code = err.downcast_ref::<PipelineError>().map(|e| e.exit_code()).unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}

/// JSON lines on stdout; a closed pipe (`| head`) ends the output quietly, other write errors are kept for
/// [`JsonLines::finish`].
struct JsonLines {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    err: Option<std::io::Error>,
}

impl JsonLines {
    fn stdout() -> Self {
        JsonLines {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            err: None,
        }
    }

    fn write<T: serde::Serialize>(&mut self, value: &T) {
        use std::io::Write;
        if self.err.is_none() {
            // Serialise first so that a write error keeps its kind (a closed pipe stays BrokenPipe).
            let line = serde_json::to_string(value).unwrap_or_default();
            if let Err(e) = writeln!(self.out, "{line}") {
                self.err = Some(e);
            }
        }
    }

    /// `Ok(true)` when everything was written, `Ok(false)` when the reader closed the pipe.
    fn finish(mut self) -> Result<bool, PipelineError> {
        use std::io::Write;
        if self.err.is_none() {
            if let Err(e) = self.out.flush() {
                self.err = Some(e);
            }
        }
        match self.err {
            None => Ok(true),
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Some(e) => Err(PipelineError::Io {
                path: "<stdout>".into(),
                source: e,
            }),
        }
    }
}

/// `CENTRE,WIDTH` or a CT preset name.
fn parse_window(s: &str) -> Option<(f64, f64)> {
    if let Some(w) = medgrain_imaging::render::ct_window(s) {
        return Some(w);
    }
    let (c, w) = s.split_once(',')?;
    let (c, w) = (c.trim().parse::<f64>().ok()?, w.trim().parse::<f64>().ok()?);
    (c.is_finite() && w.is_finite() && w >= 1.0).then_some((c, w))
}
