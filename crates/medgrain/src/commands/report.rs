//! `medgrain report ground|context`: report text.

use crate::cli::*;
use crate::error::CliError;
use crate::output::*;
use std::process::ExitCode;

pub(crate) fn run(action: ReportAction) -> Result<ExitCode, CliError> {
    match action {
        ReportAction::Ground {
            reports,
            json: _,
            id_column,
            findings_column,
            impression_column,
            lines,
        } => {
            let ont = medgrain_reports::Ontology::embedded().map_err(|e| CliError::Internal(e.to_string()))?;
            let layout = if lines || reports.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
                medgrain_reports::ReportLayout::Lines
            } else {
                medgrain_reports::ReportLayout::Csv {
                    id_column,
                    findings_column,
                    impression_column,
                }
            };
            let mut out = JsonLines::stdout();
            let n = medgrain_reports::ground_reports(&ont, &reports, &layout, &mut |g| out.write(&g))
                .map_err(|e| CliError::Usage(e.to_string()))?;
            if out.finish()? {
                tracing::info!(reports = n, "grounded");
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportAction::Scrub { file, json: _ } => {
            let mut out = JsonLines::stdout();
            for_each_json_line(&file, &["text"], &mut |f| {
                let s = medgrain_deid::text::scrub(f[0]);
                out.write(&serde_json::json!({"text": f[0], "scrubbed": s.text, "counts": s.counts}));
            })?;
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
        ReportAction::Context { file, json: _ } => {
            let mut out = JsonLines::stdout();
            for_each_json_line(&file, &["concept", "sentence"], &mut |f| {
                out.write(&medgrain_reports::context::concept_context(f[0], f[1]));
            })?;
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Calls `f` with the string fields `names` of every non-empty JSON line of `file`, in order; a line that is not JSON
/// or lacks a field is a usage error naming the line.
fn for_each_json_line(file: &std::path::Path, names: &[&str], f: &mut dyn FnMut(&[&str])) -> Result<(), CliError> {
    use std::io::BufRead;
    let io = |e| CliError::Io {
        path: file.to_path_buf(),
        source: e,
    };
    let r = std::fs::File::open(file).map_err(io)?;
    for (i, line) in std::io::BufReader::new(r).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| CliError::Usage(format!("{} line {}: {why}", file.display(), i + 1));
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let fields = names
            .iter()
            .map(|k| {
                v.get(*k)
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| bad(format!("no string field {k:?}")))
            })
            .collect::<Result<Vec<&str>, _>>()?;
        f(&fields);
    }
    Ok(())
}
