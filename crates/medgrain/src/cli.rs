//! The command line's grammar (clap): the commands and their arguments. Each command runs in its own module under
//! `commands/`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
pub(crate) struct Cli {
    /// Only print errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Write a deterministic synthetic corpus with known ground truth (2D images + masks, 3D CT + organ masks + reports).
    Synth(SynthArgs),
    /// Run the main job on embedded defaults: synthetic corpus, then the triplet recipe; offline.
    Demo(DemoArgs),
    /// Run the pipeline a TOML config describes (resumes when OUT already holds a run of the same config).
    Build(BuildArgs),
    /// Plan a build's shards into OUT/plan.json (balanced by input bytes) for workers: `build --worker I/N`, then
    /// `merge`. The same inputs give the same plan; changed inputs under an existing plan are refused unless --force.
    Plan(PlanArgs),
    /// Assemble errors.jsonl, stats.json and manifest.json from every shard the workers finished (exit 1 naming
    /// the missing shards); idempotent. The config is the one the plan in DIR was made from.
    Merge(MergeArgs),
    /// Done, missing and failed shards of the plan in DIR, the rate, the ETA and the command that reruns the rest.
    Status(StatusArgs),
    /// Write a Slurm job array for the plan's workers and a merge job that runs after it (DIR/slurm/*.sbatch);
    /// --submit submits both and prints their ids.
    Slurm(SlurmArgs),
    /// Write a Kubernetes Indexed Job for the plan's workers and a merge Job (DIR/k8s/workers.yaml, merge.yaml).
    K8s(K8sArgs),
    /// Offline batch generation through OpenAI Batch API files (also read by `vllm run-batch`).
    Batch {
        #[command(subcommand)]
        action: BatchAction,
    },
    /// A local Chat Completions server for trying configs and testing clients (answers from the prompt's facts).
    MockServer(MockServerArgs),
    /// Facts about images and volumes (NIfTI-1/2, PNG, JPEG, TIFF), one JSON object per line.
    Probe(ProbeArgs),
    /// Render one frame of a DICOM file to an 8-bit PNG for display: modality LUT, VOI window (the file's, or
    /// --window), MONOCHROME1 inverted, YCbCr as RGB.
    Render(RenderArgs),
    /// Reorient a 3D NIfTI volume to RAS+ (nibabel's as_closest_canonical: axes permuted and flipped, never
    /// resampled) and write it as .nii.gz.
    Reorient(ReorientArgs),
    /// Find ROIs in an unannotated volume (NIfTI, or a DICOM series folder) or 2D image with a locator and write
    /// one mask per structure (`OUT/<name>.nii.gz` on the volume's grid; `OUT/<name>.png` for images).
    Locate(LocateArgs),
    /// Connected components of a label map or mask (NIfTI, PNG, TIFF) per label, as JSON.
    Rois(RoisArgs),
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
    Inspect(InspectArgs),
    /// Re-check every file manifest.json lists (size, SHA-256) and every mask the rows reference; exit 1 naming
    /// what differs
    Verify(VerifyArgs),
    /// Training-ready copy of a built dataset: llava, sharegpt, webdataset, coco, vqa or hf
    Export(ExportArgs),
    /// Perceptual-hash near-duplicates within the dataset and against reference image sets; writes DIR/dedup.jsonl
    /// and adds QC flags
    Dedup(DedupArgs),
    /// The 64-bit perceptual hash (imagehash's pHash) of image files, one "HASH  FILE" line each
    Phash(PhashArgs),
    /// Review a dataset in the browser: accept / edit / reject rows (decisions in DIR/review.sqlite)
    Review(ReviewArgs),
    /// De-identify DICOM files by the PS3.15 Basic Application Level Confidentiality Profile (never over the input)
    Deid(DeidArgs),
    /// Score a model on a dataset by a published protocol: medical VQA, 3D grounding, reports
    Eval {
        #[command(subcommand)]
        action: EvalAction,
    },
}

#[derive(Args)]
pub(crate) struct SynthArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per 2D kind (seven kinds).
    #[arg(long, default_value_t = 36)]
    pub images_per_kind: usize,
    /// Number of 3D CT volumes.
    #[arg(long, default_value_t = 8)]
    pub volumes: usize,
    /// Voxel grid of the volumes, X,Y,Z (the same anatomy and field of view at another resolution; a real chest
    /// CT is about 512,512,300).
    #[arg(long, value_name = "X,Y,Z", value_parser = parse_shape, default_value = "192,192,80")]
    pub volume_shape: [usize; 3],
    /// At least this many organ mask files per volume (TotalSegmentator writes 117): classes the anatomy does not
    /// draw are added as small ellipsoids.
    #[arg(long, default_value_t = 0)]
    pub organ_masks: usize,
}

fn parse_shape(s: &str) -> Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [x, y, z] if x >= 16 && y >= 16 && z >= 8 => Ok([x, y, z]),
        [_, _, _] => Err("each side must be at least 16,16,8 voxels".into()),
        _ => Err(format!("expected three sizes X,Y,Z, got {s:?}")),
    }
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Output folder (the corpus goes to OUT/synth, the dataset to OUT).
    #[arg(long)]
    pub out: PathBuf,
    /// Corpus seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Discard previous output in OUT and start over (default: resume).
    #[arg(long)]
    pub force: bool,
    /// Write descriptions with an OpenAI-compatible server at URL (ending in /v1); key from OPENAI_API_KEY.
    #[arg(long, requires = "model")]
    pub generator_url: Option<String>,
    /// The model name the server serves (with --generator-url).
    #[arg(long, requires = "generator_url")]
    pub model: Option<String>,
}

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// The config file.
    pub config: PathBuf,
    /// Output folder (default: `[output] dir` of the config).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Discard previous output in OUT and start over.
    #[arg(long)]
    pub force: bool,
    /// Run only worker I of N's shards of the plan in OUT (`medgrain plan` first) and leave assembling to
    /// `medgrain merge`. I may be `slurm` (SLURM_ARRAY_TASK_ID) or `k8s` (JOB_COMPLETION_INDEX): `--worker slurm/8`.
    #[arg(long, value_name = "I/N")]
    pub worker: Option<String>,
    /// Stop with exit 3 (worth retrying) when one shard has run this long: its scheduler runs it again, perhaps on
    /// another machine; finished shards are kept.
    #[arg(long, value_name = "SECONDS")]
    pub shard_timeout: Option<f64>,
    /// Do not hash the input files (triplets; no OUT/inputs.jsonl, so no `export --format recipe`).
    #[arg(long)]
    pub no_input_hash: bool,
}

#[derive(Args)]
pub(crate) struct PlanArgs {
    /// The config file.
    pub config: PathBuf,
    /// Output folder (default: `[output] dir` of the config).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Plan again even when the inputs changed under an existing plan.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub(crate) struct SlurmArgs {
    /// The config file (a path the nodes see).
    pub config: PathBuf,
    /// The output folder on a file system every node shares (it holds plan.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Workers (array tasks); capped at the cluster's MaxArraySize (from `scontrol show config`, else 1001) —
    /// each task then runs more shards.
    #[arg(long)]
    pub workers: usize,
    /// At most this many tasks at once (`--array=…%T`).
    #[arg(long)]
    pub throttle: Option<usize>,
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task (Slurm's format, e.g. 04:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per task.
    #[arg(long)]
    pub cpus: Option<usize>,
    /// Memory per task (e.g. 8G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Submit the array and the merge job (`afterany` dependency) with sbatch and print their ids.
    #[arg(long)]
    pub submit: bool,
}

#[derive(Args)]
pub(crate) struct K8sArgs {
    /// The config file, as the pods see it.
    pub config: PathBuf,
    /// The output folder, as the pods see it (on the volume of --pvc); the YAML goes to OUT/k8s/ here.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of workers (Job completions, one index each).
    #[arg(long)]
    pub workers: usize,
    /// The container image that has `medgrain` on its PATH.
    #[arg(long)]
    pub image: String,
    /// The PersistentVolumeClaim holding the inputs and OUT.
    #[arg(long, default_value = "medgrain-data")]
    pub pvc: String,
    /// Where the claim is mounted in the pods.
    #[arg(long, default_value = "/data")]
    pub mount: String,
    /// Pods at once (default: every worker).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Retries per index for a cause worth retrying (exit 3).
    #[arg(long, default_value_t = 3)]
    pub backoff_per_index: usize,
    /// Job name prefix.
    #[arg(long, default_value = "medgrain")]
    pub name: String,
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// The output folder the workers shared (it holds plan.json).
    pub dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// A built dataset (it holds manifest.json).
    pub dir: PathBuf,
    /// A recipe (`export --format recipe`): also check that DIR was rebuilt from the same inputs into the same rows.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The output folder the workers share (it holds plan.json).
    pub dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct MockServerArgs {
    /// Port on 127.0.0.1 (0 = any free port; the address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The model name it serves.
    #[arg(long, default_value = "mock-model")]
    pub model: String,
    /// Latency added to every answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Inject faults deterministically per prompt (429, 500, stalls, malformed and truncated answers).
    #[arg(long)]
    pub faults: bool,
    /// How long a stalled answer (a fault class) hangs, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub stall_ms: u64,
    /// Require `Authorization: Bearer $VAR`.
    #[arg(long)]
    pub require_key_env: Option<String>,
}

#[derive(Args)]
pub(crate) struct ProbeArgs {
    /// Files, or folders of DICOM files (one line per series: slices ordered by position, gaps reported).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// JSON lines (the only output form).
    #[arg(long)]
    pub json: bool,
    /// Also write each DICOM file's decoded stored values as float64 `.npy` (`DIR/N.npy`, N = the output line,
    /// 0-based; the line gains "values_npy").
    #[arg(long)]
    pub npy_dir: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RenderArgs {
    pub file: PathBuf,
    /// PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Frame of a multi-frame file (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: usize,
    /// `CENTRE,WIDTH` or a CT preset (lung, mediastinum, bone, brain, abdomen); default: the file's window, else
    /// the frame's full range.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
}

#[derive(Args)]
pub(crate) struct ReorientArgs {
    pub file: PathBuf,
    /// Output .nii.gz.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub(crate) struct LocateArgs {
    pub file: PathBuf,
    /// classical:ct-body, classical:ct-lung, classical:ct-bone (CT volumes), or expert:onnx (with --onnx).
    #[arg(long)]
    pub locator: medgrain_roi::locate::LocatorName,
    /// The model config for expert:onnx (TOML: model, classes, normalize, tile, …; see README).
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub(crate) struct RoisArgs {
    pub file: PathBuf,
    /// JSON output (the only form).
    #[arg(long)]
    pub json: bool,
    /// scipy connectivity: 1 = faces only … rank = full (default: full).
    #[arg(long)]
    pub connectivity: Option<usize>,
    /// Label names, lines `value name` (default: FILE.txt next to the file, if present).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Intensity volume on the same grid (e.g. the CT) for mean/std HU and attenuation.
    #[arg(long)]
    pub image: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The output folder of `build` or `demo`.
    pub dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many rows to show in full (with --html: in the gallery; default 24 there).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Write a self-contained HTML report (plots, QC, a gallery with ROI outlines) to this file instead.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum KbAction {
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
        /// Also build an approximate nearest-neighbour index (usearch HNSW, i8, in segments of 1M vectors, the
        /// candidates re-scored exactly; `dense.ann/`) for dense search at scale: memory-mapped when searching,
        /// extended by every later build of this KB.
        #[arg(long)]
        ann: bool,
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
pub(crate) enum ReportAction {
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
    /// Identifying spans in report text (dates, phone numbers, e-mail addresses, ID-like numbers, names after
    /// titles): for JSON lines {"text"}, one JSON object {"text", "scrubbed", "counts"} per line, in order — what
    /// `[reports] deid` does to every report.
    Scrub {
        file: PathBuf,
        /// JSON lines (the only output form).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum BatchAction {
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

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum VqaProtocolArg {
    /// LLaVA-Med: closed_accuracy, open_recall
    LlavaMed,
    /// MedTrinity-25M's script: exact_match, f1, precision, recall, bleu1..3, yes_no_accuracy
    Medtrinity,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum UncertainArg {
    /// "possible nodule" counts as a nodule (CheXpert's U-ones)
    Present,
    /// "possible nodule" counts as no nodule (U-zeros)
    Absent,
}

#[derive(Subcommand)]
pub(crate) enum EvalAction {
    /// Score VQA answers: PRED is JSON lines {"qid"|"id"|"question_id", "answer"|"text"}; GOLD a VQA-RAD / SLAKE /
    /// PathVQA / LLaVA JSON (or JSON lines), or medgrain VQA rows (a dataset folder, its vqa/ folder or a Parquet
    /// file). Exit 1 when ids are missing, unmatched or duplicated (all listed).
    Vqa {
        #[arg(long)]
        pred: PathBuf,
        #[arg(long)]
        gold: PathBuf,
        #[arg(long, value_enum)]
        protocol: VqaProtocolArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Score predicted masks against gold masks, one NIfTI per finding under each folder (same relative paths):
    /// ReXGroundingCT's Dice, hit rate, instance precision/recall/F1. Exit 1 when a finding is missing, unmatched,
    /// unreadable or on another grid (all listed).
    Grounding {
        #[arg(long)]
        pred: PathBuf,
        #[arg(long)]
        gold: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Score generated reports against reference reports (CSV: CT-RATE's columns, or id + report): finding-level
    /// precision/recall/F1 through medgrain's report grounding, BLEU-4, ROUGE-L. Exit 1 when ids are missing,
    /// unmatched or duplicated (all listed).
    Report {
        #[arg(long)]
        pred: PathBuf,
        #[arg(long)]
        gold: PathBuf,
        /// How an uncertain finding counts.
        #[arg(long, value_enum, default_value = "present")]
        uncertain: UncertainArg,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormatArg {
    /// LLaVA-1.5 / LLaVA-Med conversation JSON (llava.json)
    Llava,
    /// messages + images, as LLaMA-Factory and TRL read (sharegpt.json)
    Sharegpt,
    /// tar shards: KEY.png, KEY.json, KEY.txt, KEY.mask.png
    Webdataset,
    /// COCO instances JSON with RLE segmentations (instances.json)
    Coco,
    /// VQA-RAD/SLAKE-style questions with mask_ref (vqa.json)
    Vqa,
    /// Hugging Face dataset card + Parquet files: datasets.load_dataset(DEST)
    Hf,
    /// rows without pixels + input checksums + config: rebuild elsewhere, then `verify OUT --recipe DEST`
    Recipe,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// A built dataset.
    pub dir: PathBuf,
    #[arg(long, value_enum)]
    pub format: ExportFormatArg,
    /// Output folder (new or empty).
    #[arg(long)]
    pub to: PathBuf,
    /// Only the rows of this split (train, validation, test).
    #[arg(long)]
    pub split: Option<String>,
    /// WebDataset shard size limit in MB.
    #[arg(long, default_value_t = 100)]
    pub shard_mb: u64,
    /// Replace a previous export in the output folder.
    #[arg(long)]
    pub force: bool,
    /// Leave out the rows that `medgrain dedup --against` found near-duplicates of reference images (DIR/dedup.jsonl).
    #[arg(long)]
    pub exclude_leaks: bool,
    /// `accepted`: only the rows accepted or edited in DIR/review.sqlite (`medgrain review`), with the edits.
    #[arg(long, value_name = "accepted")]
    pub reviewed: Option<String>,
}

#[derive(Args)]
pub(crate) struct DedupArgs {
    /// A built dataset (triplets).
    pub dir: PathBuf,
    /// A reference image set NAME=FOLDER (e.g. vqa-rad-test=/data/vqarad/test); repeatable.
    #[arg(long = "against", value_name = "NAME=FOLDER")]
    pub against: Vec<String>,
    /// Largest Hamming distance (of 64 bits) counted as a near-duplicate.
    #[arg(long, default_value_t = medgrain_pipeline::dedup::DEFAULT_MAX_DISTANCE)]
    pub max_distance: u32,
    /// Largest Hamming distance between two rows of the dataset counted as duplicates.
    #[arg(long, default_value_t = medgrain_pipeline::dedup::DEFAULT_WITHIN_DISTANCE)]
    pub within_distance: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct PhashArgs {
    /// Image files (PNG, JPEG, TIFF).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args)]
pub(crate) struct DeidArgs {
    /// DICOM files and folders (folders are walked; every file in them is read).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder: files as STUDY_UID/SERIES_UID/SOP_UID.dcm (the new UIDs), `deid.jsonl`, `errors.jsonl`.
    #[arg(long)]
    pub out: PathBuf,
    /// Retain Longitudinal Temporal Information with Modified Dates: shift every date of a patient by one keyed
    /// offset (365 to 3,650 days back), keeping intervals.
    #[arg(long)]
    pub modified_dates: bool,
    /// Retain Patient Characteristics: keep age (over 89 as 090Y), sex, size, weight and the option's other K
    /// attributes.
    #[arg(long)]
    pub patient_characteristics: bool,
    /// Clean Descriptors: keep the imaging-vocabulary words of study/series descriptions, protocol names and the
    /// other descriptors instead of removing them.
    #[arg(long)]
    pub clean_descriptors: bool,
    /// Also write files at risk of burned-in identifying text (BurnedInAnnotation YES, ultrasound, secondary
    /// capture, XA/RF without BurnedInAnnotation NO); they are flagged in deid.jsonl and a warning is logged.
    #[arg(long)]
    pub allow_burned_in: bool,
    /// Where `deid.jsonl` and `errors.jsonl` go (default: --out). They name the input files, so they are the
    /// linkage record: keep them apart from a folder that will be shared.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReviewArgs {
    /// A built dataset (triplets).
    pub dir: PathBuf,
    /// Port (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on. Anything but loopback exposes the dataset to the network: a warning is printed.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Name recorded with every decision (default: $USER).
    #[arg(long)]
    pub reviewer: Option<String>,
}
