//! The Chat Completions client: one or several endpoints (round robin, each with a circuit breaker), a concurrency
//! limit (fixed, or adaptive by AIMD on 429s and timeouts), retries with exponential backoff and full jitter on
//! 429/5xx/408/connection errors/timeouts/malformed bodies, `Retry-After` honoured, and no retry on other 4xx
//! (wrong model, bad key). The API key is sent as a Bearer token and scrubbed from every error message.

use serde_json::Value;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URLs ending in `/v1`.
    pub base_urls: Vec<String>,
    pub api_key: Option<String>,
    pub max_concurrency: usize,
    pub adaptive: bool,
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive failures that open an endpoint's breaker.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

/// A successful completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutcome {
    pub content: String,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
}

/// Why a call failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server refused the request in a way retrying cannot fix (400, 401, 403, 404, 422, ...).
    #[error("{0}")]
    Fatal(String),
    /// Retries were used up on retryable failures; the last one is given.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
}

/// Counters of a client's life, for reports and tests.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub peak_inflight: AtomicUsize,
}

struct LimiterState {
    inflight: usize,
    limit: f64,
}

/// Concurrency limiter; with `adaptive`, the limit grows by 1/limit per success and shrinks ×0.7 on overload.
struct Limiter {
    state: Mutex<LimiterState>,
    notify: Notify,
    max: usize,
    adaptive: bool,
}

impl Limiter {
    fn new(max: usize, adaptive: bool) -> Self {
        let max = max.max(1);
        Limiter {
            state: Mutex::new(LimiterState {
                inflight: 0,
                limit: max as f64,
            }),
            notify: Notify::new(),
            max,
            adaptive,
        }
    }

    fn try_take(&self) -> Option<usize> {
        let mut s = self.state.lock().ok()?;
        if (s.inflight as f64) < s.limit.floor().max(1.0) {
            s.inflight += 1;
            Some(s.inflight)
        } else {
            None
        }
    }

    async fn acquire(&self) -> usize {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(n) = self.try_take() {
                return n;
            }
            notified.await;
        }
    }

    fn release(&self, overloaded: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.inflight = s.inflight.saturating_sub(1);
            if self.adaptive {
                s.limit = if overloaded {
                    (s.limit * 0.7).max(1.0)
                } else {
                    (s.limit + 1.0 / s.limit).min(self.max as f64)
                };
            }
        }
        self.notify.notify_waiters();
    }
}

struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

struct Endpoint {
    url: String,
    breaker: Mutex<Breaker>,
}

/// The client. Cheap to share behind an `Arc`.
pub struct ChatClient {
    http: reqwest::Client,
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    limiter: Limiter,
    cfg: ClientConfig,
    jitter: Mutex<u64>,
    pub counters: ClientCounters,
}

enum Attempt {
    Ok(ChatOutcome),
    Retry {
        reason: String,
        wait: Option<Duration>,
        overload: bool,
        endpoint_failure: bool,
    },
    Fatal(String),
}

/// Parses a `Retry-After` value in seconds (HTTP-date forms are ignored: backoff applies).
fn retry_after(h: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let s = h?.to_str().ok()?.trim();
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::from_secs_f64(v.min(300.0)))
}

/// Extracts content, finish reason and usage from a Chat Completions response body.
pub fn parse_completion(body: &Value) -> Option<ChatOutcome> {
    let choice = body.get("choices")?.get(0)?;
    let content = choice.get("message")?.get("content")?.as_str()?.to_string();
    let usage = body.get("usage");
    let tok = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_i64);
    Some(ChatOutcome {
        content,
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
        prompt_tokens: tok("prompt_tokens"),
        completion_tokens: tok("completion_tokens"),
    })
}

impl ChatClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, String> {
        if cfg.base_urls.is_empty() {
            return Err("no base_url".into());
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.max_concurrency.max(1))
            .connect_timeout(cfg.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let endpoints = cfg
            .base_urls
            .iter()
            .map(|u| Endpoint {
                url: format!("{}/chat/completions", u.trim_end_matches('/')),
                breaker: Mutex::new(Breaker {
                    failures: 0,
                    open_until: None,
                }),
            })
            .collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        Ok(ChatClient {
            http,
            endpoints,
            next: AtomicUsize::new(0),
            limiter: Limiter::new(cfg.max_concurrency, cfg.adaptive),
            cfg,
            jitter: Mutex::new(seed),
            counters: ClientCounters::default(),
        })
    }

    /// Replaces the API key, wherever it occurs, by `***`.
    pub fn redact(&self, text: &str) -> String {
        match &self.cfg.api_key {
            Some(k) if !k.is_empty() => text.replace(k.as_str(), "***"),
            _ => text.to_string(),
        }
    }

    fn random_unit(&self) -> f64 {
        let mut s = match self.jitter.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Full-jitter backoff for retry number `attempt` (0-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.cfg.backoff_base.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        Duration::from_secs_f64(cap.min(self.cfg.backoff_max.as_secs_f64()) * self.random_unit())
    }

    /// Picks an endpoint whose breaker is closed (or half-open); waits when all are open.
    async fn pick(&self) -> usize {
        loop {
            let n = self.endpoints.len();
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let mut soonest: Option<Instant> = None;
            for k in 0..n {
                let i = (start + k) % n;
                let Ok(mut b) = self.endpoints[i].breaker.lock() else {
                    return i;
                };
                match b.open_until {
                    Some(t) if t > Instant::now() => soonest = Some(soonest.map_or(t, |s: Instant| s.min(t))),
                    Some(_) => {
                        b.open_until = None; // half-open: let one through
                        return i;
                    }
                    None => return i,
                }
            }
            let wait = soonest
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(50));
            tracing::warn!(
                "every endpoint's circuit breaker is open; waiting {:.1} s",
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn record_endpoint(&self, i: usize, failed: bool) {
        if let Ok(mut b) = self.endpoints[i].breaker.lock() {
            if failed {
                b.failures += 1;
                if b.failures >= self.cfg.breaker_threshold {
                    b.open_until = Some(Instant::now() + self.cfg.breaker_cooldown);
                    b.failures = 0;
                    tracing::warn!(endpoint = %self.endpoints[i].url, "circuit breaker opened");
                }
            } else {
                b.failures = 0;
            }
        }
    }

    async fn attempt(&self, i: usize, body: &Value) -> Attempt {
        let mut req = self
            .http
            .post(&self.endpoints[i].url)
            .json(body)
            .timeout(self.cfg.timeout);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return Attempt::Retry {
                    reason: format!("{}: {what}: {e}", self.endpoints[i].url),
                    wait: None,
                    overload: e.is_timeout(),
                    endpoint_failure: true,
                };
            }
        };
        let status = resp.status();
        let wait = retry_after(resp.headers().get(reqwest::header::RETRY_AFTER));
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Retry {
                    reason: format!("{}: reading the response failed: {e}", self.endpoints[i].url),
                    wait: None,
                    overload: e.is_timeout(),
                    endpoint_failure: true,
                }
            }
        };
        let snippet: String = text.chars().take(300).collect();
        match status.as_u16() {
            200..=299 => match serde_json::from_str::<Value>(&text)
                .ok()
                .as_ref()
                .and_then(parse_completion)
            {
                Some(o) => Attempt::Ok(o),
                None => Attempt::Retry {
                    reason: format!("{}: malformed response body: {snippet}", self.endpoints[i].url),
                    wait: None,
                    overload: false,
                    endpoint_failure: true,
                },
            },
            429 => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                Attempt::Retry {
                    reason: format!("429 rate limited: {snippet}"),
                    wait,
                    overload: true,
                    endpoint_failure: false,
                }
            }
            408 | 500..=599 => Attempt::Retry {
                reason: format!("{} server error: {snippet}", status.as_u16()),
                wait,
                overload: false,
                endpoint_failure: true,
            },
            401 | 403 => Attempt::Fatal(format!(
                "{}: {} — check the API key (api_key_env) and its permissions: {snippet}",
                self.endpoints[i].url, status
            )),
            404 => Attempt::Fatal(format!(
                "{}: {} — check base_url (it should end in /v1) and the model name: {snippet}",
                self.endpoints[i].url, status
            )),
            _ => Attempt::Fatal(format!("{}: {}: {snippet}", self.endpoints[i].url, status)),
        }
    }

    /// Sends one Chat Completions request, retrying as configured.
    pub async fn chat(&self, body: &Value) -> Result<ChatOutcome, CallError> {
        let mut attempt_no = 0u32;
        loop {
            // Take a concurrency slot first, then choose the endpoint: the choice then sees the latest breaker state.
            let inflight = self.limiter.acquire().await;
            let i = self.pick().await;
            self.counters.peak_inflight.fetch_max(inflight, Ordering::Relaxed);
            let result = self.attempt(i, body).await;
            let overload = matches!(result, Attempt::Retry { overload: true, .. });
            self.limiter.release(overload);
            match result {
                Attempt::Ok(o) => {
                    self.record_endpoint(i, false);
                    return Ok(o);
                }
                Attempt::Fatal(m) => return Err(CallError::Fatal(self.redact(&m))),
                Attempt::Retry {
                    reason,
                    wait,
                    endpoint_failure,
                    ..
                } => {
                    if endpoint_failure {
                        self.record_endpoint(i, true);
                    }
                    attempt_no += 1;
                    if attempt_no > self.cfg.max_retries {
                        return Err(CallError::Exhausted {
                            attempts: attempt_no,
                            last: self.redact(&reason),
                        });
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let backoff = self.backoff(attempt_no - 1);
                    let sleep = wait.map_or(backoff, |w| w.max(backoff));
                    tracing::debug!(
                        attempt = attempt_no,
                        wait_s = sleep.as_secs_f64(),
                        "retrying: {}",
                        self.redact(&reason)
                    );
                    tokio::time::sleep(sleep).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_parsing() {
        let b = serde_json::json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
                                   "usage": {"prompt_tokens": 3, "completion_tokens": 1}});
        let o = parse_completion(&b).unwrap();
        assert_eq!(o.content, "hi");
        assert_eq!(o.finish_reason.as_deref(), Some("length"));
        assert_eq!((o.prompt_tokens, o.completion_tokens), (Some(3), Some(1)));
        assert!(parse_completion(&serde_json::json!({"choices": []})).is_none());
    }

    #[test]
    fn retry_after_seconds() {
        let h = reqwest::header::HeaderValue::from_static("2");
        assert_eq!(retry_after(Some(&h)), Some(Duration::from_secs(2)));
        let d = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after(Some(&d)), None);
    }

    #[test]
    fn backoff_is_bounded_and_redaction_works() {
        let c = ChatClient::new(ClientConfig {
            base_urls: vec!["http://127.0.0.1:9/v1".into()],
            api_key: Some("sk-secret".into()),
            max_concurrency: 2,
            adaptive: false,
            timeout: Duration::from_secs(1),
            max_retries: 1,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(250),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(1),
        })
        .unwrap();
        for a in 0..10 {
            assert!(c.backoff(a) <= Duration::from_millis(250));
        }
        assert_eq!(c.redact("Bearer sk-secret!"), "Bearer ***!");
    }

    #[test]
    fn adaptive_limiter_shrinks_and_grows() {
        let l = Limiter::new(10, true);
        assert_eq!(l.try_take(), Some(1));
        l.release(true);
        let lim = l.state.lock().unwrap().limit;
        assert!((lim - 7.0).abs() < 1e-9);
        l.try_take();
        l.release(false);
        assert!(l.state.lock().unwrap().limit > 7.0);
    }
}
