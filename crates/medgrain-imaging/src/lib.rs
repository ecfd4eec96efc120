//! Imaging I/O: decoding raster images (PNG, JPEG, TIFF) into typed pixel buffers, reading 2D label maps,
//! encoding PNG, DICOM files and series ([`dicom`], [`dicom_series`]), reading NIfTI-1/2 ([`nifti_read`]) and
//! writing NIfTI-1 volumes, reorientation to RAS ([`reorient`]), display rendering ([`render`]) and [`probe`]
//! summaries. Pixels are never altered on read; conversions for display
//! (luminance, 8-bit) are explicit functions.

pub mod dicom;
pub mod dicom_seg;
pub mod dicom_series;
pub mod jpeg;
mod nifti;
pub mod nifti_read;
pub mod phash;
pub mod probe;
mod raster;
pub mod render;
pub mod reorient;
pub mod sparse_inflate;

pub use nifti::{write_nifti1_gz, NiftiDatatype, NiftiVolume};
pub use raster::{decode_raster, encode_png, read_label_map, LabelMap, PixelData, Raster};

use std::path::PathBuf;

/// Errors of the imaging layer. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("{path}: cannot read file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: unsupported pixel layout: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: cannot encode: {reason}")]
    Encode { path: PathBuf, reason: String },
    #[error("{path}: invalid volume: {reason}")]
    InvalidVolume { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, ImagingError>;
