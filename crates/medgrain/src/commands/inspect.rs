//! `medgrain inspect`: a summary of an output dataset.

use crate::cli::*;
use crate::error::CliError;
use medgrain_pipeline::inspect;
use std::process::ExitCode;

pub(crate) fn run(args: InspectArgs) -> Result<ExitCode, CliError> {
    let InspectArgs {
        dir,
        json,
        samples,
        html,
    } = args;
    if let Some(file) = html {
        let decisions = medgrain_review::decision_counts(&dir).map_err(|e| CliError::Input(e.to_string()))?;
        let s = medgrain_pipeline::inspect_html::write_html(&dir, &file, samples.unwrap_or(24), &decisions)?;
        if json {
            outln!(
                "{}",
                serde_json::to_string(&s).map_err(|e| CliError::Internal(e.to_string()))?
            );
        } else {
            outln!(
                "medgrain inspect: {} ({} plots, {} gallery samples, {:.1} MB)",
                file.display(),
                s.plots,
                s.gallery,
                s.bytes as f64 / 1e6
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut ins = inspect::inspect(&dir, samples.unwrap_or(3))?;
    ins.review_decisions = medgrain_review::decision_counts(&dir).map_err(|e| CliError::Input(e.to_string()))?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&ins).map_err(|e| CliError::Internal(e.to_string()))?
        );
    } else {
        {
            use std::io::Write as _;
            if let Err(e) = write!(std::io::stdout(), "{}", ins.render()) {
                crate::stdout_failed(e)
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
