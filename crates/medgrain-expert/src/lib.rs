//! Expert segmenters for medgrain: ROI locators backed by a user's model rather than rules. `expert:onnx` runs a 2D
//! ONNX segmentation model slice by slice through ONNX Runtime, loaded from a shared library at run time
//! ([`OnnxLocator`]); the model-independent parts (normalisation, overlap tiling, decoding) are in [`tiling`].

pub mod onnx;
pub mod tiling;

pub use onnx::{ExpertError, OnnxConfig, OnnxLocator};
