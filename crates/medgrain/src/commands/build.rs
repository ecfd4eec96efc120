//! `medgrain build`: the recipe a config names.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use medgrain_pipeline::{config, BuildOptions};
use std::process::ExitCode;

pub(crate) fn run(args: BuildArgs, progress: bool) -> Result<ExitCode, CliError> {
    let BuildArgs {
        config: path,
        out,
        force,
        worker,
    } = args;
    let worker = worker.as_deref().map(parse_worker).transpose()?;
    let loaded = config::load(&path)?;
    let out = out_dir(&loaded, out)?;
    if let (Some(r), medgrain_pipeline::config::Recipe::GroundedReports) =
        (&loaded.config.reports, loaded.config.recipe)
    {
        if worker.is_some() {
            return Err(CliError::Usage(
                "--worker runs the triplets recipe only for now; build the grounded-reports recipe in one process"
                    .into(),
            ));
        }
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
    let s = medgrain_pipeline::build(
        &loaded,
        &out,
        &BuildOptions {
            force,
            progress,
            worker,
        },
    )?;
    let title = match worker {
        Some((i, n)) => format!(
            "medgrain build {} → {} (worker {i} of {n}: its shards only; `medgrain merge` assembles)",
            path.display(),
            out.display()
        ),
        None => format!("medgrain build {} → {}", path.display(), out.display()),
    };
    print_build(&title, &s);
    // a worker whose descriptions failed (server unreachable, timeouts) stops with 3: its scheduler retries it,
    // and only those shards run again
    if worker.is_some() && s.retry_worthy > 0 {
        return Ok(ExitCode::from(3));
    }
    Ok(if s.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `I/N`, with I a number or `slurm` (SLURM_ARRAY_TASK_ID) or `k8s` (JOB_COMPLETION_INDEX).
pub(crate) fn parse_worker(s: &str) -> Result<(usize, usize), CliError> {
    let bad = |why: String| CliError::Usage(format!("--worker {s:?}: {why} (I/N, e.g. 0/4, slurm/4 or k8s/4)"));
    let (i, n) = s.split_once('/').ok_or_else(|| bad("no /".into()))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| bad(format!("{n:?} is not a worker count")))?;
    let i = match i.trim() {
        "slurm" => std::env::var("SLURM_ARRAY_TASK_ID").map_err(|_| bad("SLURM_ARRAY_TASK_ID is not set".into()))?,
        "k8s" => std::env::var("JOB_COMPLETION_INDEX").map_err(|_| bad("JOB_COMPLETION_INDEX is not set".into()))?,
        other => other.to_string(),
    };
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| bad(format!("{i:?} is not a worker index")))?;
    if n == 0 || i >= n {
        return Err(bad(format!("worker {i} of {n} does not exist")));
    }
    Ok((i, n))
}
