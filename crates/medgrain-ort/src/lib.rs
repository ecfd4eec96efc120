//! ONNX Runtime, loaded from a shared library at run time (ort's `load-dynamic`): where the library is (an explicit
//! path, else `ORT_DYLIB_PATH`; the PyPI `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.<version>`)
//! and one environment per process, shared by every crate that runs a model (expert segmenters, the embedding
//! model). ONNX Runtime can be loaded once per process: a later request must name the same library.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use ort;

/// The variable naming the library when no explicit path is given (ort's own convention).
pub const LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// Why ONNX Runtime could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    #[error("no ONNX Runtime library: {0}")]
    NotConfigured(String),
    #[error("ONNX Runtime library {path}: {message}")]
    Library { path: PathBuf, message: String },
}

/// The library path: `explicit`, else `ORT_DYLIB_PATH`; an error when neither names one, or the file is missing.
/// `how` starts the message's advice, before `ORT_DYLIB_PATH` (e.g. "set `library` in the onnx config or ").
pub fn library_path(explicit: Option<&Path>, how: &str) -> Result<PathBuf, OrtError> {
    let path = match (explicit, std::env::var_os(LIBRARY_ENV)) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
        _ => {
            return Err(OrtError::NotConfigured(format!(
                "{how}{LIBRARY_ENV} (`pip install onnxruntime` ships onnxruntime/capi/libonnxruntime.so.<version>)"
            )))
        }
    };
    if !path.is_file() {
        return Err(OrtError::Library {
            path,
            message: "no such file".into(),
        });
    }
    Ok(path)
}

/// `ORT_DYLIB_PATH` when it names an existing file.
pub fn library_from_env() -> Option<PathBuf> {
    std::env::var_os(LIBRARY_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

/// ONNX Runtime is loaded once per process; later requests must name the same library. A failed load is not
/// remembered (a later request may name a good library).
static ENVIRONMENT: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);

/// Loads the library at `lib` (once per process) and returns the process's environment.
pub fn environment(lib: &Path) -> Result<ort::environment::Environment, OrtError> {
    let lib_err = |message: String| OrtError::Library {
        path: lib.to_path_buf(),
        message,
    };
    let mut loaded = ENVIRONMENT
        .lock()
        .map_err(|_| lib_err("a previous load panicked".into()))?;
    match &*loaded {
        Some((first, env)) if same_file(first, lib) => Ok(env.clone()),
        Some((first, _)) => Err(lib_err(format!(
            "ONNX Runtime is already loaded from {} in this process",
            first.display()
        ))),
        None => {
            let builder = ort::init_from(lib).map_err(|e| lib_err(e.to_string()))?;
            let env = builder
                .with_name("medgrain")
                .build()
                .map_err(|e| lib_err(e.to_string()))?;
            *loaded = Some((lib.to_path_buf(), env.clone()));
            Ok(env)
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let e = library_path(Some(Path::new("/nonexistent/libonnxruntime.so")), "x").unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }
}
