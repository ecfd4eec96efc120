//! `medgrain rois`: connected components of a label map.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: RoisArgs) -> Result<ExitCode, CliError> {
    let RoisArgs {
        file,
        json: _,
        connectivity,
        labels,
        image,
    } = args;
    match medgrain_pipeline::rois::rois_of_file(&file, connectivity, labels.as_deref(), image.as_deref()) {
        Ok(v) => {
            outln!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.usage => Err(CliError::Usage(e.message)),
        Err(e) => {
            outln!(
                "{}",
                serde_json::json!({"path": file.display().to_string(), "error": e.message})
            );
            Ok(ExitCode::from(1))
        }
    }
}
