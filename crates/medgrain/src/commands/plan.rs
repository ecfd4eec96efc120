//! `medgrain plan`, `merge` and `status`: the shard plan workers share, assembling their output, and progress.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use medgrain_pipeline::config::{self, Recipe};
use medgrain_pipeline::engine::cluster::to_yaml;
use medgrain_pipeline::engine::plan::Plan;
use medgrain_pipeline::recipes::{grounded_reports, triplets};
use std::process::ExitCode;

pub(crate) fn plan(args: PlanArgs) -> Result<ExitCode, CliError> {
    let loaded = config::load(&args.config)?;
    let out = out_dir(&loaded, args.out)?;
    let p = match loaded.config.recipe {
        Recipe::Triplets => triplets::make_plan(&loaded, &out, args.force)?,
        Recipe::GroundedReports => grounded_reports::make_plan(&loaded, &out, args.force)?,
    };
    let bytes: Vec<u64> = p.shards.iter().map(|s| s.bytes).collect();
    let (lo, hi) = (
        bytes.iter().min().copied().unwrap_or(0),
        bytes.iter().max().copied().unwrap_or(0),
    );
    outln!(
        "medgrain plan {} → {}/plan.json ({})",
        args.config.display(),
        out.display(),
        p.recipe
    );
    outln!(
        "  inputs {} · shards {} (input bytes per shard {lo}–{hi}) · config {}",
        p.inputs.len(),
        p.shards.len(),
        &p.config_hash[..12]
    );
    outln!(
        "  next: `medgrain build {0} --out {1} --worker I/N` on each worker, then `medgrain merge {1}`",
        args.config.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_plan(out: &std::path::Path, what: &str) -> Result<Plan, CliError> {
    Ok(Plan::read(out)?.ok_or_else(|| {
        medgrain_pipeline::PipelineError::Usage(format!(
            "no plan in {}: nothing to {what} (`medgrain plan CONFIG --out DIR` writes one)",
            out.display()
        ))
    })?)
}

pub(crate) fn merge(args: MergeArgs) -> Result<ExitCode, CliError> {
    let plan = read_plan(&args.dir, "merge")?;
    let title = format!("medgrain merge {}", args.dir.display());
    if plan.recipe == "grounded-reports" {
        let s = grounded_reports::merge(&args.dir, &plan)?;
        print_reports(&title, &s, &args.dir);
        return Ok(if s.errors > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let s = triplets::merge(&args.dir, &plan)?;
    print_build(&title, &s);
    Ok(if s.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn status(args: StatusArgs) -> Result<ExitCode, CliError> {
    let out = args.dir;
    let plan = read_plan(&out, "report")?;
    let s = match plan.recipe.as_str() {
        "grounded-reports" => grounded_reports::status(&out, &plan)?,
        _ => triplets::status(&out, &plan)?,
    };
    let rerun = format!("medgrain build {} --out {}", plan.config_path.display(), out.display());
    if args.json {
        let mut v = serde_json::to_value(&s).map_err(|e| CliError::Internal(e.to_string()))?;
        v["rerun"] = serde_json::json!(if s.missing.is_empty() { None } else { Some(rerun) });
        outln!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    outln!("medgrain status {} ({})", out.display(), s.recipe);
    outln!(
        "  shards {} done of {} ({} with failed samples) · samples {} of {}",
        s.done,
        s.shards,
        s.with_failures,
        s.samples_done,
        s.samples_total
    );
    if let Some(r) = s.rate {
        outln!("  rate {r:.1} samples/s · ETA {:.0} s", s.eta_s.unwrap_or(0.0));
    }
    if s.missing.is_empty() {
        outln!("  every shard is finished: `medgrain merge {}`", out.display());
    } else {
        let list: Vec<String> = s.missing.iter().take(20).map(|k| k.to_string()).collect();
        outln!(
            "  missing shards {}{} — rerun them with `{rerun}` (one process: finished shards are kept)",
            list.join(", "),
            if s.missing.len() > 20 { ", …" } else { "" },
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn k8s(args: K8sArgs) -> Result<ExitCode, CliError> {
    if args.workers == 0 {
        return Err(CliError::Usage("--workers must be at least 1".into()));
    }
    let job = medgrain_pipeline::engine::cluster::K8sJob {
        name: args.name,
        image: args.image,
        config: args.config.display().to_string(),
        out: args.out.display().to_string(),
        workers: args.workers,
        parallelism: args.parallelism.unwrap_or(args.workers).max(1),
        backoff_per_index: args.backoff_per_index,
        pvc: args.pvc,
        mount: args.mount,
    };
    let dir = args.out.join("k8s");
    let note = "# written by medgrain k8s; apply merge.yaml once the workers' Job is complete\n";
    write_files(
        &dir,
        &[
            ("workers.yaml", format!("{note}{}", to_yaml(&job.workers_job()))),
            ("merge.yaml", format!("{note}{}", to_yaml(&job.merge_job()))),
        ],
    )?;
    outln!("medgrain k8s → {0}/workers.yaml, {0}/merge.yaml", dir.display());
    outln!(
        "  kubectl apply -f {0}/workers.yaml && kubectl wait --for=condition=complete --timeout=-1s job/{1}-workers && kubectl apply -f {0}/merge.yaml",
        dir.display(),
        job.name
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn slurm(args: SlurmArgs) -> Result<ExitCode, CliError> {
    use medgrain_pipeline::engine::cluster::{max_array_size, SlurmJob};
    if args.workers == 0 {
        return Err(CliError::Usage("--workers must be at least 1".into()));
    }
    let abs = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if medgrain_pipeline::engine::plan::Plan::read(&args.out)?.is_none() {
        return Err(CliError::Usage(format!(
            "no plan in {0}: run `medgrain plan {1} --out {0}` first",
            args.out.display(),
            args.config.display()
        )));
    }
    let max = std::process::Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()
        .and_then(|o| max_array_size(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or(1001);
    let tasks = args.workers.min(max);
    if tasks < args.workers {
        tracing::warn!(
            workers = args.workers,
            tasks,
            "the array would exceed MaxArraySize: each task runs more shards"
        );
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Internal(e.to_string()))?;
    let job = SlurmJob {
        exe: exe.display().to_string(),
        config: abs(&args.config).display().to_string(),
        out: abs(&args.out).display().to_string(),
        tasks,
        throttle: args.throttle,
        partition: args.partition,
        time: args.time,
        cpus: args.cpus,
        mem: args.mem,
    };
    let dir = args.out.join("slurm");
    write_files(
        &dir,
        &[
            ("workers.sbatch", job.workers_script()),
            ("merge.sbatch", job.merge_script()),
        ],
    )?;
    let (workers, merge) = (dir.join("workers.sbatch"), dir.join("merge.sbatch"));
    outln!(
        "medgrain slurm → {} ({tasks} array tasks), {}",
        workers.display(),
        merge.display()
    );
    if !args.submit {
        outln!(
            "  submit: id=$(sbatch --parsable {}) && sbatch --dependency=afterany:$id {}",
            workers.display(),
            merge.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let sbatch = |extra: &[String], script: &std::path::Path| -> Result<String, CliError> {
        let o = std::process::Command::new("sbatch")
            .arg("--parsable")
            .args(extra)
            .arg(script)
            .output()
            .map_err(|e| CliError::Usage(format!("sbatch: {e} (is Slurm installed here?)")))?;
        if !o.status.success() {
            return Err(CliError::Usage(format!(
                "sbatch {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&o.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .to_string())
    };
    let array_id = sbatch(&[], &workers)?;
    let merge_id = sbatch(&[format!("--dependency=afterany:{array_id}")], &merge)?;
    outln!("  submitted workers {array_id} and merge {merge_id}");
    Ok(ExitCode::SUCCESS)
}

/// Writes job files into `dir` (created if needed).
fn write_files(dir: &std::path::Path, files: &[(&str, String)]) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| CliError::Io { path: p, source: e })?;
    }
    Ok(())
}
