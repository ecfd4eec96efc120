//! `medgrain demo`: synthetic corpus, then both recipes, offline.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use medgrain_pipeline::{demo, BuildOptions};
use std::process::ExitCode;

pub(crate) fn run(args: DemoArgs, progress: bool) -> Result<ExitCode, CliError> {
    let DemoArgs {
        out,
        seed,
        force,
        generator_url,
        model,
    } = args;
    let remote = match (generator_url, model) {
        (Some(base_url), Some(model)) => Some(demo::DemoGenerator { base_url, model }),
        _ => None,
    };
    let d = demo::demo(
        &out,
        seed,
        &BuildOptions {
            force,
            progress,
            worker: None,
            shard_timeout: None,
            no_input_hash: false,
        },
        remote.as_ref(),
    )?;
    outln!("medgrain demo → {}", out.display());
    outln!(
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
    outln!("  grounded reports (RadGenome recipe, {} CT reports):", r.volumes);
    outln!(
        "  sentences {} ({} abnormal) · grounded rows {} · VQA pairs {} · lesion masks measured {} · size disagreements {}",
        r.sentences, r.abnormal_sentences, r.grounded_rows, r.vqa_rows, r.lesions_measured, r.size_disagreements
    );
    outln!(
        "  shards {} ({} resumed) · volumes with report/mask contradictions {} · errors {}",
        r.shards,
        r.shards_resumed,
        r.volumes_flagged,
        r.errors
    );
    outln!(
        "  output    {0}/grounded_reports/ · {0}/vqa/ (Parquet and RadGenome-style CSV) · {0}/structured_findings/",
        out.display()
    );
    if let Some((volume, report, block)) = &d.example {
        outln!("\n  {volume} — report (findings):");
        for s in medgrain_reports::split_sentences(report) {
            outln!("    {s}");
        }
        outln!("  {volume} — measured on its masks:");
        for line in block.lines() {
            outln!("    {line}");
        }
    }
    outln!("  next: medgrain inspect {}", out.display());
    Ok(if d.triplets.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
