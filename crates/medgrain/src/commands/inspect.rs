//! `medgrain inspect`: a summary of an output dataset.

use crate::cli::*;
use crate::error::CliError;
use medgrain_pipeline::inspect;
use std::process::ExitCode;

pub(crate) fn run(args: InspectArgs) -> Result<ExitCode, CliError> {
    let InspectArgs { dir, json, samples } = args;
    let ins = inspect::inspect(&dir, samples)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ins).map_err(|e| CliError::Internal(e.to_string()))?
        );
    } else {
        print!("{}", ins.render());
    }
    Ok(ExitCode::SUCCESS)
}
