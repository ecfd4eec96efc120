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
            use std::io::BufRead;
            let f = std::fs::File::open(&file).map_err(|e| CliError::Io {
                path: file.clone(),
                source: e,
            })?;
            let mut out = JsonLines::stdout();
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| CliError::Io {
                    path: file.clone(),
                    source: e,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |why: String| CliError::Usage(format!("{} line {}: {why}", file.display(), i + 1));
                let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
                let text = v
                    .get("text")
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| bad("no string field \"text\"".into()))?;
                let s = medgrain_deid::text::scrub(text);
                out.write(&serde_json::json!({"text": text, "scrubbed": s.text, "counts": s.counts}));
            }
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
        ReportAction::Context { file, json: _ } => {
            use std::io::BufRead;
            let f = std::fs::File::open(&file).map_err(|e| CliError::Io {
                path: file.clone(),
                source: e,
            })?;
            let mut out = JsonLines::stdout();
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| CliError::Io {
                    path: file.clone(),
                    source: e,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |why: String| CliError::Usage(format!("{} line {}: {why}", file.display(), i + 1));
                let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
                let field = |k: &str| {
                    v.get(k)
                        .and_then(|x| x.as_str())
                        .ok_or_else(|| bad(format!("no string field {k:?}")))
                };
                let (concept, sentence) = (field("concept")?, field("sentence")?);
                out.write(&medgrain_reports::context::concept_context(concept, sentence));
            }
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
