//! `medgrain reorient`: a NIfTI volume to RAS+.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: ReorientArgs) -> Result<ExitCode, CliError> {
    let ReorientArgs { file, out } = args;
    let (codes, shape) =
        medgrain_imaging::reorient::reorient_nifti_file(&file, &out).map_err(|e| CliError::Input(e.to_string()))?;
    outln!(
        "{}: {codes} → RAS, shape {shape:?}, written to {}",
        file.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
