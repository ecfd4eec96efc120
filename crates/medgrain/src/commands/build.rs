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
    } = args;
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
