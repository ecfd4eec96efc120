//! Writes the ONNX graph medgrain builds for a BERT model folder (what ONNX Runtime runs for embeddings) to a file,
//! for inspection with `onnx.checker` or a profiler:
//! `cargo run --release -p medgrain-knowledge --example bert_onnx -- MODEL_DIR OUT.onnx`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, out] = args.as_slice() else {
        return Err("usage: bert_onnx MODEL_DIR OUT.onnx".into());
    };
    let bytes = medgrain_knowledge::onnx_bert::build_model(std::path::Path::new(dir))?;
    std::fs::write(out, &bytes)?;
    println!("{out}: {} bytes", bytes.len());
    Ok(())
}
