//! Our all-MiniLM-L6-v2 embeddings, on both runtimes (candle; ONNX Runtime running the graph `onnx_bert` writes),
//! against sentence-transformers' on 60 medical sentences (`tests/data/minilm_reference.json`, made by
//! `scripts/make_embedding_reference.py`). Needs the model folder in `MEDGRAIN_EMBED_MODEL` and, for ONNX Runtime,
//! its library in `ORT_DYLIB_PATH` (the test command installs both from PyPI and sets them); without them the tests
//! fail under `CI=true` and say they did not run otherwise.

use medgrain_knowledge::dense::{model_dir, Embedder, Runtime};

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

#[test]
fn candle_embeddings_match_sentence_transformers() {
    parity(Runtime::Candle);
}

#[test]
fn onnxruntime_embeddings_match_sentence_transformers() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        assert!(!in_ci(), "ORT_DYLIB_PATH is not set (CI must run this test)");
        eprintln!("NOT RUN: set ORT_DYLIB_PATH to libonnxruntime.so");
        return;
    }
    parity(Runtime::OnnxRuntime);
}

fn parity(runtime: Runtime) {
    let Some(dir) = model_dir(None) else {
        assert!(
            !in_ci(),
            "MEDGRAIN_EMBED_MODEL is not set to the all-MiniLM-L6-v2 folder (CI must run this test)"
        );
        eprintln!("NOT RUN: set MEDGRAIN_EMBED_MODEL to the all-MiniLM-L6-v2 folder");
        return;
    };
    let e = Embedder::load_on(&dir, runtime).unwrap();
    assert_eq!(
        e.runtime(),
        if runtime == Runtime::Candle {
            "candle"
        } else {
            "onnxruntime"
        }
    );
    let reference: serde_json::Value = serde_json::from_str(include_str!("data/minilm_reference.json")).unwrap();
    let rows = reference["sentences"].as_array().unwrap();
    assert!(rows.len() >= 50);
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let mut worst = 1.0f64;
    for (batch_texts, batch_rows) in texts.chunks(16).zip(rows.chunks(16)) {
        let ours = e.embed(batch_texts).unwrap();
        for (v, r) in ours.iter().zip(batch_rows) {
            let want: Vec<f64> = r["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(v.len(), want.len());
            let dot: f64 = v.iter().zip(&want).map(|(a, b)| *a as f64 * b).sum();
            let na: f64 = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            worst = worst.min(cos);
            assert!(cos >= 0.9999, "cosine {cos} for {:?}", r["text"]);
        }
    }
    eprintln!("{}: {} sentences, worst cosine {worst:.8}", e.runtime(), rows.len());
}
