//! The `medgrain` command line: argument parsing, logging and exit codes. All work happens in the library crates.

use clap::{Parser, Subcommand};
use medgrain_pipeline::{config, demo, inspect, BuildOptions, BuildSummary, PipelineError};
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

fn init_logging(quiet: bool) {
    let default = if quiet { "error" } else { "info" };
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
        Command::Demo { out, seed, force } => {
            let d = demo::demo(&out, seed, &BuildOptions { force, progress })?;
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
            print_build("  2D triplets (MedTrinity recipe, template writer):", &d.triplets);
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
            let out = match (out, &loaded.config.output.dir) {
                (Some(o), _) => o,
                (None, Some(d)) => loaded.resolve(d),
                (None, None) => {
                    return Err(PipelineError::Usage(format!(
                        "{}: no output folder: pass --out DIR or set `dir` under [output]",
                        path.display()
                    )))
                }
            };
            let s = medgrain_pipeline::build(&loaded, &out, &BuildOptions { force, progress })?;
            print_build(&format!("medgrain build {} → {}", path.display(), out.display()), &s);
            Ok(if s.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
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
