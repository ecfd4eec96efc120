//! Fuzz target: arbitrary bytes as a NIfTI-1/2 file (`.nii`) through `probe` (header parse, size checks before
//! allocation, voxel decode, scaling, affine). Must return an error, never panic or exhaust memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // read_dicom turns a panic inside a codec into that file's error (catch_unwind); libFuzzer's hook would abort
    // on it anyway, so keep the default hook. A panic that escapes probe still aborts the run.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught: {info}"))));
    let dir = std::env::temp_dir().join(format!("medgrain-fuzz-nifti-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.nii");
    if std::fs::write(&path, data).is_ok() {
        let _ = medgrain_imaging::probe::probe_path(&path);
    }
});
