//! The `openai` generator: descriptions written by a vision-language model behind an OpenAI-compatible Chat
//! Completions API (vLLM, SGLang, llama.cpp server, Ollama, hosted APIs). Requests carry the MedTrinity prompt
//! ([`prompt`]) and the visual prompt ([`visual`]); answers are cached ([`cache`]) so nothing is asked twice;
//! the transport ([`client`]) retries, limits concurrency and isolates failing endpoints. [`mock`] is an
//! in-process server that speaks the protocol and injects faults, for tests and benchmarks.

pub mod cache;
pub mod client;
pub mod mock;
pub mod prompt;
pub mod visual;

use crate::{GenerateError, Generated, Generator, SampleFacts};
use cache::{cache_key, CachedAnswer, RequestCache};
use client::{CallError, ChatClient, ClientConfig};
use medgrain_records::GeneratorInfo;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the `openai` generator (the `[generator]` table with `kind = "openai"`).
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub base_urls: Vec<String>,
    pub model: String,
    /// Environment variable holding the API key; unset or empty means no Authorization header.
    pub api_key_env: String,
    pub max_concurrency: usize,
    pub adaptive_concurrency: bool,
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub seed: Option<i64>,
    /// "json_schema" | "json_object" | "none".
    pub response_format: String,
    /// Longest side of the image sent (pixels); larger images are downscaled.
    pub max_image_side: u32,
    /// Follow-up attempts for truncated or unparseable answers.
    pub repair_attempts: u32,
    pub cache_path: PathBuf,
    /// Answer only from the cache (e.g. after `batch import`); a miss is a sample error.
    pub offline: bool,
}

/// Per-run usage figures.
#[derive(Debug, Default)]
struct Usage {
    cache_hits: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    repairs: AtomicU64,
}

struct Inner {
    cfg: OpenAiConfig,
    client: ChatClient,
    cache: RequestCache,
    usage: Usage,
}

/// The generator. `generate_batch` runs a shard's requests concurrently on its own runtime.
pub struct OpenAiGenerator {
    inner: Arc<Inner>,
    rt: tokio::runtime::Runtime,
}

fn fail(reason: impl Into<String>) -> GenerateError {
    GenerateError::Failed {
        generator: "openai".into(),
        reason: reason.into(),
    }
}

impl OpenAiGenerator {
    pub fn new(cfg: OpenAiConfig) -> Result<Self, GenerateError> {
        let api_key = std::env::var(&cfg.api_key_env).ok().filter(|k| !k.trim().is_empty());
        let client = ChatClient::new(ClientConfig {
            base_urls: cfg.base_urls.clone(),
            api_key,
            max_concurrency: cfg.max_concurrency,
            adaptive: cfg.adaptive_concurrency,
            timeout: cfg.timeout,
            max_retries: cfg.max_retries,
            backoff_base: cfg.backoff_base,
            backoff_max: cfg.backoff_max,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
        })
        .map_err(fail)?;
        let cache = RequestCache::open(&cfg.cache_path).map_err(|e| fail(format!("request cache: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("async runtime: {e}")))?;
        Ok(OpenAiGenerator {
            inner: Arc::new(Inner {
                cfg,
                client,
                cache,
                usage: Usage::default(),
            }),
            rt,
        })
    }

    /// The request body for one sample (also what `batch export` writes) and its cache key.
    pub fn request_body(&self, f: &SampleFacts<'_>) -> Result<(Value, String), GenerateError> {
        let cfg = &self.inner.cfg;
        let image = f.image.ok_or_else(|| fail("no image bytes for the visual prompt"))?;
        let v = visual::visual_prompt(image, f.rois, cfg.max_image_side).map_err(fail)?;
        let mut body = json!({"model": cfg.model, "messages": prompt::messages(f, &v)});
        if let Some(t) = cfg.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = cfg.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if let Some(s) = cfg.seed {
            body["seed"] = json!(s);
        }
        if let Some(rf) = prompt::response_format(&cfg.response_format) {
            body["response_format"] = rf;
        }
        let key = cache_key(prompt::PROMPT_VERSION, &body);
        Ok((body, key))
    }

    /// Usage of this generator so far, for manifests and summaries.
    pub fn usage_json(&self) -> Value {
        let u = &self.inner.usage;
        let c = &self.inner.client.counters;
        json!({
            "requests_sent": c.requests.load(Ordering::Relaxed),
            "retries": c.retries.load(Ordering::Relaxed),
            "rate_limited": c.rate_limited.load(Ordering::Relaxed),
            "peak_inflight": c.peak_inflight.load(Ordering::Relaxed),
            "cache_hits": u.cache_hits.load(Ordering::Relaxed),
            "answered": u.answered.load(Ordering::Relaxed),
            "repairs": u.repairs.load(Ordering::Relaxed),
            "failed": u.failed.load(Ordering::Relaxed),
        })
    }
}

fn generated(cfg: &OpenAiConfig, a: &CachedAnswer) -> Result<Generated, String> {
    let (sections, description) = prompt::parse_answer(&a.content)?;
    Ok(Generated {
        sections,
        description,
        generator: GeneratorInfo {
            kind: "openai".into(),
            model: Some(cfg.model.clone()),
            prompt_version: prompt::PROMPT_VERSION.into(),
            prompt_tokens: a.prompt_tokens,
            completion_tokens: a.completion_tokens,
            finish_reason: a.finish_reason.clone(),
        },
    })
}

async fn describe(inner: Arc<Inner>, body: Value, key: String) -> Result<Generated, GenerateError> {
    let cfg = &inner.cfg;
    if let Some(hit) = inner.cache.get(&key).map_err(|e| fail(format!("request cache: {e}")))? {
        if let Ok(g) = generated(cfg, &hit) {
            inner.usage.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(g);
        }
    }
    if cfg.offline {
        return Err(fail("no cached answer and offline = true"));
    }
    let mut req = body;
    let (mut prompt_tokens, mut completion_tokens) = (None::<i64>, None::<i64>);
    let mut repairs_left = cfg.repair_attempts;
    loop {
        let out = inner.client.chat(&req).await.map_err(|e| match e {
            CallError::Fatal(m) => fail(m),
            e @ CallError::Exhausted { .. } => fail(e.to_string()),
        })?;
        let add = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        prompt_tokens = add(prompt_tokens, out.prompt_tokens);
        completion_tokens = add(completion_tokens, out.completion_tokens);
        let truncated = out.finish_reason.as_deref() == Some("length");
        let answer = CachedAnswer {
            content: out.content.clone(),
            prompt_tokens,
            completion_tokens,
            finish_reason: out.finish_reason.clone(),
        };
        let parsed = if truncated {
            Err("finish_reason = length: the answer was truncated".to_string())
        } else {
            generated(cfg, &answer)
        };
        match parsed {
            Ok(g) => {
                inner
                    .cache
                    .put(&key, &cfg.model, prompt::PROMPT_VERSION, &answer)
                    .map_err(|e| fail(format!("request cache: {e}")))?;
                inner.usage.answered.fetch_add(1, Ordering::Relaxed);
                return Ok(g);
            }
            Err(reason) if repairs_left == 0 => {
                let hint = if truncated { " (raise max_tokens)" } else { "" };
                return Err(fail(format!(
                    "{reason}{hint}; after {} repair attempt(s)",
                    cfg.repair_attempts
                )));
            }
            Err(_) => {
                repairs_left -= 1;
                inner.usage.repairs.fetch_add(1, Ordering::Relaxed);
                if let Some(msgs) = req.get_mut("messages").and_then(Value::as_array_mut) {
                    msgs.push(json!({"role": "assistant", "content": out.content}));
                    msgs.push(prompt::repair_message(truncated));
                }
            }
        }
    }
}

impl Generator for OpenAiGenerator {
    fn kind(&self) -> &'static str {
        "openai"
    }

    fn batch_size(&self) -> Option<usize> {
        None
    }

    fn prompt_version(&self) -> &str {
        prompt::PROMPT_VERSION
    }

    fn generate(&self, facts: &SampleFacts<'_>) -> Result<Generated, GenerateError> {
        self.generate_batch(std::slice::from_ref(facts))
            .pop()
            .unwrap_or_else(|| Err(fail("no result")))
    }

    fn generate_batch(&self, facts: &[SampleFacts<'_>]) -> Vec<Result<Generated, GenerateError>> {
        let mut results: Vec<Option<Result<Generated, GenerateError>>> = (0..facts.len()).map(|_| None).collect();
        let mut set = tokio::task::JoinSet::new();
        for (i, f) in facts.iter().enumerate() {
            match self.request_body(f) {
                Ok((body, key)) => {
                    let inner = self.inner.clone();
                    set.spawn_on(async move { (i, describe(inner, body, key).await) }, self.rt.handle());
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        self.rt.block_on(async {
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok((i, r)) => results[i] = Some(r),
                    Err(e) => tracing::error!("generation task failed: {e}"),
                }
            }
        });
        results
            .into_iter()
            .map(|r| {
                let r = r.unwrap_or_else(|| Err(fail("generation task did not finish")));
                if r.is_err() {
                    self.inner.usage.failed.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
            .collect()
    }

    fn usage(&self) -> Option<Value> {
        Some(self.usage_json())
    }
}
