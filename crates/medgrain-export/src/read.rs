//! Reading triplet Parquet back, one file at a time and without the image bytes, for `inspect` and tests.

use crate::{ExportError, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch, StructArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::path::Path;

/// The fields of a triplet row that summaries need.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TripletSummary {
    pub id: String,
    pub source: String,
    pub source_path: String,
    pub modality: Option<String>,
    pub organ: Option<String>,
    pub diseases: Vec<String>,
    pub roi_labels: Vec<String>,
    pub roi_positions: Vec<String>,
    pub coarse_caption: String,
    pub description: String,
    pub qc_passed: bool,
    pub qc_flags: Vec<String>,
    /// `None` without a `[splits]` table (or in a dataset built before splits existed).
    pub split: Option<String>,
}

const COLUMNS: &[&str] = &[
    "id",
    "source",
    "source_path",
    "modality",
    "organ",
    "diseases",
    "rois",
    "coarse_caption",
    "description",
    "qc",
    "split",
];

fn perr(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn string_at(batch: &RecordBatch, name: &str, row: usize, path: &Path) -> Result<Option<String>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| perr(path, format!("missing column {name}")))?;
    let s = col
        .as_string_opt::<i32>()
        .ok_or_else(|| perr(path, format!("column {name} is not a string column")))?;
    Ok((!s.is_null(row)).then(|| s.value(row).to_string()))
}

fn string_list(values: &dyn Array) -> Vec<String> {
    match values.as_string_opt::<i32>() {
        Some(s) => (0..s.len())
            .filter(|&i| !s.is_null(i))
            .map(|i| s.value(i).to_string())
            .collect(),
        None => Vec::new(),
    }
}

fn struct_field<'a>(s: &'a StructArray, name: &str, path: &Path) -> Result<&'a dyn Array> {
    s.column_by_name(name)
        .map(|a| a.as_ref())
        .ok_or_else(|| perr(path, format!("missing struct field {name}")))
}

/// Reads the summary fields of every row of one triplet Parquet file.
pub fn triplet_summaries(path: &Path) -> Result<Vec<TripletSummary>> {
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(path, e))?;
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| COLUMNS.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).build().map_err(|e| perr(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| perr(path, e))?;
        let diseases = batch
            .column_by_name("diseases")
            .and_then(|c| c.as_list_opt::<i32>().cloned())
            .ok_or_else(|| perr(path, "missing list column diseases"))?;
        let rois = batch
            .column_by_name("rois")
            .and_then(|c| c.as_list_opt::<i32>().cloned())
            .ok_or_else(|| perr(path, "missing list column rois"))?;
        let qc = batch
            .column_by_name("qc")
            .and_then(|c| c.as_struct_opt().cloned())
            .ok_or_else(|| perr(path, "missing struct column qc"))?;
        let passed = struct_field(&qc, "passed", path)?
            .as_boolean_opt()
            .cloned()
            .ok_or_else(|| perr(path, "qc.passed is not boolean"))?;
        let flags = struct_field(&qc, "flags", path)?
            .as_list_opt::<i32>()
            .cloned()
            .ok_or_else(|| perr(path, "qc.flags is not a list"))?;
        for row in 0..batch.num_rows() {
            let roi_struct = rois.value(row);
            let (labels, positions) = match roi_struct.as_struct_opt() {
                Some(s) => (
                    s.column_by_name("label")
                        .map(|a| string_list(a.as_ref()))
                        .unwrap_or_default(),
                    s.column_by_name("position")
                        .map(|a| string_list(a.as_ref()))
                        .unwrap_or_default(),
                ),
                None => (Vec::new(), Vec::new()),
            };
            out.push(TripletSummary {
                id: string_at(&batch, "id", row, path)?.unwrap_or_default(),
                source: string_at(&batch, "source", row, path)?.unwrap_or_default(),
                source_path: string_at(&batch, "source_path", row, path)?.unwrap_or_default(),
                modality: string_at(&batch, "modality", row, path)?,
                organ: string_at(&batch, "organ", row, path)?,
                diseases: string_list(diseases.value(row).as_ref()),
                roi_labels: labels,
                roi_positions: positions,
                coarse_caption: string_at(&batch, "coarse_caption", row, path)?.unwrap_or_default(),
                description: string_at(&batch, "description", row, path)?.unwrap_or_default(),
                qc_passed: passed.value(row),
                qc_flags: string_list(flags.value(row).as_ref()),
                split: match batch.column_by_name("split") {
                    Some(_) => string_at(&batch, "split", row, path)?,
                    None => None,
                },
            });
        }
    }
    Ok(out)
}

/// Rows of a Parquet file, from its footer (no data read).
pub fn parquet_rows(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(path, e))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

/// A reader of one top-level column of a Parquet file; an error when the file has no such column.
fn column_reader(path: &Path, name: &str) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(path, e))?;
    let root = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == name)
        .ok_or_else(|| perr(path, format!("no column {name}")))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [root]);
    builder.with_projection(mask).build().map_err(|e| perr(path, e))
}

/// The values of one top-level string column of a Parquet file (null where null); an error when the file has no
/// such column.
pub fn string_column(path: &Path, name: &str) -> Result<Vec<Option<String>>> {
    let reader = column_reader(path, name)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| perr(path, e))?;
        let col = batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .ok_or_else(|| perr(path, format!("column {name} is not a string column")))?;
        out.extend((0..col.len()).map(|i| (!col.is_null(i)).then(|| col.value(i).to_string())));
    }
    Ok(out)
}

/// The `image.bytes` of every row of a triplet Parquet file (null where null).
pub fn image_bytes(path: &Path) -> Result<Vec<Option<Vec<u8>>>> {
    let reader = column_reader(path, "image")?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| perr(path, e))?;
        let image = batch
            .column_by_name("image")
            .and_then(|c| c.as_struct_opt().cloned())
            .ok_or_else(|| perr(path, "image is not a struct column"))?;
        let bytes = struct_field(&image, "bytes", path)?
            .as_binary_opt::<i32>()
            .cloned()
            .ok_or_else(|| perr(path, "image.bytes is not binary"))?;
        out.extend((0..bytes.len()).map(|i| (!bytes.is_null(i)).then(|| bytes.value(i).to_vec())));
    }
    Ok(out)
}
