//! Offline batch generation: `batch export` writes the requests a build would send as OpenAI Batch API JSONL
//! (`custom_id`, `method`, `url`, `body`; at most 50,000 lines and 200 MB per file by default — the same format
//! `vllm run-batch` reads); `batch import` reads the output (and error) files back into the request cache, after
//! which `build` writes every answered sample without sending a request.
//!
//! Layout: `OUT/batch/requests-NNNNN.jsonl`, `OUT/batch/index.jsonl` (custom_id → cache key),
//! `OUT/batch/errors.jsonl` (samples that could not be prepared).

use crate::config::LoadedConfig;
use crate::engine::fsio::io_err;
use crate::generator::openai_config;
use crate::recipes::triplet_stages::prepare;
use crate::sources::open_source;
use crate::PipelineError;
use medgrain_generate::openai::cache::{CachedAnswer, RequestCache};
use medgrain_generate::openai::client::parse_completion;
use medgrain_generate::openai::{prompt, OpenAiGenerator};
use medgrain_records::ErrorRecord;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Limits of one request file.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_lines: usize,
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_lines: 50_000,
            max_bytes: 200 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    pub samples: usize,
    pub requests: usize,
    pub already_cached: usize,
    pub failed: usize,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    pub imported: usize,
    pub failed: Vec<(String, String)>,
    pub unknown: usize,
}

fn require_openai(loaded: &LoadedConfig) -> Result<(), PipelineError> {
    if loaded.config.generator.kind != "openai" {
        return Err(PipelineError::Config {
            path: loaded.path.clone(),
            reason: "batch files need [generator] kind = \"openai\" (with base_url and model)".into(),
        });
    }
    Ok(())
}

struct RollingWriter {
    dir: PathBuf,
    limits: BatchLimits,
    current: Option<(std::io::BufWriter<std::fs::File>, usize, usize)>,
    files: Vec<PathBuf>,
}

impl RollingWriter {
    fn write_line(&mut self, line: &str) -> Result<(), PipelineError> {
        let len = line.len() + 1;
        let full = match &self.current {
            Some((_, lines, bytes)) => *lines >= self.limits.max_lines || bytes + len > self.limits.max_bytes,
            None => true,
        };
        if full {
            self.close()?;
            let path = self.dir.join(format!("requests-{:05}.jsonl", self.files.len()));
            let f = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
            self.files.push(path);
            self.current = Some((std::io::BufWriter::new(f), 0, 0));
        }
        if let Some((w, lines, bytes)) = self.current.as_mut() {
            let path = self.files.last().cloned().unwrap_or_default();
            writeln!(w, "{line}").map_err(|e| io_err(&path, e))?;
            *lines += 1;
            *bytes += len;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), PipelineError> {
        if let Some((mut w, _, _)) = self.current.take() {
            let path = self.files.last().cloned().unwrap_or_default();
            w.flush().map_err(|e| io_err(&path, e))?;
        }
        Ok(())
    }
}

/// Writes the batch request files for every sample of the config whose answer is not cached yet.
pub fn export(loaded: &LoadedConfig, out: &Path, limits: BatchLimits) -> Result<ExportSummary, PipelineError> {
    require_openai(loaded)?;
    let cfg = openai_config(&loaded.config.generator, loaded, out);
    let cache =
        RequestCache::open(&cfg.cache_path).map_err(|e| PipelineError::Internal(format!("request cache: {e}")))?;
    let generator = OpenAiGenerator::new(cfg).map_err(|e| PipelineError::Config {
        path: loaded.path.clone(),
        reason: e.to_string(),
    })?;
    let dir = out.join("batch");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let index_path = dir.join("index.jsonl");
    let mut index = std::io::BufWriter::new(std::fs::File::create(&index_path).map_err(|e| io_err(&index_path, e))?);
    let errors_path = dir.join("errors.jsonl");
    let mut errors = std::io::BufWriter::new(std::fs::File::create(&errors_path).map_err(|e| io_err(&errors_path, e))?);
    let mut writer = RollingWriter {
        dir: dir.clone(),
        limits,
        current: None,
        files: Vec::new(),
    };
    let mut summary = ExportSummary::default();
    let knowledge = crate::knowledge::Knowledge::open(loaded)?;
    for scfg in &loaded.config.sources {
        let source = open_source(scfg, loaded)?;
        for sample in source.list()? {
            summary.samples += 1;
            let body = prepare(source.as_ref(), &sample, knowledge.as_ref(), None).and_then(|p| {
                generator
                    .request_body(&p.facts())
                    .map(|(b, k)| (p.record.id.clone(), b, k))
                    .map_err(|e| crate::sources::SampleError::new("generate", e.to_string()))
            });
            match body {
                Ok((id, body, key)) => {
                    if cache.get(&key).ok().flatten().is_some() {
                        summary.already_cached += 1;
                        continue;
                    }
                    let line = json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body});
                    writer.write_line(&line.to_string())?;
                    writeln!(index, "{}", json!({"custom_id": id, "cache_key": key}))
                        .map_err(|e| io_err(&index_path, e))?;
                    summary.requests += 1;
                }
                Err(e) => {
                    summary.failed += 1;
                    let rec = ErrorRecord {
                        source: source.name().to_string(),
                        source_path: sample.rel_path.clone(),
                        stage: e.stage.to_string(),
                        error: e.message,
                    };
                    let line = serde_json::to_string(&rec).map_err(|e| PipelineError::Internal(e.to_string()))?;
                    writeln!(errors, "{line}").map_err(|e| io_err(&errors_path, e))?;
                }
            }
        }
    }
    writer.close()?;
    index.flush().map_err(|e| io_err(&index_path, e))?;
    errors.flush().map_err(|e| io_err(&errors_path, e))?;
    summary.files = writer.files;
    Ok(summary)
}

/// Reads Batch API output/error files into the request cache.
pub fn import(loaded: &LoadedConfig, out: &Path, files: &[PathBuf]) -> Result<ImportSummary, PipelineError> {
    require_openai(loaded)?;
    let cfg = openai_config(&loaded.config.generator, loaded, out);
    let index_path = out.join("batch").join("index.jsonl");
    let text = std::fs::read_to_string(&index_path).map_err(|e| io_err(&index_path, e))?;
    let mut keys: HashMap<String, String> = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).map_err(|e| PipelineError::Usage(format!("{}: {e}", index_path.display())))?;
        if let (Some(id), Some(k)) = (v["custom_id"].as_str(), v["cache_key"].as_str()) {
            keys.insert(id.to_string(), k.to_string());
        }
    }
    let cache =
        RequestCache::open(&cfg.cache_path).map_err(|e| PipelineError::Internal(format!("request cache: {e}")))?;
    let mut s = ImportSummary::default();
    for file in files {
        let f = std::fs::File::open(file).map_err(|e| io_err(file, e))?;
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| io_err(file, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", file.display(), n + 1);
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                s.failed.push((at, "not a JSON line".into()));
                continue;
            };
            let id = v["custom_id"].as_str().unwrap_or("").to_string();
            let Some(key) = keys.get(&id) else {
                s.unknown += 1;
                continue;
            };
            if !v["error"].is_null() {
                s.failed.push((id, format!("batch error: {}", v["error"])));
                continue;
            }
            let status = v["response"]["status_code"].as_i64().unwrap_or(0);
            if status != 200 {
                s.failed
                    .push((id, format!("status {status}: {}", v["response"]["body"])));
                continue;
            }
            let Some(o) = parse_completion(&v["response"]["body"]) else {
                s.failed.push((id, "response body is not a chat completion".into()));
                continue;
            };
            if o.finish_reason.as_deref() == Some("length") {
                s.failed.push((id, "finish_reason = length: truncated answer".into()));
                continue;
            }
            if let Err(e) = prompt::parse_answer(&o.content) {
                s.failed.push((id, format!("unparseable answer: {e}")));
                continue;
            }
            let a = CachedAnswer {
                content: o.content,
                prompt_tokens: o.prompt_tokens,
                completion_tokens: o.completion_tokens,
                finish_reason: o.finish_reason,
            };
            cache
                .put(key, &cfg.model, prompt::PROMPT_VERSION, &a)
                .map_err(|e| PipelineError::Internal(format!("request cache: {e}")))?;
            s.imported += 1;
        }
    }
    Ok(s)
}
