//! `medgrain build`: the recipe a config names.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use medgrain_pipeline::engine::shards::ShardTimeout;
use medgrain_pipeline::recipes::grounded_reports::{self, ReportsOptions};
use medgrain_pipeline::{config, BuildOptions};
use std::process::ExitCode;

pub(crate) fn run(args: BuildArgs, progress: bool) -> Result<ExitCode, CliError> {
    let BuildArgs {
        config: path,
        out,
        force,
        worker,
        shard_timeout,
        no_input_hash,
    } = args;
    let worker = worker.as_deref().map(parse_worker).transpose()?;
    let shard_timeout = shard_timeout.map(parse_shard_timeout).transpose()?;
    let loaded = config::load(&path)?;
    let out = out_dir(&loaded, out)?;
    if loaded.config.recipe == config::Recipe::GroundedReports {
        let opts = ReportsOptions {
            force,
            worker,
            shard_timeout,
        };
        let s = grounded_reports::build(&loaded, &out, &opts)?;
        print_reports(&title(&path, &out, worker, "grounded reports"), &s, &out);
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
            shard_timeout,
            no_input_hash,
        },
    )?;
    print_build(&title(&path, &out, worker, "triplets"), &s);
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

/// The summary's first line: what was built where, and by which worker.
fn title(config: &std::path::Path, out: &std::path::Path, worker: Option<(usize, usize)>, recipe: &str) -> String {
    let who = match worker {
        Some((i, n)) => format!("; worker {i} of {n}: its shards only; `medgrain merge` assembles"),
        None => String::new(),
    };
    format!(
        "medgrain build {} → {} ({recipe}{who})",
        config.display(),
        out.display()
    )
}

/// `--shard-timeout SECONDS`: a positive number of seconds; a shard past it stops the worker with exit 3.
pub(crate) fn parse_shard_timeout(seconds: f64) -> Result<ShardTimeout, CliError> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(CliError::Usage(format!(
            "--shard-timeout {seconds}: a positive number of seconds"
        )));
    }
    Ok(ShardTimeout {
        limit: std::time::Duration::from_secs_f64(seconds),
        on_expiry: shard_timed_out,
    })
}

/// What a worker does with a straggling shard: it stops with exit 3, so that its scheduler runs it again (perhaps
/// on a healthier machine). Finished shards are kept; the straggler's parts were never renamed into place.
fn shard_timed_out(prefix: &str, shard: usize, elapsed: std::time::Duration) {
    eprintln!(
        "medgrain: error: {prefix} shard {shard} has run {:.1} s, past --shard-timeout: stopping (exit 3) so that it is retried; finished shards are kept",
        elapsed.as_secs_f64()
    );
    std::process::exit(3);
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
