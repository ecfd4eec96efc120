//! The ONNX locator's config and set-up errors, without a model: what a user with a wrong config sees.

use medgrain_expert::{ExpertError, OnnxConfig, OnnxLocator};

fn parse(text: &str) -> OnnxConfig {
    toml::from_str(text).expect("config parses")
}

#[test]
fn config_reads_and_resolves_relative_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.toml");
    std::fs::write(
        &path,
        "model = \"models/seg.onnx\"\nlibrary = \"lib/libonnxruntime.so\"\nclasses = [\"background\", \"lesion\"]\nnormalize = \"window\"\nwindow = [40.0, 400.0]\ntile = [256, 256]\n",
    )
    .expect("write");
    let cfg = OnnxConfig::from_file(&path).expect("read");
    assert_eq!(cfg.model, dir.path().join("models/seg.onnx"));
    assert_eq!(cfg.library, Some(dir.path().join("lib/libonnxruntime.so")));
    assert_eq!(cfg.tile, Some([256, 256]));
    assert!(cfg.validate().is_ok());
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    assert!(toml::from_str::<OnnxConfig>("model = \"m.onnx\"\nclasses = [\"x\"]\ntiles = [1, 1]\n").is_err());
    assert!(toml::from_str::<OnnxConfig>("model = \"m.onnx\"\nclasses = [\"x\"]\nnormalize = \"zscor\"\n").is_err());
    let cases = [
        ("model = \"m.onnx\"\nclasses = []\n", "classes"),
        (
            "model = \"m.onnx\"\nclasses = [\"x\"]\nnormalize = \"window\"\n",
            "window",
        ),
        ("model = \"m.onnx\"\nclasses = [\"x\"]\nscale = [0.5, 0.0]\n", "scale"),
        ("model = \"m.onnx\"\nclasses = [\"x\"]\ntile = [0, 64]\n", "tile"),
        ("model = \"m.onnx\"\nclasses = [\"x\"]\nbatch = 0\n", "batch"),
        ("model = \"m.onnx\"\nclasses = [\"x\"]\nname = \"two words\"\n", "name"),
    ];
    for (text, word) in cases {
        let err = parse(text).validate().expect_err(text).to_string();
        assert!(err.contains(word), "{text}: {err}");
    }
}

#[test]
fn a_missing_or_broken_library_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, b"not a model").expect("write");
    let missing = dir.path().join("libonnxruntime.so.1.23.2");
    let mut cfg = parse("model = \"m.onnx\"\nclasses = [\"x\"]\n").resolved(dir.path());
    cfg.library = Some(missing.clone());
    match OnnxLocator::new(cfg.clone()) {
        Err(ExpertError::Library { path, message }) => {
            assert_eq!(path, missing);
            assert!(message.contains("no such file"), "{message}");
        }
        other => panic!("expected a library error, got {other:?}"),
    }
    // a file that is not a shared library: the loader's refusal, not a crash
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, b"\x7fELF but not really").expect("write");
    cfg.library = Some(fake.clone());
    match OnnxLocator::new(cfg) {
        Err(ExpertError::Library { path, .. }) => assert_eq!(path, fake),
        other => panic!("expected a library error, got {other:?}"),
    }
}
