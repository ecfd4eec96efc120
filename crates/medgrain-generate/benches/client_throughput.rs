//! Client throughput against a fixed-latency Chat Completions server (`medgrain`'s mock, run as a separate
//! process so that its CPU is not counted): achieved requests/s versus the ideal C / latency, and client CPU per
//! request. Run: `cargo bench -p medgrain-generate --bench client_throughput` (env LATENCY_MS, default 200).

use medgrain_generate::openai::client::{ChatClient, ClientConfig};
use medgrain_generate::openai::mock::{serve, MockOptions, MockStats};
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let latency = Duration::from_millis(
        std::env::var("LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
    if std::env::var("MEDGRAIN_BENCH_SERVER").is_ok() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            println!("{}", l.local_addr().expect("addr"));
            let opts = MockOptions {
                latency,
                ..Default::default()
            };
            serve(l, opts, Arc::new(MockStats::default())).await;
        });
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench probing
    }
    let exe = std::env::current_exe().expect("exe");
    let mut server = std::process::Command::new(exe)
        .env("MEDGRAIN_BENCH_SERVER", "1")
        .env("LATENCY_MS", latency.as_millis().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("server");
    let mut addr = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut addr)
        .expect("addr");
    let base = format!("http://{}/v1", addr.trim());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "latency {} ms; client on 2 worker threads; server in a separate process",
        latency.as_millis()
    );
    println!(
        "{:>6} {:>9} {:>12} {:>12} {:>8} {:>14}",
        "C", "requests", "achieved/s", "ideal/s", "ratio", "CPU µs/request"
    );
    for c in [16usize, 64, 128, 256, 512] {
        let client = Arc::new(
            ChatClient::new(ClientConfig {
                base_urls: vec![base.clone()],
                api_key: Some("bench-key".into()),
                max_concurrency: c,
                adaptive: false,
                timeout: Duration::from_secs(30),
                max_retries: 2,
                backoff_base: Duration::from_millis(50),
                backoff_max: Duration::from_secs(1),
                breaker_threshold: 1000,
                breaker_cooldown: Duration::from_secs(1),
            })
            .expect("client"),
        );
        let n = c * 12;
        let body = |i: usize| {
            serde_json::json!({"model": "mock-model", "messages": [
                {"role": "system", "content": "bench"},
                {"role": "user", "content": format!("- Modality: CT; organ or body part: lung; request {i}")}
            ]})
        };
        // Warm the connection pool, then measure.
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..c {
                let (cl, b) = (client.clone(), body(i));
                set.spawn(async move { cl.chat(&b).await.is_ok() });
            }
            while set.join_next().await.is_some() {}
        });
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let ok = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                let (cl, b) = (client.clone(), body(i));
                set.spawn(async move { cl.chat(&b).await.is_ok() });
            }
            let mut ok = 0;
            while let Some(r) = set.join_next().await {
                ok += usize::from(r.unwrap_or(false));
            }
            ok
        });
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let achieved = ok as f64 / secs;
        let ideal = c as f64 / latency.as_secs_f64();
        println!(
            "{c:>6} {ok:>9} {achieved:>12.1} {ideal:>12.1} {:>8.3} {:>14.0}",
            achieved / ideal,
            cpu / ok.max(1) as f64 * 1e6
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
