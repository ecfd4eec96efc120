//! Connected components and ROI extraction on a 512×512 label map with several blobs.
use criterion::{criterion_group, criterion_main, Criterion};
use medgrain_roi::{label_components, rois_2d, RoiOptions};

fn label_map(h: usize, w: usize) -> Vec<u32> {
    let mut v = vec![0u32; h * w];
    for (k, (cy, cx, r)) in [(100.0, 120.0, 30.0), (300.0, 380.0, 55.0), (420.0, 90.0, 12.0)]
        .iter()
        .enumerate()
    {
        for (i, px) in v.iter_mut().enumerate() {
            let (y, x) = ((i / w) as f64, (i % w) as f64);
            if (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r {
                *px = k as u32 + 1;
            }
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let (h, w) = (512, 512);
    let labels = label_map(h, w);
    let luma: Vec<f32> = labels.iter().map(|&l| if l > 0 { 0.7 } else { 0.3 }).collect();
    c.bench_function("label_components 512x512 full", |b| {
        b.iter(|| label_components(&labels, &[h, w], 2).map(|l| l.components.len()))
    });
    c.bench_function("rois_2d 512x512 with appearance", |b| {
        b.iter(|| rois_2d(&labels, h, w, Some(&luma), &|l| l.to_string(), &RoiOptions::default()).map(|r| r.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
