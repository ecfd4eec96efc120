//! Query latency of a knowledge base, in process: opens KBDIR once, runs every query of QUERIES (one per line)
//! REPEAT times per mode, and prints p50 / p99 / mean per mode.
//!
//! cargo run --release -p medgrain-knowledge --example kb_latency -- KBDIR QUERIES [REPEAT] [TOP]

use medgrain_knowledge::{KnowledgeBase, Mode};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: kb_latency KBDIR QUERIES [REPEAT] [TOP]");
        std::process::exit(2);
    }
    let kb = KnowledgeBase::open(std::path::Path::new(&args[1]), None)?;
    let queries: Vec<String> = std::fs::read_to_string(&args[2])?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let repeat: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let top: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let modes: &[Mode] = if kb.dense() {
        &[Mode::Bm25, Mode::Dense, Mode::Hybrid]
    } else {
        &[Mode::Bm25]
    };
    println!(
        "{} chunks, {} queries × {repeat}, top {top}",
        kb.manifest.chunks,
        queries.len()
    );
    for &mode in modes {
        let _ = kb.search(&queries[0], top, mode)?; // warm-up
        let mut ms: Vec<f64> = Vec::new();
        for _ in 0..repeat {
            for q in &queries {
                let t = Instant::now();
                let hits = kb.search(q, top, mode)?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(hits);
            }
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        println!(
            "{mode:?}: p50 {:.2} ms · p99 {:.2} ms · mean {:.2} ms ({} queries)",
            pct(0.5),
            pct(0.99),
            mean,
            ms.len()
        );
    }
    Ok(())
}
