//! Exact dense search (`dense::top_k`) over 100k × 384 unit vectors, and the BM25 analyser on a passage.
//! `cargo bench -p medgrain-knowledge --bench retrieval`

use criterion::{criterion_group, criterion_main, Criterion};
use medgrain_knowledge::{bm25, dense};

fn vectors(n: usize, dim: usize) -> Vec<f32> {
    // SplitMix64-style deterministic values, normalised per row.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5) as f32
    };
    let mut m: Vec<f32> = (0..n * dim).map(|_| next()).collect();
    for row in m.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    m
}

fn bench(c: &mut Criterion) {
    let dim = 384;
    let m = vectors(100_000, dim);
    let q: Vec<f32> = m[..dim].to_vec();
    c.bench_function("dense top-10 of 100k x 384", |b| {
        b.iter(|| dense::top_k(&m, dim, &q, 10))
    });
    let passage = "A spiculated mass measuring 3.2 cm is seen in the apicoposterior segment of the left upper lobe; \
                   T2-weighted MRI and COVID-19 serology were negative.";
    c.bench_function("bm25 analyser, one passage", |b| b.iter(|| bm25::tokenize(passage)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
