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
        volume_shape,
        organ_masks,
    } = args;
    let opts = medgrain_synth::SynthOptions {
        seed,
        images_per_kind,
        volumes,
        volume: medgrain_synth::three_d::VolumeOptions {
            grid: medgrain_synth::three_d::Grid::with_dims(volume_shape),
            organ_masks,
        },
    };
    let s = medgrain_synth::write_corpus(&out, &opts)?;
    outln!(
        "wrote {} images and {} volumes to {} (seed {seed})",
        s.images,
        s.volumes,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
