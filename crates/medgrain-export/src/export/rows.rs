//! Reading a built dataset back for export: triplet rows (every field but the image as JSON, the image bytes as
//! they are), medgrain's VQA rows, and where the grounded-reports inputs live.

use crate::{ExportError, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

fn perr(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One triplet row: the image bytes and the rest of the row as JSON (SPEC's field names).
#[derive(Debug, Clone)]
pub struct TripletRow {
    pub image: Vec<u8>,
    pub fields: Map<String, Value>,
}

impl TripletRow {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
    pub fn id(&self) -> &str {
        self.str("id").unwrap_or("")
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.fields.get(name).and_then(Value::as_i64)
    }
    pub fn rois(&self) -> &[Value] {
        self.fields
            .get("rois")
            .and_then(Value::as_array)
            .map_or(&[], |v| v.as_slice())
    }
}

/// The Parquet parts of `dir/sub`, sorted.
pub fn parts(dir: &Path, sub: &str) -> Result<Vec<PathBuf>> {
    let d = dir.join(sub);
    if !d.is_dir() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .map_err(|source| ExportError::Io {
            path: d.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    v.sort();
    Ok(v)
}

/// Calls `f` with every row of a Parquet file as JSON, except binary fields named `image.bytes`, which come as bytes.
pub fn for_each_row(path: &Path, f: &mut dyn FnMut(TripletRow) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| perr(path, e))?;
    for row in reader.get_row_iter(None).map_err(|e| perr(path, e))? {
        let row = row.map_err(|e| perr(path, e))?;
        f(triplet_row(&row))?;
    }
    Ok(())
}

fn triplet_row(row: &parquet::record::Row) -> TripletRow {
    let mut fields = Map::new();
    let mut image = Vec::new();
    for (name, field) in row.get_column_iter() {
        if name == "image" {
            if let Field::Group(g) = field {
                for (n, f) in g.get_column_iter() {
                    match (n.as_str(), f) {
                        ("bytes", Field::Bytes(b)) => image = b.data().to_vec(),
                        ("path", Field::Str(s)) => {
                            fields.insert("image_path".into(), Value::String(s.clone()));
                        }
                        _ => {}
                    }
                }
            }
            continue;
        }
        fields.insert(name.clone(), to_json(field));
    }
    TripletRow { image, fields }
}

/// The first `n` rows of a Parquet file (as [`for_each_row`] gives them), reading no further.
pub fn first_rows(path: &Path, n: usize) -> Result<Vec<TripletRow>> {
    let mut out = Vec::new();
    if n == 0 {
        return Ok(out);
    }
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| perr(path, e))?;
    for row in reader.get_row_iter(None).map_err(|e| perr(path, e))? {
        let row = row.map_err(|e| perr(path, e))?;
        out.push(triplet_row(&row));
        if out.len() >= n {
            break;
        }
    }
    Ok(out)
}

/// A Parquet record field as JSON (numbers as numbers, groups as objects, lists as arrays).
fn to_json(f: &Field) -> Value {
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => (*v).into(),
        Field::Short(v) => (*v).into(),
        Field::Int(v) => (*v).into(),
        Field::Long(v) => (*v).into(),
        Field::UByte(v) => (*v).into(),
        Field::UShort(v) => (*v).into(),
        Field::UInt(v) => (*v).into(),
        Field::ULong(v) => (*v).into(),
        Field::Float(v) => serde_json::Number::from_f64(*v as f64).map_or(Value::Null, Value::Number),
        Field::Double(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Field::Str(s) => Value::String(s.clone()),
        Field::Group(r) => Value::Object(r.get_column_iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Field::ListInternal(l) => Value::Array(l.elements().iter().map(to_json).collect()),
        other => Value::String(other.to_string()),
    }
}

/// The image file extension for the bytes' format (`png`, `jpg`, `tif`, `bmp`), or `None`.
pub fn image_ext(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some("tif")
    } else if bytes.starts_with(b"BM") {
        Some("bmp")
    } else {
        None
    }
}

/// Where the grounded-reports recipe read its volumes and masks (from `grounded_reports/manifest.json`).
#[derive(Debug, Clone)]
pub struct ReportsInputs {
    pub root: PathBuf,
    pub volumes: PathBuf,
}

pub fn reports_inputs(dir: &Path) -> Option<ReportsInputs> {
    let candidates = [dir.join("grounded_reports/manifest.json"), dir.join("manifest.json")];
    candidates.iter().find_map(|p| {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
        let inputs = v.get("inputs")?;
        let root = PathBuf::from(inputs.get("root")?.as_str()?);
        let volumes = root.join(inputs.get("volumes").and_then(Value::as_str).unwrap_or("volumes"));
        Some(ReportsInputs { root, volumes })
    })
}
