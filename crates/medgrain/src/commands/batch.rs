//! `medgrain batch export|import`: OpenAI Batch API files.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use medgrain_pipeline::{batch, config};
use std::process::ExitCode;

pub(crate) fn run(action: BatchAction) -> Result<ExitCode, CliError> {
    match action {
        BatchAction::Export {
            config: path,
            out,
            max_lines,
            max_mb,
        } => {
            let loaded = config::load(&path)?;
            let out = out_dir(&loaded, out)?;
            let limits = batch::BatchLimits {
                max_lines: max_lines.max(1),
                max_bytes: max_mb.max(1) * 1024 * 1024,
            };
            let s = batch::export(&loaded, &out, limits)?;
            outln!(
                "{} samples: {} requests in {} file(s) under {}, {} already cached, {} failed (see {})",
                s.samples,
                s.requests,
                s.files.len(),
                out.join("batch").display(),
                s.already_cached,
                s.failed,
                out.join("batch/errors.jsonl").display()
            );
            Ok(if s.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        BatchAction::Import {
            config: path,
            out,
            files,
        } => {
            let loaded = config::load(&path)?;
            let out = out_dir(&loaded, out)?;
            let s = batch::import(&loaded, &out, &files)?;
            outln!(
                "imported {} answers into the request cache; {} failed; {} unknown ids",
                s.imported,
                s.failed.len(),
                s.unknown
            );
            for (id, why) in s.failed.iter().take(20) {
                outln!("  failed {id}: {why}");
            }
            outln!("next: medgrain build {} --out {}", path.display(), out.display());
            Ok(if s.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
