//! Dataset writers and readers. [`TripletParquetWriter`] writes triplet rows as Parquet in the layout of
//! `shared/SPEC.md`, with the `image` column as the `{bytes, path}` struct and Hugging Face `datasets` feature
//! metadata so that `load_dataset("parquet", ...)` decodes images to PIL. Files are written to a temporary name
//! and renamed when complete, so a file that exists is whole. [`read`] streams selected columns back for `inspect`.

mod arrow_build;
pub mod export;
pub mod html;
pub mod read;
pub mod reports;
mod triplets;

pub use triplets::{rewrite_qc_flags, triplet_batch, TripletParquetWriter};

use std::path::PathBuf;

/// Errors of the export layer.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: parquet: {reason}")]
    Parquet { path: PathBuf, reason: String },
    #[error("arrow: {0}")]
    Arrow(String),
}

pub type Result<T> = std::result::Result<T, ExportError>;

/// A sink for finished rows of one kind. New writers (Parquet variants, WebDataset tars, JSONL) implement it.
pub trait RowWriter<R> {
    /// Appends rows; may buffer.
    fn write(&mut self, rows: &[R]) -> Result<()>;
    /// Flushes and makes the output durable and visible under its final name.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// A temporary name beside `path` that no other process or thread writing the same file uses
/// (`NAME.PID.N.tmp`): two workers finishing the same shard each write their own file and the last rename wins, whole.
pub fn temp_path(path: &std::path::Path) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}
