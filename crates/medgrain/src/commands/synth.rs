//! `medgrain synth`: the deterministic synthetic corpus.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: SynthArgs) -> Result<ExitCode, CliError> {
    let SynthArgs {
        out,
        seed,
        images_per_kind,
        volumes,
    } = args;
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
