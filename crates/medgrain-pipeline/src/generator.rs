//! Builds the description writer a `[generator]` table selects.

use crate::config::{GeneratorConfig, LoadedConfig};
use crate::PipelineError;
use medgrain_generate::openai::{OpenAiConfig, OpenAiGenerator};
use medgrain_generate::template::TemplateWriter;
use medgrain_generate::Generator;
use std::path::Path;
use std::time::Duration;

/// The `openai` settings of a validated `[generator]` table; `out` anchors the default cache path.
pub fn openai_config(g: &GeneratorConfig, loaded: &LoadedConfig, out: &Path) -> OpenAiConfig {
    OpenAiConfig {
        base_urls: g.base_url.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
        model: g.model.clone().unwrap_or_default(),
        api_key_env: g.api_key_env.clone(),
        max_concurrency: g.max_concurrency,
        adaptive_concurrency: g.adaptive_concurrency,
        timeout: Duration::from_secs_f64(g.timeout_s),
        max_retries: g.max_retries,
        backoff_base: Duration::from_secs_f64(g.backoff_base_s),
        backoff_max: Duration::from_secs_f64(g.backoff_max_s),
        temperature: g.temperature,
        max_tokens: g.max_tokens,
        seed: g.seed,
        response_format: g.response_format.clone(),
        max_image_side: g.max_image_side,
        repair_attempts: g.repair_attempts,
        cache_path: g
            .cache
            .as_ref()
            .map(|p| loaded.resolve(p))
            .unwrap_or_else(|| out.join("cache").join("requests.sqlite")),
        offline: g.offline,
    }
}

/// The writer for a run into `out`.
pub fn make_generator(loaded: &LoadedConfig, out: &Path) -> Result<Box<dyn Generator>, PipelineError> {
    let g = &loaded.config.generator;
    match g.kind.as_str() {
        "openai" => {
            let gen = OpenAiGenerator::new(openai_config(g, loaded, out)).map_err(|e| PipelineError::Config {
                path: loaded.path.clone(),
                reason: e.to_string(),
            })?;
            Ok(Box::new(gen))
        }
        _ => Ok(Box::new(TemplateWriter)),
    }
}

/// Worker threads for shards: the cores for the template writer; for a remote writer, enough shards in flight
/// to keep `max_concurrency` requests busy.
pub fn shard_workers(g: &GeneratorConfig, shard_size: usize) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    if g.kind == "openai" {
        (g.max_concurrency.div_ceil(shard_size.max(1)) + 1).clamp(cores, 64)
    } else {
        cores
    }
}
