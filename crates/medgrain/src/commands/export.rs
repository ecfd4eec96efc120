//! `medgrain export DIR --format F --to DEST`: training-ready copies (all work in `medgrain_export::export`).

use crate::cli::{ExportArgs, ExportFormatArg};
use crate::error::CliError;
use medgrain_export::export::{export, ExportOptions, ExportStartError, Format};
use std::process::ExitCode;

pub(crate) fn run(a: ExportArgs) -> Result<ExitCode, CliError> {
    let format = match a.format {
        ExportFormatArg::Llava => Format::Llava,
        ExportFormatArg::Sharegpt => Format::ShareGpt,
        ExportFormatArg::Webdataset => Format::WebDataset,
        ExportFormatArg::Coco => Format::Coco,
        ExportFormatArg::Vqa => Format::Vqa,
        ExportFormatArg::Hf => Format::Hf,
        ExportFormatArg::Recipe => Format::Recipe,
    };
    let exclude = if a.exclude_leaks {
        medgrain_pipeline::dedup::leaked_ids(&a.dir)?
    } else {
        Default::default()
    };
    let reviewed = match a.reviewed.as_deref() {
        None => None,
        Some("accepted") => Some(medgrain_review::accepted(&a.dir).map_err(|e| match e {
            medgrain_review::ReviewError::Usage(m) => CliError::Usage(m),
            medgrain_review::ReviewError::Io(m) => CliError::Input(m),
        })?),
        Some(other) => {
            return Err(CliError::Usage(format!(
                "--reviewed {other}: the one choice is `accepted` (accepted or edited rows)"
            )))
        }
    };
    let opts = ExportOptions {
        reviewed,
        exclude,
        format,
        dest: a.to.clone(),
        split: a.split,
        shard_mb: a.shard_mb,
        force: a.force,
    };
    let s = export(&a.dir, &opts).map_err(|e| match e {
        ExportStartError::Refused(m) => CliError::Usage(m),
        ExportStartError::Export(e) => CliError::Input(e.to_string()),
    })?;
    outln!(
        "medgrain export {} → {} ({}): {} rows, {} records, {} files, {} errors, {} rows left out as leaks",
        a.dir.display(),
        a.to.display(),
        s.format,
        s.rows,
        s.records,
        s.files,
        s.errors,
        s.excluded
    );
    if s.errors > 0 {
        outln!("  errors: {}", a.to.join("errors.jsonl").display());
    }
    Ok(if s.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
