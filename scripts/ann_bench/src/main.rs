//! ANN candidates for the knowledge base's dense index (#18): recall@10 against exact inner-product search, build
//! time, query latency (one thread, p50/p99) and memory, on N 384-dimensional unit vectors (all-MiniLM-L6-v2's size).
//! Vectors are either `clustered` (2,000 random centres, Gaussian spread, normalised: topical structure like text
//! embeddings have) or `uniform` (random directions: the hard case for graph indexes). Queries come from the same
//! distribution and are not in the index.
use rand::prelude::*;
use rand_distr::Normal;
use std::time::Instant;

const DIM: usize = 384;

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

fn vectors(n: usize, clustered: bool, centres: &[Vec<f32>], rng: &mut StdRng) -> Vec<f32> {
    let g = Normal::new(0.0f32, 1.0).unwrap();
    let spread = Normal::new(0.0f32, 0.35 / (DIM as f32).sqrt() * 4.0).unwrap();
    let mut out = vec![0f32; n * DIM];
    for v in out.chunks_exact_mut(DIM) {
        if clustered {
            let c = &centres[rng.gen_range(0..centres.len())];
            for (x, &m) in v.iter_mut().zip(c) {
                *x = m + spread.sample(rng);
            }
        } else {
            v.iter_mut().for_each(|x| *x = g.sample(rng));
        }
        normalise(v);
    }
    out
}

fn exact_top10(data: &[f32], q: &[f32]) -> Vec<u64> {
    let mut best: Vec<(f32, u64)> = Vec::with_capacity(11);
    for (i, v) in data.chunks_exact(DIM).enumerate() {
        let s: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
        if best.len() < 10 || s > best[best.len() - 1].0 {
            let at = best.partition_point(|&(b, _)| b >= s);
            best.insert(at, (s, i as u64));
            best.truncate(10);
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}

fn recall(found: &[Vec<u64>], truth: &[Vec<u64>]) -> f64 {
    let hits: usize = found.iter().zip(truth).map(|(f, t)| f.iter().filter(|k| t.contains(k)).count()).sum();
    hits as f64 / (10 * truth.len()) as f64
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let nq: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let clustered = args.get(3).map(|s| s != "uniform").unwrap_or(true);
    // `usearch` as 4th argument: skip hnsw_rs (6× slower to build; minutes at 1M)
    let only_usearch = args.get(4).is_some_and(|s| s == "usearch");
    // `i8` as 5th argument: usearch stores i8 instead of f16 (half the memory again)
    let (quantization, qname) = match args.get(5).map(String::as_str) {
        Some("i8") => (usearch::ScalarKind::I8, "i8"),
        _ => (usearch::ScalarKind::F16, "f16"),
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let mut rng = StdRng::seed_from_u64(7);
    let g = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> = (0..2000)
        .map(|_| {
            let mut c: Vec<f32> = (0..DIM).map(|_| g.sample(&mut rng)).collect();
            normalise(&mut c);
            c
        })
        .collect();
    let t = Instant::now();
    let data = vectors(n, clustered, &centres, &mut rng);
    let queries = vectors(nq, clustered, &centres, &mut rng);
    eprintln!("{} vectors ({}) made in {:.1?}", n, if clustered { "clustered" } else { "uniform" }, t.elapsed());
    let t = Instant::now();
    let truth: Vec<Vec<u64>> = std::thread::scope(|s| {
        let chunks: Vec<_> = queries
            .chunks(DIM * nq.div_ceil(threads))
            .map(|qs| s.spawn(|| qs.chunks_exact(DIM).map(|q| exact_top10(&data, q)).collect::<Vec<_>>()))
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let exact_ms = t.elapsed().as_secs_f64() * 1000.0 * threads as f64 / nq as f64;
    eprintln!("exact top-10: {exact_ms:.1} ms per query on one core");
    let base_rss = rss_mb();

    // usearch: HNSW, f16 vectors, inner product
    {
        let opts = usearch::IndexOptions {
            dimensions: DIM,
            metric: usearch::MetricKind::IP,
            quantization,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
            multi: false,
        };
        let index = usearch::new_index(&opts).unwrap();
        index.reserve(n).unwrap();
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..threads {
                let (index, data) = (&index, &data);
                s.spawn(move || {
                    for i in (w..n).step_by(threads) {
                        index.add(i as u64, &data[i * DIM..(i + 1) * DIM]).unwrap();
                    }
                });
            }
        });
        let build = t.elapsed().as_secs_f64();
        let mem = rss_mb() - base_rss;
        let path = std::env::temp_dir().join(format!("ann_bench_{n}_{qname}.usearch"));
        index.save(path.to_str().unwrap()).unwrap();
        drop(index);
        let before_view = rss_mb();
        let view = usearch::new_index(&opts).unwrap();
        view.view(path.to_str().unwrap()).unwrap();
        for ef in [64, 128, 256] {
            view.change_expansion_search(ef);
            let mut lat = Vec::new();
            let mut found = Vec::new();
            for q in queries.chunks_exact(DIM) {
                let t = Instant::now();
                let m = view.search(q, 10).unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                found.push(m.keys);
            }
            println!(
                "usearch HNSW {qname} M=16 efC=128 ef={ef}: build {build:.1} s ({:.0}/s, {threads} threads), in-memory +{mem:.0} MB, \
                 mmapped view +{:.0} MB RSS after queries, file {:.0} MB; recall@10 {:.4}; p50 {:.3} ms, p99 {:.3} ms",
                n as f64 / build,
                rss_mb() - before_view,
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
                recall(&found, &truth),
                pct(lat.clone(), 0.5),
                pct(lat, 0.99)
            );
        }
        // the index's top 100 re-ranked by exact inner products on the f32 vectors (which a KB keeps in
        // vectors.f32): what lifts a lossy quantisation's recall
        for ef in [128, 256] {
            view.change_expansion_search(ef);
            let mut lat = Vec::new();
            let mut found = Vec::new();
            for q in queries.chunks_exact(DIM) {
                let t = Instant::now();
                let m = view.search(q, 100).unwrap();
                let mut scored: Vec<(u64, f32)> = m
                    .keys
                    .iter()
                    .map(|&k| {
                        let row = &data[k as usize * DIM..(k as usize + 1) * DIM];
                        (k, row.iter().zip(q).map(|(a, b)| a * b).sum())
                    })
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1));
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                found.push(scored.iter().take(10).map(|x| x.0).collect::<Vec<u64>>());
            }
            println!(
                "usearch HNSW {qname} ef={ef}, top 100 re-ranked exactly: recall@10 {:.4}; p50 {:.3} ms, p99 {:.3} ms",
                recall(&found, &truth),
                pct(lat.clone(), 0.5),
                pct(lat, 0.99)
            );
        }
        // incremental adds: load the saved index (a copy in memory, not a view), add 1 % more, search again
        let more = vectors(n / 100, clustered, &centres, &mut rng);
        let loaded = usearch::new_index(&opts).unwrap();
        loaded.load(path.to_str().unwrap()).unwrap();
        loaded.reserve(n + n / 100).unwrap();
        let t = Instant::now();
        for (k, v) in more.chunks_exact(DIM).enumerate() {
            loaded.add((n + k) as u64, v).unwrap();
        }
        let add_rate = (n / 100) as f64 / t.elapsed().as_secs_f64();
        let mut all = data.clone();
        all.extend_from_slice(&more);
        let truth2: Vec<Vec<u64>> = queries.chunks_exact(DIM).take(50).map(|q| exact_top10(&all, q)).collect();
        loaded.change_expansion_search(64);
        let found: Vec<Vec<u64>> =
            queries.chunks_exact(DIM).take(50).map(|q| loaded.search(q, 10).unwrap().keys).collect();
        println!(
            "usearch incremental: +{} vectors at {add_rate:.0}/s (one thread) into the loaded index; recall@10 {:.4} (50 queries, ef=64)",
            n / 100,
            recall(&found, &truth2)
        );
        let _ = std::fs::remove_file(&path);
    }

    // hnsw_rs: HNSW, f32 vectors, dot product
    if !only_usearch {
        use hnsw_rs::prelude::*;
        let before = rss_mb();
        let hnsw = Hnsw::<f32, DistDot>::new(16, n, 16, 128, DistDot {});
        let t = Instant::now();
        let items: Vec<(&[f32], usize)> = data.chunks_exact(DIM).enumerate().map(|(i, v)| (v, i)).collect();
        hnsw.parallel_insert_slice(&items);
        let build = t.elapsed().as_secs_f64();
        let mem = rss_mb() - before;
        for ef in [64, 128, 256] {
            let mut lat = Vec::new();
            let mut found = Vec::new();
            for q in queries.chunks_exact(DIM) {
                let t = Instant::now();
                let r = hnsw.search(q, 10, ef);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                found.push(r.iter().map(|x| x.d_id as u64).collect::<Vec<_>>());
            }
            println!(
                "hnsw_rs HNSW f32 M=16 efC=128 ef={ef}: build {build:.1} s ({:.0}/s), +{mem:.0} MB; recall@10 {:.4}; p50 {:.3} ms, p99 {:.3} ms",
                n as f64 / build,
                recall(&found, &truth),
                pct(lat.clone(), 0.5),
                pct(lat, 0.99)
            );
        }
    }
    println!("exact search: {exact_ms:.1} ms per query per core");
}
