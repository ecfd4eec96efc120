//! ROIs and appearance words recovered by the triplet stages from the synthetic corpus, checked against the
//! generator's own ground truth (`2d/ground_truth.jsonl`): analytic ellipse boxes and the contrast, texture and
//! margin each lesion was drawn with.

use medgrain_generate::template::TemplateWriter;
use medgrain_pipeline::config;
use medgrain_pipeline::recipes::triplet_stages::build_record;
use medgrain_pipeline::sources::{open_source, SampleRef};
use medgrain_synth::{write_corpus, SynthOptions};
use std::path::Path;

fn iou(a: [i64; 4], b: [i64; 4]) -> f64 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0) as f64;
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0) as f64;
    let inter = ix * iy;
    let area = |r: [i64; 4]| ((r[2] - r[0]) * (r[3] - r[1])) as f64;
    inter / (area(a) + area(b) - inter)
}

const CONFIG: &str = r#"
[[source]]
name = "synth"
kind = "image-folder"
root = "2d"
images = "images/*.png"
masks = "masks/{stem}.png"
metadata = "metadata.csv"
"#;

#[test]
fn rois_and_appearance_match_synthetic_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(
        dir.path(),
        &SynthOptions {
            seed: 11,
            images_per_kind: 16,
            volumes: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let loaded = config::parse(CONFIG, &dir.path().join("c.toml")).unwrap();
    let source = open_source(&loaded.config.sources[0], &loaded).unwrap();
    let gt = std::fs::read_to_string(dir.path().join("2d/ground_truth.jsonl")).unwrap();
    let (mut lesions, mut checked_iou) = (0, 0);
    let mut appearance = [(0, 0); 3]; // (correct, total) for contrast, texture, margin
    for line in gt.lines() {
        let g: serde_json::Value = serde_json::from_str(line).unwrap();
        let rel = g["image"].as_str().unwrap();
        let rec = build_record(
            source.as_ref(),
            &SampleRef {
                slice: None,
                rel_path: rel.into(),
                listing_error: None,
            },
            &TemplateWriter,
        )
        .unwrap_or_else(|e| panic!("{rel}: {e:?}"));
        let truth = g["lesions"].as_array().unwrap();
        assert_eq!(rec.rois.len(), truth.len(), "{rel}: one ROI per drawn lesion");
        assert_eq!(rec.modality.as_deref(), g["modality"].as_str());
        assert!(rec.qc.passed, "{rel}: {:?}", rec.qc.flags);
        for t in truth {
            lesions += 1;
            let label = t["label"].as_i64().unwrap() as i32;
            let roi = rec
                .rois
                .iter()
                .find(|r| r.label_id == Some(label))
                .unwrap_or_else(|| panic!("{rel}: label {label}"));
            let tb: Vec<i64> = t["bbox_xyxy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            let rb = roi.bbox_xyxy.map(i64::from);
            if roi.area_px > 20 {
                checked_iou += 1;
                let v = iou([tb[0], tb[1], tb[2], tb[3]], rb);
                assert!(v >= 0.9, "{rel} label {label}: IoU {v:.3} truth {tb:?} found {rb:?}");
                // The analytic ellipse box differs from the drawn pixels by at most one pixel per side.
                let eb: Vec<i64> = t["ellipse_bbox_xyxy"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect();
                for k in 0..4 {
                    assert!(
                        (eb[k] - rb[k]).abs() <= 1,
                        "{rel} label {label}: ellipse box {eb:?} vs found {rb:?}"
                    );
                }
            }
            // Appearance words are judged on lesions large enough to have a core and a ring (>= 150 px).
            if roi.area_px >= 150 {
                let a = roi.appearance.as_ref().unwrap();
                for (k, (found, want)) in [
                    (&a.contrast, &t["contrast"]),
                    (&a.texture, &t["texture"]),
                    (&a.margin, &t["margin"]),
                ]
                .into_iter()
                .enumerate()
                {
                    appearance[k].1 += 1;
                    if Some(found.as_str()) == want.as_str() {
                        appearance[k].0 += 1;
                    }
                }
            }
        }
    }
    assert!(lesions > 100, "corpus too small: {lesions} lesions");
    assert!(checked_iou > 80);
    let acc = |(c, t): (i32, i32)| c as f64 / t as f64;
    eprintln!(
        "lesions {lesions}; contrast {:.3} texture {:.3} margin {:.3} (n = {})",
        acc(appearance[0]),
        acc(appearance[1]),
        acc(appearance[2]),
        appearance[0].1
    );
    assert!(acc(appearance[0]) >= 0.97, "contrast accuracy {:?}", appearance[0]);
    assert!(acc(appearance[1]) >= 0.85, "texture accuracy {:?}", appearance[1]);
    assert!(acc(appearance[2]) >= 0.80, "margin accuracy {:?}", appearance[2]);
}

#[test]
fn same_seed_same_ids_and_text() {
    let run = |d: &Path| {
        write_corpus(
            d,
            &SynthOptions {
                seed: 5,
                images_per_kind: 2,
                volumes: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let loaded = config::parse(CONFIG, &d.join("c.toml")).unwrap();
        let source = open_source(&loaded.config.sources[0], &loaded).unwrap();
        source
            .list()
            .unwrap()
            .iter()
            .map(|s| {
                let r = build_record(source.as_ref(), s, &TemplateWriter).unwrap();
                (r.id, r.description)
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ra, rb) = (run(a.path()), run(b.path()));
    assert_eq!(ra.len(), 14);
    assert_eq!(ra, rb);
}
