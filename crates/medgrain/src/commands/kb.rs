//! `medgrain kb build|search`: the knowledge base.

use crate::cli::*;
use crate::error::CliError;
use std::process::ExitCode;

pub(crate) fn run(action: KbAction, quiet: bool) -> Result<ExitCode, CliError> {
    match action {
        KbAction::Build {
            input,
            out,
            embed_model,
            max_tokens,
            overlap,
            ann,
        } => {
            let opts = medgrain_knowledge::BuildOptions {
                embed_model,
                chunk: medgrain_knowledge::chunk::ChunkOptions { max_tokens, overlap },
                ann,
            };
            let started = std::time::Instant::now();
            let s = medgrain_knowledge::build(&input, &out, &opts, &mut |r, i, n| {
                if !quiet {
                    let problems = if r.problems.is_empty() {
                        String::new()
                    } else {
                        format!(" · problems {:?}", r.problems)
                    };
                    eprintln!(
                        "[{i}/{n}] {} ({}): {} documents{problems}",
                        r.path, r.format, r.documents
                    );
                }
            })?;
            let secs = started.elapsed().as_secs_f64();
            outln!("medgrain kb build → {}", out.display());
            outln!(
            "  files {} read · {} already in the knowledge base · documents {} · chunks {} (+{} duplicates dropped) · tokens {}",
            s.files_read, s.files_already_ingested, s.documents, s.chunks, s.duplicates, s.tokens
        );
            outln!(
                "  {} · {:.1} s ({:.0} chunks/s) · knowledge base now holds {} chunks",
                match &s.embedder {
                    Some(e) => format!("BM25 + dense ({e})"),
                    None => "BM25 only".to_string(),
                },
                secs,
                s.chunks as f64 / secs.max(1e-9),
                s.total_chunks
            );
            if let Some(added) = s.ann_added {
                outln!("  approximate index (dense.ann): +{added} vectors");
            }
            for r in s.reports.iter().filter(|r| !r.problems.is_empty()) {
                outln!(
                    "  problems in {}: {:?} e.g. {}",
                    r.path,
                    r.problems,
                    r.examples.join("; ")
                );
            }
            Ok(if s.problems > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        KbAction::Search {
            kb,
            query,
            queries,
            json,
            top,
            mode,
            embed_model,
        } => {
            let base = medgrain_knowledge::KnowledgeBase::open(&kb, embed_model.as_deref())?;
            let mode = match mode {
                Some(m) => {
                    if m != medgrain_knowledge::Mode::Bm25 && !base.dense() {
                        return Err(CliError::Usage(format!(
                        "--mode {m:?}: {} has no usable embeddings (built without a model, or the model is not found: set --embed-model or MEDGRAIN_EMBED_MODEL)",
                        kb.display()
                    )));
                    }
                    m
                }
                None if base.dense() => medgrain_knowledge::Mode::Hybrid,
                None => medgrain_knowledge::Mode::Bm25,
            };
            let list: Vec<String> = match (&query, &queries) {
                (Some(q), _) => vec![q.clone()],
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| CliError::Io {
                        path: f.clone(),
                        source: e,
                    })?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
                (None, None) => Vec::new(),
            };
            for query in list {
                let hits = base.search(&query, top, mode)?;
                if json {
                    outln!("{}", serde_json::json!({"query": query, "hits": hits}));
                } else {
                    outln!("{query}");
                    for (i, h) in hits.iter().enumerate() {
                        outln!("{}. [{:.4}] {} — {} ({})", i + 1, h.score, h.id, h.title, h.source);
                        outln!("   {}", h.text);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
