//! The sparse inflater on files nobody here wrote: TotalSegmentator's own segmentation of a real CT and the CT
//! itself (../shared/data/totalseg, beside the repository). Every non-zero voxel and value must equal what the
//! general reader (libdeflate) gives; the whole decompressed stream must equal flate2's. Missing data fails under
//! `CI=true` and says it did not run otherwise.

use medgrain_imaging::nifti_read::{read_nifti_mask, read_nifti_raw, MaskVoxels};
use medgrain_imaging::sparse_inflate::gunzip_sparse;
use std::io::Read;
use std::path::PathBuf;

fn shared(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/totalseg")
        .join(name);
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing (CI must run this test)",
        p.display()
    );
    eprintln!("NOT RUN: {} is missing", p.display());
    None
}

#[test]
fn totalsegmentator_labels_read_sparse_equal_the_full_inflate() {
    let Some(seg) = shared("example_seg.nii.gz") else {
        return;
    };
    let mut scratch = Vec::new();
    let (h1, raw) = read_nifti_raw(&seg, &mut scratch).unwrap();
    assert_eq!(h1.datatype, 2, "TotalSegmentator writes uint8 labels");
    let want: Vec<(usize, u8)> = raw
        .bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b != 0)
        .map(|(i, &b)| (i, b))
        .collect();
    assert!(want.len() > 10_000, "a real segmentation has many labelled voxels");
    let mut positive_raw = Vec::new();
    raw.for_each_positive(|i| positive_raw.push(i));
    let n = raw.bytes.len();
    let mut scratch2 = Vec::new();
    let (h2, mask) = read_nifti_mask(&seg, &mut scratch2).unwrap();
    assert!(
        matches!(mask, MaskVoxels::Sparse { .. }),
        "a gzip'd uint8 file takes the sparse path"
    );
    assert_eq!(h1, h2);
    assert_eq!(mask.len(), n);
    let mut got = Vec::new();
    assert!(mask.for_each_nonzero_u8(|i, v| got.push((i, v))));
    assert_eq!(got, want);
    let mut positive = Vec::new();
    mask.for_each_positive(|i| positive.push(i));
    assert_eq!(positive, positive_raw);
}

#[test]
fn real_gzip_streams_decode_as_flate2_decodes_them() {
    for name in ["example_seg.nii.gz", "example_ct_sm.nii.gz"] {
        let Some(p) = shared(name) else {
            return;
        };
        let file = std::fs::read(&p).unwrap();
        let mut want = Vec::new();
        flate2::read::MultiGzDecoder::new(&file[..])
            .read_to_end(&mut want)
            .unwrap();
        let s = gunzip_sparse(&file, u64::MAX).unwrap();
        assert_eq!(s.len as usize, want.len(), "{name}");
        assert_eq!(s.read_range(0, want.len()), want, "{name}");
    }
}
