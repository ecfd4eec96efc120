//! Time to read every NIfTI mask in a folder and count its non-zero voxels, two ways: inflating every byte
//! (`read_nifti_raw`, libdeflate) and skipping zero runs (`read_nifti_mask`, the sparse inflater):
//! `cargo run --release -p medgrain-imaging --example mask_read -- MASK_DIR`.
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: mask_read MASK_DIR")?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".nii.gz"))
        .collect();
    files.sort();
    let mut scratch = Vec::new();
    for round in 0..2 {
        let t = Instant::now();
        let mut dense = 0usize;
        for p in &files {
            let (_, raw) = medgrain_imaging::nifti_read::read_nifti_raw(p, &mut scratch)?;
            raw.for_each_positive(|_| dense += 1);
        }
        let td = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut sparse = 0usize;
        for p in &files {
            let (_, m) = medgrain_imaging::nifti_read::read_nifti_mask(p, &mut scratch)?;
            m.for_each_positive(|_| sparse += 1);
        }
        let ts = t.elapsed().as_secs_f64();
        assert_eq!(dense, sparse);
        println!(
            "round {round}: {} masks, {dense} voxels: every byte {:.1} ms/mask, zero runs skipped {:.1} ms/mask",
            files.len(),
            td * 1e3 / files.len() as f64,
            ts * 1e3 / files.len() as f64
        );
    }
    Ok(())
}
