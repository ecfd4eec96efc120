//! What several commands share: where a build writes, the one-screen summary of a build, JSON lines on stdout and
//! window arguments.

use crate::error::CliError;
use medgrain_pipeline::{config, BuildSummary, PipelineError};
use std::path::PathBuf;

pub(crate) fn out_dir(loaded: &config::LoadedConfig, out: Option<PathBuf>) -> Result<PathBuf, PipelineError> {
    match (out, &loaded.config.output.dir) {
        (Some(o), _) => Ok(o),
        (None, Some(d)) => Ok(loaded.resolve(d)),
        (None, None) => Err(PipelineError::Usage(format!(
            "{}: no output folder: pass --out DIR or set `dir` under [output]",
            loaded.path.display()
        ))),
    }
}

pub(crate) fn top_counts(m: &std::collections::BTreeMap<String, u64>, n: usize) -> String {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .take(n)
        .map(|(k, c)| format!("{k} {c}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub(crate) fn print_build(title: &str, s: &BuildSummary) {
    let rate = if s.elapsed_s > 0.0 {
        (s.processed as f64) / s.elapsed_s
    } else {
        0.0
    };
    outln!("{title}");
    outln!(
        "  rows {} · failed {} · shards {} ({} kept from a previous run) · {} processed in {:.1} s ({:.0} samples/s)",
        s.rows,
        s.failed,
        s.shards,
        s.shards_resumed,
        s.processed,
        s.elapsed_s,
        rate
    );
    outln!("  modality  {}", top_counts(&s.stats.by_modality, 8));
    outln!("  organ     {}", top_counts(&s.stats.by_organ, 8));
    outln!("  ROIs {} · rows with QC flags {}", s.stats.rois, s.stats.qc_failed);
    if let Some(u) = &s.generator_usage {
        outln!(
            "  generator requests {} · cache hits {} · retries {} · tokens {} in / {} out{}",
            u["requests_sent"],
            u["cache_hits"],
            u["retries"],
            s.stats.prompt_tokens,
            s.stats.completion_tokens,
            s.stats
                .estimated_cost_usd
                .map(|c| format!(" · ≈ ${c:.2}"))
                .unwrap_or_default()
        );
    }
    let out = s.out.display();
    outln!("  output    {out}/triplets/*.parquet · {out}/errors.jsonl · {out}/stats.json · {out}/manifest.json");
    if s.failed > 0 {
        outln!(
            "  failures  {} (see {out}/errors.jsonl)",
            top_counts(&s.stats.failures_by_stage, 8)
        );
    }
}

/// JSON lines on stdout; a closed pipe (`| head`) ends the output quietly, other write errors are kept for
/// [`JsonLines::finish`].
pub(crate) struct JsonLines {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    err: Option<std::io::Error>,
}

impl JsonLines {
    pub(crate) fn stdout() -> Self {
        JsonLines {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            err: None,
        }
    }

    pub(crate) fn write<T: serde::Serialize>(&mut self, value: &T) {
        use std::io::Write;
        if self.err.is_none() {
            // Serialise first so that a write error keeps its kind (a closed pipe stays BrokenPipe).
            let line = serde_json::to_string(value).unwrap_or_default();
            if let Err(e) = writeln!(self.out, "{line}") {
                self.err = Some(e);
            }
        }
    }

    /// `Ok(true)` when everything was written, `Ok(false)` when the reader closed the pipe.
    pub(crate) fn finish(mut self) -> Result<bool, CliError> {
        use std::io::Write;
        if self.err.is_none() {
            if let Err(e) = self.out.flush() {
                self.err = Some(e);
            }
        }
        match self.err {
            None => Ok(true),
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Some(e) => Err(CliError::Io {
                path: "<stdout>".into(),
                source: e,
            }),
        }
    }
}

/// `CENTRE,WIDTH` or a CT preset name.
pub(crate) fn parse_window(s: &str) -> Option<(f64, f64)> {
    if let Some(w) = medgrain_imaging::render::ct_window(s) {
        return Some(w);
    }
    let (c, w) = s.split_once(',')?;
    let (c, w) = (c.trim().parse::<f64>().ok()?, w.trim().parse::<f64>().ok()?);
    (c.is_finite() && w.is_finite() && w >= 1.0).then_some((c, w))
}

/// The one-screen summary of the grounded-reports recipe.
pub(crate) fn print_reports(
    title: &str,
    s: &medgrain_pipeline::recipes::grounded_reports::ReportsSummary,
    out: &std::path::Path,
) {
    outln!("{title}");
    outln!(
        "  reports {} · sentences {} ({} abnormal) · grounded rows {} · VQA pairs {} · lesion masks measured {} · size disagreements {}",
        s.volumes, s.sentences, s.abnormal_sentences, s.grounded_rows, s.vqa_rows, s.lesions_measured, s.size_disagreements
    );
    outln!(
        "  shards {} ({} resumed) · volumes with report/mask contradictions {} · errors {}",
        s.shards,
        s.shards_resumed,
        s.volumes_flagged,
        s.errors
    );
    outln!(
        "  output    {0}/grounded_reports/ · {0}/vqa/ · {0}/structured_findings/",
        out.display()
    );
}
