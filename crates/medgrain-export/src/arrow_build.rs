//! Small helpers that build Arrow arrays (nullable primitives, structs, lists) from row-wise Rust values, and the
//! Hugging Face `datasets` feature description of an Arrow schema.

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn utf8<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

pub fn i32s(v: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from_iter(v))
}

pub fn i64s(v: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(v))
}

pub fn f32s(v: impl IntoIterator<Item = Option<f32>>) -> ArrayRef {
    Arc::new(Float32Array::from_iter(v))
}

pub fn f64s(v: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(v))
}

pub fn bools(v: impl IntoIterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(v))
}

/// A binary array, its value buffer allocated once at its final size (images are the largest column: growing it by
/// doubling briefly held twice the shard's image bytes).
pub fn binary<'a>(v: impl IntoIterator<Item = Option<&'a [u8]>>) -> ArrayRef {
    let v: Vec<Option<&[u8]>> = v.into_iter().collect();
    let total = v.iter().flatten().map(|b| b.len()).sum();
    let mut b = arrow_array::builder::BinaryBuilder::with_capacity(v.len(), total);
    for x in v {
        b.append_option(x);
    }
    Arc::new(b.finish())
}

/// A struct array from named children; `valid` marks non-null rows (`None` = all valid).
pub fn structure(children: Vec<(&str, ArrayRef)>, valid: Option<Vec<bool>>) -> ArrayRef {
    let fields: Fields = children
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = children.into_iter().map(|(_, a)| a).collect();
    let nulls = valid.map(NullBuffer::from);
    Arc::new(StructArray::new(fields, arrays, nulls))
}

/// A list array whose row `i` holds `lengths[i]` consecutive items of `values`.
pub fn list(lengths: impl IntoIterator<Item = usize>, values: ArrayRef) -> ArrayRef {
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    Arc::new(ListArray::new(field, OffsetBuffer::from_lengths(lengths), values, None))
}

/// The `datasets` feature description of an Arrow type (lists in the portable `[feature]` form).
pub fn hf_feature(dt: &DataType) -> Value {
    let value = |d: &str| json!({"dtype": d, "_type": "Value"});
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 => value("string"),
        DataType::Int32 => value("int32"),
        DataType::Int64 => value("int64"),
        DataType::Float32 => value("float32"),
        DataType::Float64 => value("float64"),
        DataType::Boolean => value("bool"),
        DataType::Binary | DataType::LargeBinary => value("binary"),
        DataType::List(f) | DataType::LargeList(f) => json!([hf_feature(f.data_type())]),
        DataType::Struct(fields) => {
            let mut m = serde_json::Map::new();
            for f in fields {
                m.insert(f.name().clone(), hf_feature(f.data_type()));
            }
            Value::Object(m)
        }
        other => value(&other.to_string().to_lowercase()),
    }
}
