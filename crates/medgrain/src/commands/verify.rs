//! `medgrain verify`: the dataset on disk is the one that was built.

use crate::cli::VerifyArgs;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(args: VerifyArgs) -> Result<ExitCode, CliError> {
    let mut r = medgrain_pipeline::engine::verify::verify(&args.dir)?;
    if let Some(recipe) = &args.recipe {
        medgrain_pipeline::engine::verify::verify_recipe(&args.dir, recipe, &mut r)?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string(&r).map_err(|e| CliError::Internal(e.to_string()))?
        );
    } else {
        outln!(
            "medgrain verify {}: {} files checked (size, SHA-256), {} referenced masks",
            args.dir.display(),
            r.files,
            r.referenced
        );
        if r.problems.is_empty() {
            outln!("  every file is as built");
        }
        for p in &r.problems {
            outln!("  {p}");
        }
    }
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
