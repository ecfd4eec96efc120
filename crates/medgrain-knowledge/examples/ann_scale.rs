//! The knowledge base's approximate index (`ann::Ann`, the code `kb build --ann` and `kb search` run) at scale
//! (#18): N clustered 384-dimensional unit vectors written to `WORKDIR/vectors.f32` as a KB holds them, exact
//! top-10 for NQ queries by a streaming scan, then build time and peak memory, recall@10 and latency (p50/p99, one
//! query at a time) of the memory-mapped index, resident memory after the queries, and an incremental add of 1 %.
//!
//! `cargo run --release -p medgrain-knowledge --example ann_scale -- N NQ WORKDIR [SEGMENT_ROWS]`
//!
//! Vectors as `scripts/ann_bench` makes them (2,000 random centres, Gaussian spread, normalised; queries from the
//! same distribution, not in the index), from a small self-contained generator. WORKDIR needs N × 1.5 KB free for
//! the vectors plus ≈ 0.55 KB per vector for the index.
use medgrain_knowledge::ann::{read_rows, Ann, SEGMENT_ROWS, VECTORS_FILE};
use medgrain_knowledge::dense::top_k;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

const DIM: usize = 384;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// A standard normal sample (Box–Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

fn vectors(n: usize, centres: &[Vec<f32>], rng: &mut Rng) -> Vec<f32> {
    let spread = 0.35 / (DIM as f32).sqrt() * 4.0;
    let mut out = vec![0f32; n * DIM];
    for v in out.chunks_exact_mut(DIM) {
        let c = &centres[(rng.next() % centres.len() as u64) as usize];
        for (x, &m) in v.iter_mut().zip(c) {
            *x = m + spread * rng.normal();
        }
        normalise(v);
    }
    out
}

fn status_mb(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn append(path: &Path, rows: &[f32]) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open vectors");
    let mut w = std::io::BufWriter::with_capacity(1 << 22, f);
    for x in rows {
        w.write_all(&x.to_le_bytes()).expect("write vectors");
    }
    w.flush().expect("flush vectors");
}

/// Exact top-10 (row, score) of every query over rows `first..n` of the file, streamed in blocks: the product's
/// exact scan (`dense::top_k`) per block, merged.
fn exact(path: &Path, first: usize, n: usize, queries: &[f32]) -> Vec<Vec<(u64, f32)>> {
    let f = std::fs::File::open(path).expect("open vectors");
    let mut best: Vec<Vec<(u64, f32)>> = vec![Vec::new(); queries.len() / DIM];
    const BLOCK: usize = 1 << 16;
    let mut at = first;
    while at < n {
        let m = BLOCK.min(n - at);
        let rows = read_rows(&f, path, DIM, at, at + m).expect("read vectors");
        best.par_iter_mut()
            .zip(queries.par_chunks_exact(DIM))
            .for_each(|(top, q)| {
                top.extend(top_k(&rows, DIM, q, 10).into_iter().map(|(i, s)| (at as u64 + i, s)));
                top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                top.truncate(10);
            });
        at += m;
    }
    best
}

fn recall(found: &[Vec<u64>], truth: &[Vec<(u64, f32)>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|k| t.iter().any(|x| x.0 == **k)).count())
        .sum();
    hits as f64 / (10 * truth.len()) as f64
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: ann_scale N NQ WORKDIR [SEGMENT_ROWS]");
        std::process::exit(2);
    }
    let n: usize = args[1].parse().expect("N");
    let nq: usize = args[2].parse().expect("NQ");
    let dir = Path::new(&args[3]);
    let seg: usize = args.get(4).map_or(SEGMENT_ROWS, |s| s.parse().expect("SEGMENT_ROWS"));
    std::fs::create_dir_all(dir).expect("WORKDIR");
    let vpath = dir.join(VECTORS_FILE);
    let _ = std::fs::remove_file(&vpath);
    let _ = std::fs::remove_dir_all(dir.join(medgrain_knowledge::ann::ANN_DIR));
    let mut rng = Rng(7);
    let centres: Vec<Vec<f32>> = (0..2000)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| rng.normal()).collect();
            normalise(&mut c);
            c
        })
        .collect();
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let m = left.min(100_000);
        append(&vpath, &vectors(m, &centres, &mut rng));
        left -= m;
    }
    let queries = vectors(nq, &centres, &mut rng);
    eprintln!("{n} clustered vectors written in {:.1?}", t.elapsed());
    let t = Instant::now();
    let truth = exact(&vpath, 0, n, &queries);
    eprintln!(
        "exact top-10 of {nq} queries (one streaming pass) in {:.1?}",
        t.elapsed()
    );

    let t = Instant::now();
    let added = Ann::update_with(dir, DIM, n, seg).expect("build");
    let build = t.elapsed().as_secs_f64();
    let disk: u64 = std::fs::read_dir(dir.join(medgrain_knowledge::ann::ANN_DIR))
        .expect("index folder")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "build: {added} vectors in {build:.1} s ({:.0}/s, {} threads), segments of {seg}, peak RSS of the process {:.0} MB, index on disk {:.0} MB",
        n as f64 / build,
        rayon::current_num_threads(),
        status_mb("VmHWM:"),
        disk as f64 / 1e6
    );
    let before = status_mb("VmRSS:");
    let ann = Ann::open(dir, DIM, n).expect("the index opens");
    // twice: the first pass pays the page faults of the memory-mapped segments (cold), the second does not
    for pass in ["first pass (cold pages)", "second pass"] {
        let mut lat = Vec::new();
        let mut found = Vec::new();
        for q in queries.chunks_exact(DIM) {
            let t = Instant::now();
            let hits = ann.search(q, 10).expect("search");
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            found.push(hits.into_iter().map(|h| h.0).collect::<Vec<u64>>());
        }
        println!(
            "search, {pass}: {} segments, recall@10 {:.4} against exact search ({nq} queries), p50 {:.2} ms, p99 {:.2} ms; RSS +{:.0} MB after the queries",
            ann.segments(),
            recall(&found, &truth),
            pct(lat.clone(), 0.5),
            pct(lat, 0.99),
            status_mb("VmRSS:") - before
        );
    }
    drop(ann);

    // incremental: 1 % more rows appended to vectors.f32, the index brought up to them
    let more = (n / 100).max(1);
    append(&vpath, &vectors(more, &centres, &mut rng));
    let t = Instant::now();
    let added = Ann::update_with(dir, DIM, n + more, seg).expect("incremental build");
    let secs = t.elapsed().as_secs_f64();
    let extra = exact(&vpath, n, n + more, &queries);
    let truth2: Vec<Vec<(u64, f32)>> = truth
        .into_iter()
        .zip(extra)
        .map(|(mut a, b)| {
            a.extend(b);
            a.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            a.truncate(10);
            a
        })
        .collect();
    let ann = Ann::open(dir, DIM, n + more).expect("the extended index opens");
    let found: Vec<Vec<u64>> = queries
        .chunks_exact(DIM)
        .map(|q| ann.search(q, 10).expect("search").into_iter().map(|h| h.0).collect())
        .collect();
    println!(
        "incremental: +{added} vectors in {secs:.1} s ({:.0}/s); recall@10 {:.4} over the {} vectors; peak RSS of the process {:.0} MB",
        added as f64 / secs,
        recall(&found, &truth2),
        n + more,
        status_mb("VmHWM:")
    );
}
