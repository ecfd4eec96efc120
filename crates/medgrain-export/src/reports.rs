//! Grounded-report and VQA rows → Parquet (flat string/bool columns, SPEC column order).

use crate::arrow_build::{bools, f64s, list, utf8};
use crate::{ExportError, Result};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use medgrain_records::{GroundedRow, VqaRow};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| ExportError::Arrow(e.to_string()))?;
    let perr = |e: parquet::errors::ParquetError| ExportError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = crate::temp_path(path);
    let file = std::fs::File::create(&tmp).map_err(|source| ExportError::Io {
        path: tmp.clone(),
        source,
    })?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(perr)?;
    w.write(&batch).map_err(perr)?;
    let f = w.into_inner().map_err(perr)?;
    f.sync_all().map_err(|source| ExportError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes grounded-report rows to one Parquet file (atomically).
pub fn write_grounded(path: &Path, rows: &[GroundedRow]) -> Result<()> {
    let s = |f: fn(&GroundedRow) -> Option<&str>| utf8(rows.iter().map(f));
    write(
        path,
        vec![
            ("volume_id", s(|r| Some(&r.volume_id))),
            ("anatomy", s(|r| Some(&r.anatomy))),
            ("region", s(|r| Some(&r.region))),
            ("sentence", s(|r| Some(&r.sentence))),
            ("abnormal", bools(rows.iter().map(|r| Some(r.abnormal)))),
            ("negated", bools(rows.iter().map(|r| Some(r.negated)))),
            ("mask_ref", s(|r| r.mask_ref.as_deref())),
            ("split", s(|r| r.split.as_deref())),
        ],
    )
}

/// Writes VQA rows to one Parquet file (atomically).
pub fn write_vqa(path: &Path, rows: &[VqaRow]) -> Result<()> {
    let s = |f: fn(&VqaRow) -> Option<&str>| utf8(rows.iter().map(f));
    write(
        path,
        vec![
            ("id", s(|r| Some(&r.id))),
            ("volume_id", s(|r| Some(&r.volume_id))),
            ("anatomy", s(|r| r.anatomy.as_deref())),
            ("question_type", s(|r| Some(&r.question_type))),
            ("question", s(|r| Some(&r.question))),
            ("answer", s(|r| Some(&r.answer))),
            ("template_id", s(|r| Some(&r.template_id))),
            ("mask_ref", s(|r| r.mask_ref.as_deref())),
            ("measured_mm", f64s(rows.iter().map(|r| r.measured_mm))),
            (
                "qc_flags",
                list(
                    rows.iter().map(|r| r.qc_flags.len()),
                    utf8(rows.iter().flat_map(|r| r.qc_flags.iter().map(|f| Some(f.as_str())))),
                ),
            ),
            ("split", s(|r| r.split.as_deref())),
        ],
    )
}
