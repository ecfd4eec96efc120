//! Multi-index hashing at the scale `dedup` is for: 10,000 reference hashes (a benchmark's test images), queried with
//! dataset hashes at the default distance (10). Per-query time × 25M dataset images = the cost of checking a
//! MedTrinity-size dataset against a test set. Hashes are uniform random (pHash bits are close to balanced).
use criterion::{criterion_group, criterion_main, Criterion};
use medgrain_pipeline::dedup::{MultiIndex, DEFAULT_MAX_DISTANCE, DEFAULT_WITHIN_DISTANCE};

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn bench(c: &mut Criterion) {
    let mut next = xorshift(0x9E3779B97F4A7C15);
    let refs: Vec<u64> = (0..10_000).map(|_| next()).collect();
    let refs_copy = refs.clone();
    let index = MultiIndex::new(refs, DEFAULT_MAX_DISTANCE);
    let queries: Vec<u64> = (0..1000).map(|_| next()).collect();
    c.bench_function(
        "multi-index query, 10k references, distance 10 (per 1000 queries)",
        |b| {
            b.iter(|| {
                queries
                    .iter()
                    .map(|&q| index.query(q, DEFAULT_MAX_DISTANCE).len())
                    .sum::<usize>()
            })
        },
    );
    c.bench_function("linear scan, 10k references, distance 10 (per 1000 queries)", |b| {
        b.iter(|| {
            queries
                .iter()
                .map(|&q| {
                    refs_copy
                        .iter()
                        .filter(|&&r| (r ^ q).count_ones() <= DEFAULT_MAX_DISTANCE)
                        .count()
                })
                .sum::<usize>()
        })
    });
    let mut next = xorshift(11);
    let dataset: Vec<u64> = (0..1_000_000).map(|_| next()).collect();
    let within = MultiIndex::new(dataset.clone(), DEFAULT_WITHIN_DISTANCE);
    c.bench_function(
        "multi-index query, 1M dataset hashes, distance 4 (per 1000 queries)",
        |b| {
            b.iter(|| {
                dataset[..1000]
                    .iter()
                    .map(|&q| within.query(q, DEFAULT_WITHIN_DISTANCE).len())
                    .sum::<usize>()
            })
        },
    );
    let mut next = xorshift(7);
    let big: Vec<u64> = (0..1_000_000).map(|_| next()).collect();
    c.bench_function("multi-index build, 1M hashes, distance 4", |b| {
        b.iter(|| MultiIndex::new(big.clone(), DEFAULT_WITHIN_DISTANCE).query(1, 4).len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
