//! A small in-process HTTP/1.1 server that speaks enough of the Chat Completions protocol for tests, benchmarks
//! and trying a config without a GPU (`medgrain mock-server`). It answers with a JSON description built from the
//! facts in the prompt, checks the model name and the Bearer key, counts requests, concurrency and successes per
//! prompt, and can inject the faults real servers produce, deterministically per prompt:
//!
//! | prompt hash % 8 | behaviour |
//! |---|---|
//! | 0 | first attempt 429 with `Retry-After: 1` |
//! | 1 | first attempt 500 |
//! | 2 | first attempt stalls for `stall` (longer than a client timeout) |
//! | 3 | first attempt returns a malformed JSON body |
//! | 4 | every attempt is truncated (`finish_reason = "length"`) |
//! | 5 | first answer is not JSON (a repair prompt fixes it) |
//! | 6, 7 | answered normally |

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Server behaviour.
#[derive(Debug, Clone)]
pub struct MockOptions {
    pub model: String,
    /// Required Bearer key; `None` accepts any request.
    pub api_key: Option<String>,
    /// Latency added to every answer.
    pub latency: Duration,
    pub faults: bool,
    /// How long a stalled answer hangs.
    pub stall: Duration,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            model: "mock-model".into(),
            api_key: None,
            latency: Duration::ZERO,
            faults: false,
            stall: Duration::from_secs(5),
        }
    }
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct MockStats {
    pub requests: AtomicU64,
    pub inflight: AtomicUsize,
    pub peak_inflight: AtomicUsize,
    pub unauthorized: AtomicU64,
    /// Attempts per prompt (hash of the first two messages).
    attempts: Mutex<HashMap<String, u32>>,
    /// Successful (200, parseable, complete) answers per prompt.
    successes: Mutex<HashMap<String, u32>>,
    /// Every Authorization header value seen (to check what the client sent).
    pub auth_seen: Mutex<Vec<String>>,
}

impl MockStats {
    /// The largest number of successful answers given for one prompt.
    pub fn max_successes_per_prompt(&self) -> u32 {
        self.successes
            .lock()
            .map(|m| m.values().copied().max().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn successful_prompts(&self) -> usize {
        self.successes.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "peak_inflight": self.peak_inflight.load(Ordering::Relaxed),
            "unauthorized": self.unauthorized.load(Ordering::Relaxed),
            "successful_prompts": self.successful_prompts(),
            "max_successes_per_prompt": self.max_successes_per_prompt(),
        })
    }
}

/// The fault class of a prompt (see the module table).
pub fn fault_class(prompt_hash: &str) -> u8 {
    u8::from_str_radix(&prompt_hash[..2], 16).unwrap_or(0) % 8
}

/// Hash of the prompt proper: the first two messages (system + user), so repair turns count as the same prompt.
pub fn prompt_hash(body: &Value) -> String {
    let first: Vec<&Value> = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| m.iter().take(2).collect())
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(serde_json::to_string(&first).unwrap_or_default().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn user_text(body: &Value) -> String {
    let user = body
        .get("messages")
        .and_then(|m| m.get(1))
        .and_then(|m| m.get("content"));
    match user {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A plausible answer that uses only the facts given in the prompt.
fn answer_for(body: &Value) -> String {
    let text = user_text(body);
    let field = |label: &str| -> Option<String> {
        let start = text.find(label)? + label.len();
        let rest = &text[start..];
        let end = rest.find([';', '\n']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    };
    let modality = field("- Modality:").unwrap_or_else(|| "medical".into());
    let organ = field("organ or body part:").unwrap_or_else(|| "anatomy".into());
    let position = text
        .find("Region of interest 1")
        .and_then(|i| text[i..].find("): ").map(|j| i + j + 3))
        .map(|s| text[s..].split(" part").next().unwrap_or("").to_string());
    let roi = match &position {
        Some(p) => format!("The region of interest lies in the {p} part of the image."),
        None => "No region of interest is marked.".to_string(),
    };
    let sections = json!({
        "modality": format!("This is a {modality} image."),
        "organ_detection": format!("The {organ} is shown."),
        "roi_analysis": roi,
        "lesion_texture": "The region of interest differs in intensity from the surrounding tissue.",
        "local_global": format!("The findings are confined to the {organ}."),
    });
    let mut obj = sections.as_object().cloned().unwrap_or_default();
    let joined: Vec<String> = obj.values().filter_map(Value::as_str).map(str::to_string).collect();
    obj.insert("description".into(), Value::String(joined.join(" ")));
    Value::Object(obj).to_string()
}

fn completion(model: &str, content: &str, finish: &str, prompt_len: usize) -> String {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_len / 4, "completion_tokens": content.len() / 4,
                  "total_tokens": prompt_len / 4 + content.len() / 4}
    })
    .to_string()
}

struct Reply {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
    delay: Duration,
}

fn reply(status: u16, body: String) -> Reply {
    Reply {
        status,
        body,
        headers: Vec::new(),
        delay: Duration::ZERO,
    }
}

fn handle(opts: &MockOptions, stats: &MockStats, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> Reply {
    if method == "GET" && path.ends_with("/stats") {
        return reply(200, stats.to_json().to_string());
    }
    if method != "POST" || !path.ends_with("/chat/completions") {
        return reply(
            404,
            json!({"error": {"message": format!("no route {method} {path}")}}).to_string(),
        );
    }
    if let Ok(mut seen) = stats.auth_seen.lock() {
        seen.push(auth.unwrap_or("").to_string());
    }
    if let Some(k) = &opts.api_key {
        if auth != Some(format!("Bearer {k}").as_str()) {
            stats.unauthorized.fetch_add(1, Ordering::Relaxed);
            return reply(
                401,
                json!({"error": {"message": "Incorrect API key provided."}}).to_string(),
            );
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return reply(
            400,
            json!({"error": {"message": "request body is not JSON"}}).to_string(),
        );
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("");
    if model != opts.model {
        return reply(
            404,
            json!({"error": {"message": format!("The model `{model}` does not exist.")}}).to_string(),
        );
    }
    let hash = prompt_hash(&req);
    let attempt = {
        let mut a = stats.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let n = a.entry(hash.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let class = if opts.faults { fault_class(&hash) } else { 6 };
    let is_repair = req
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| m.len() > 2);
    let good = answer_for(&req);
    let mut r = match (class, attempt) {
        (0, 1) => {
            let mut r = reply(429, json!({"error": {"message": "Rate limit reached"}}).to_string());
            r.headers.push(("Retry-After".into(), "1".into()));
            r
        }
        (1, 1) => reply(500, json!({"error": {"message": "internal server error"}}).to_string()),
        (2, 1) => {
            let mut r = reply(200, completion(&opts.model, &good, "stop", body.len()));
            r.delay = opts.stall;
            return r; // a stalled answer: the client should have given up; do not count it as a success
        }
        (3, 1) => reply(200, "{\"choices\": [{\"message\": ".into()),
        (4, _) => reply(
            200,
            completion(&opts.model, &good[..good.len() / 2], "length", body.len()),
        ),
        (5, _) if !is_repair => reply(
            200,
            completion(&opts.model, "I am sorry, I cannot describe images.", "stop", body.len()),
        ),
        _ => {
            if let Ok(mut s) = stats.successes.lock() {
                *s.entry(hash).or_insert(0) += 1;
            }
            reply(200, completion(&opts.model, &good, "stop", body.len()))
        }
    };
    r.delay += opts.latency;
    r
}

async fn serve_conn(stream: TcpStream, opts: Arc<MockOptions>, stats: Arc<MockStats>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = String::new();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let (mut len, mut auth, mut close) = (0usize, None, false);
        loop {
            let mut h = String::new();
            match rd.read_line(&mut h).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = Some(v.trim().to_string()),
                    "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        if len > 64 << 20 {
            return;
        }
        let mut body = vec![0u8; len];
        if rd.read_exact(&mut body).await.is_err() {
            return;
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let now = stats.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak_inflight.fetch_max(now, Ordering::SeqCst);
        let r = handle(&opts, &stats, &method, &path, auth.as_deref(), &body);
        if !r.delay.is_zero() {
            // Wait, but notice a client that gives up (closes the connection) so that in-flight counts stay true.
            let sleep = tokio::time::sleep(r.delay);
            tokio::pin!(sleep);
            let hung_up = tokio::select! {
                _ = &mut sleep => false,
                peek = rd.fill_buf() => matches!(peek, Ok([]) | Err(_)),
            };
            if hung_up {
                stats.inflight.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            sleep.await;
        }
        stats.inflight.fetch_sub(1, Ordering::SeqCst);
        let reason = match r.status {
            200 => "OK",
            401 => "Unauthorized",
            404 => "Not Found",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            _ => "Bad Request",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            r.status,
            r.body.len()
        );
        for (k, v) in &r.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if wr.write_all(head.as_bytes()).await.is_err() || wr.write_all(r.body.as_bytes()).await.is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, opts: MockOptions, stats: Arc<MockStats>) {
    let opts = Arc::new(opts);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_conn(stream, opts.clone(), stats.clone()));
    }
}

/// A server running on its own thread and runtime, for synchronous tests.
pub struct MockServer {
    pub addr: SocketAddr,
    pub stats: Arc<MockStats>,
    _rt: tokio::runtime::Runtime,
}

impl MockServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port.
    pub fn start(opts: MockOptions) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(MockStats::default());
        rt.spawn(serve(listener, opts, stats.clone()));
        Ok(MockServer { addr, stats, _rt: rt })
    }

    /// The `base_url` to configure (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}
