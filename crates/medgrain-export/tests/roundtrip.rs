//! Triplet rows written to Parquet read back with the same values, and the file appears only when finished.
use medgrain_export::read::triplet_summaries;
use medgrain_export::{RowWriter, TripletParquetWriter};
use medgrain_records::*;

fn row(i: usize, with_roi: bool) -> TripletRecord {
    let rois = if with_roi {
        vec![RoiRecord {
            label: "nodule".into(),
            label_id: Some(1),
            bbox_xyxy: [1, 2, 3, 4],
            mask_rle: MaskRle {
                size: [8, 8],
                counts: "abc".into(),
            },
            area_px: 4,
            area_fraction: 4.0 / 64.0,
            centroid_xy: [1.5, 2.5],
            position: "left, upper".into(),
            side: Some("left".into()),
            side_frame: "image".into(),
            origin: "annotation".into(),
            score: None,
            measurements: None,
            appearance: None,
            organ_context: None,
            patient_position: None,
        }]
    } else {
        vec![]
    };
    TripletRecord {
        id: format!("id{i}"),
        source: "s".into(),
        source_path: format!("images/{i}.png"),
        slice: if i.is_multiple_of(2) {
            None
        } else {
            Some(SliceRef {
                axis: "axial".into(),
                index: i as i32,
            })
        },
        license: None,
        image: ImageCell {
            bytes: vec![1, 2, 3],
            path: format!("images/{i}.png"),
        },
        width: 8,
        height: 8,
        modality: Some("CT".into()),
        organ: if i == 0 { None } else { Some("lung".into()) },
        diseases: vec!["a".into(), format!("d{i}")],
        coarse_caption: "cap".into(),
        rois,
        knowledge: vec![],
        description: format!("desc {i}"),
        sections: Sections::default(),
        generator: GeneratorInfo {
            kind: "template".into(),
            model: None,
            prompt_version: "v".into(),
            prompt_tokens: None,
            completion_tokens: None,
            finish_reason: None,
        },
        qc: Qc {
            passed: i != 2,
            flags: if i == 2 { vec!["x".into()] } else { vec![] },
        },
        split: (i == 1).then(|| "test".to_string()),
    }
}

#[test]
fn rows_round_trip_through_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part-00000.parquet");
    let mut w = Box::new(TripletParquetWriter::create(&path).unwrap());
    let rows: Vec<_> = (0..3).map(|i| row(i, i == 1)).collect();
    w.write(&rows[..2]).unwrap();
    w.write(&rows[2..]).unwrap();
    assert!(!path.exists(), "file must not be visible before finish");
    w.finish().unwrap();
    let back = triplet_summaries(&path).unwrap();
    assert_eq!(back.len(), 3);
    for (b, r) in back.iter().zip(&rows) {
        assert_eq!(b.id, r.id);
        assert_eq!(b.organ, r.organ);
        assert_eq!(b.diseases, r.diseases);
        assert_eq!(b.roi_labels.len(), r.rois.len());
        assert_eq!(b.qc_passed, r.qc.passed);
        assert_eq!(b.qc_flags, r.qc.flags);
        assert_eq!(b.description, r.description);
    }
    assert_eq!(back[1].roi_positions, vec!["left, upper".to_string()]);
}

#[test]
fn no_rows_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.parquet");
    let w = Box::new(TripletParquetWriter::create(&path).unwrap());
    w.finish().unwrap();
    assert!(!path.exists());
}
