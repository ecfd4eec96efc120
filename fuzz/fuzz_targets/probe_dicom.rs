//! Fuzz target: arbitrary bytes as a DICOM file through `probe` (dicom-rs parse, pixel decode, our RLE decoder,
//! stored-value unpacking). Must return an error, never panic or exhaust memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // read_dicom turns a panic inside a codec into that file's error (catch_unwind); libFuzzer's hook would abort
    // on it anyway, so keep the default hook. A panic that escapes probe still aborts the run.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught: {info}"))));
    let dir = std::env::temp_dir().join(format!("medgrain-fuzz-dicom-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.dcm");
    // DICOM files begin with a 128-byte preamble and DICM; give the fuzzer a head start on that.
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend_from_slice(data);
    if std::fs::write(&path, &bytes).is_ok() {
        let _ = medgrain_imaging::probe::probe_path(&path);
    }
});
