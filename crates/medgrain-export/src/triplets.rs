//! Triplet rows → Arrow record batches → Parquet (snappy), one file per shard.

use crate::arrow_build::{binary, bools, f32s, f64s, hf_feature, i32s, i64s, list, structure, utf8};
use crate::{ExportError, Result, RowWriter};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use medgrain_records::{RoiRecord, TripletRecord};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn rois_array(rois: &[&RoiRecord]) -> ArrayRef {
    let s = |f: fn(&RoiRecord) -> Option<&str>| utf8(rois.iter().map(|r| f(r)));
    let bbox_values = i32s(rois.iter().flat_map(|r| r.bbox_xyxy.map(Some)));
    let size_values = i32s(rois.iter().flat_map(|r| r.mask_rle.size.map(Some)));
    let centroid_values = f32s(rois.iter().flat_map(|r| r.centroid_xy.map(Some)));
    let m = |f: fn(&medgrain_records::Measurements) -> Option<f64>| {
        f64s(rois.iter().map(|r| r.measurements.as_ref().and_then(f)))
    };
    let measurements = structure(
        vec![
            ("long_axis_mm", m(|m| m.long_axis_mm)),
            ("short_axis_mm", m(|m| m.short_axis_mm)),
            ("volume_mm3", m(|m| m.volume_mm3)),
            ("mean_hu", m(|m| m.mean_hu)),
            ("std_hu", m(|m| m.std_hu)),
            (
                "attenuation",
                utf8(
                    rois.iter()
                        .map(|r| r.measurements.as_ref().and_then(|m| m.attenuation.as_deref())),
                ),
            ),
            ("circularity", m(|m| m.circularity)),
            ("solidity", m(|m| m.solidity)),
            ("eccentricity", m(|m| m.eccentricity)),
            ("elongation", m(|m| m.elongation)),
            ("entropy_bits", m(|m| m.entropy_bits)),
            ("uniformity", m(|m| m.uniformity)),
        ],
        Some(rois.iter().map(|r| r.measurements.is_some()).collect()),
    );
    let a = |f: fn(&medgrain_records::Appearance) -> f64| f64s(rois.iter().map(|r| r.appearance.as_ref().map(f)));
    let a_s = |f: fn(&medgrain_records::Appearance) -> &str| utf8(rois.iter().map(|r| r.appearance.as_ref().map(f)));
    let appearance = structure(
        vec![
            ("mean_inside", a(|a| a.mean_inside)),
            ("mean_ring", a(|a| a.mean_ring)),
            ("std_inside", a(|a| a.std_inside)),
            ("edge_sharpness", a(|a| a.edge_sharpness)),
            ("contrast", a_s(|a| &a.contrast)),
            ("texture", a_s(|a| &a.texture)),
            ("margin", a_s(|a| &a.margin)),
        ],
        Some(rois.iter().map(|r| r.appearance.is_some()).collect()),
    );
    structure(
        vec![
            ("label", s(|r| Some(&r.label))),
            ("label_id", i32s(rois.iter().map(|r| r.label_id))),
            ("bbox_xyxy", list(rois.iter().map(|_| 4), bbox_values)),
            (
                "mask_rle",
                structure(
                    vec![
                        ("size", list(rois.iter().map(|_| 2), size_values)),
                        ("counts", s(|r| Some(&r.mask_rle.counts))),
                    ],
                    None,
                ),
            ),
            ("area_px", i64s(rois.iter().map(|r| Some(r.area_px)))),
            ("area_fraction", f64s(rois.iter().map(|r| Some(r.area_fraction)))),
            ("centroid_xy", list(rois.iter().map(|_| 2), centroid_values)),
            ("position", s(|r| Some(&r.position))),
            ("side", s(|r| r.side.as_deref())),
            ("side_frame", s(|r| Some(&r.side_frame))),
            ("origin", s(|r| Some(&r.origin))),
            ("score", f64s(rois.iter().map(|r| r.score))),
            ("measurements", measurements),
            ("appearance", appearance),
            ("patient_position", s(|r| r.patient_position.as_deref())),
            (
                "organ_context",
                structure(
                    vec![
                        (
                            "organ",
                            utf8(rois.iter().map(|r| r.organ_context.as_ref().map(|o| o.organ.as_str()))),
                        ),
                        (
                            "relation",
                            utf8(
                                rois.iter()
                                    .map(|r| r.organ_context.as_ref().map(|o| o.relation.as_str())),
                            ),
                        ),
                        (
                            "fraction_inside",
                            f64s(rois.iter().map(|r| r.organ_context.as_ref().map(|o| o.fraction_inside))),
                        ),
                        (
                            "organ_mean_hu",
                            f64s(
                                rois.iter()
                                    .map(|r| r.organ_context.as_ref().and_then(|o| o.organ_mean_hu)),
                            ),
                        ),
                        (
                            "organ_std_hu",
                            f64s(
                                rois.iter()
                                    .map(|r| r.organ_context.as_ref().and_then(|o| o.organ_std_hu)),
                            ),
                        ),
                        (
                            "attenuation_vs_organ",
                            utf8(
                                rois.iter()
                                    .map(|r| r.organ_context.as_ref().and_then(|o| o.attenuation_vs_organ.as_deref())),
                            ),
                        ),
                    ],
                    Some(rois.iter().map(|r| r.organ_context.is_some()).collect()),
                ),
            ),
        ],
        None,
    )
}

/// Builds one record batch from triplet rows, with the SPEC column order.
pub fn triplet_batch(rows: &[TripletRecord]) -> Result<RecordBatch> {
    let s = |f: fn(&TripletRecord) -> Option<&str>| utf8(rows.iter().map(|r| f(r)));
    let slice = structure(
        vec![
            (
                "axis",
                utf8(rows.iter().map(|r| r.slice.as_ref().map(|s| s.axis.as_str()))),
            ),
            ("index", i32s(rows.iter().map(|r| r.slice.as_ref().map(|s| s.index)))),
        ],
        Some(rows.iter().map(|r| r.slice.is_some()).collect()),
    );
    let image = structure(
        vec![
            ("bytes", binary(rows.iter().map(|r| Some(r.image.bytes.as_slice())))),
            ("path", s(|r| Some(&r.image.path))),
        ],
        None,
    );
    let diseases = list(
        rows.iter().map(|r| r.diseases.len()),
        utf8(rows.iter().flat_map(|r| r.diseases.iter().map(|d| Some(d.as_str())))),
    );
    let all_rois: Vec<&RoiRecord> = rows.iter().flat_map(|r| r.rois.iter()).collect();
    let rois = list(rows.iter().map(|r| r.rois.len()), rois_array(&all_rois));
    let all_k: Vec<_> = rows.iter().flat_map(|r| r.knowledge.iter()).collect();
    let knowledge = list(
        rows.iter().map(|r| r.knowledge.len()),
        structure(
            vec![
                ("id", utf8(all_k.iter().map(|k| Some(k.id.as_str())))),
                ("source", utf8(all_k.iter().map(|k| Some(k.source.as_str())))),
                ("score", f64s(all_k.iter().map(|k| Some(k.score)))),
                ("text", utf8(all_k.iter().map(|k| Some(k.text.as_str())))),
            ],
            None,
        ),
    );
    let sec = |f: fn(&TripletRecord) -> &str| utf8(rows.iter().map(|r| Some(f(r))));
    let sections = structure(
        vec![
            ("modality", sec(|r| &r.sections.modality)),
            ("organ_detection", sec(|r| &r.sections.organ_detection)),
            ("roi_analysis", sec(|r| &r.sections.roi_analysis)),
            ("lesion_texture", sec(|r| &r.sections.lesion_texture)),
            ("local_global", sec(|r| &r.sections.local_global)),
        ],
        None,
    );
    let generator = structure(
        vec![
            ("kind", s(|r| Some(&r.generator.kind))),
            ("model", s(|r| r.generator.model.as_deref())),
            ("prompt_version", s(|r| Some(&r.generator.prompt_version))),
            ("prompt_tokens", i64s(rows.iter().map(|r| r.generator.prompt_tokens))),
            (
                "completion_tokens",
                i64s(rows.iter().map(|r| r.generator.completion_tokens)),
            ),
            ("finish_reason", s(|r| r.generator.finish_reason.as_deref())),
        ],
        None,
    );
    let qc = structure(
        vec![
            ("passed", bools(rows.iter().map(|r| Some(r.qc.passed)))),
            (
                "flags",
                list(
                    rows.iter().map(|r| r.qc.flags.len()),
                    utf8(rows.iter().flat_map(|r| r.qc.flags.iter().map(|f| Some(f.as_str())))),
                ),
            ),
        ],
        None,
    );
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", s(|r| Some(&r.id))),
        ("source", s(|r| Some(&r.source))),
        ("source_path", s(|r| Some(&r.source_path))),
        ("slice", slice),
        ("license", s(|r| r.license.as_deref())),
        ("image", image),
        ("width", i32s(rows.iter().map(|r| Some(r.width)))),
        ("height", i32s(rows.iter().map(|r| Some(r.height)))),
        ("modality", s(|r| r.modality.as_deref())),
        ("organ", s(|r| r.organ.as_deref())),
        ("diseases", diseases),
        ("coarse_caption", s(|r| Some(&r.coarse_caption))),
        ("rois", rois),
        ("knowledge", knowledge),
        ("description", s(|r| Some(&r.description))),
        ("sections", sections),
        ("generator", generator),
        ("qc", qc),
        ("split", s(|r| r.split.as_deref())),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let mut features = serde_json::Map::new();
    for f in &fields {
        let feat = if f.name() == "image" {
            serde_json::json!({"_type": "Image"})
        } else {
            hf_feature(f.data_type())
        };
        features.insert(f.name().clone(), feat);
    }
    let hf = serde_json::json!({"info": {"features": features}});
    let metadata = HashMap::from([("huggingface".to_string(), hf.to_string())]);
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| ExportError::Arrow(e.to_string()))
}

fn writer_props(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_size(row_group_rows)
        .set_created_by(format!("medgrain {}", env!("CARGO_PKG_VERSION")))
        // columns whose values are unique per row: a dictionary is built, found useless and dropped for every
        // row group (one of the largest allocations of a build, measured with heaptrack); plain from the start
        .set_column_dictionary_enabled(ColumnPath::from(vec!["image".to_string(), "bytes".to_string()]), false)
        .set_column_dictionary_enabled(ColumnPath::from("id"), false)
        .build()
}

/// Rewrites the `qc.flags` of a triplet Parquet file: flags starting with one of `owned_prefixes` are removed, then
/// `new_flags[id]` appended (every other column, the schema and its metadata kept). Written under a temporary name
/// and renamed; returns whether the file changed.
pub fn rewrite_qc_flags(
    path: &Path,
    new_flags: &std::collections::HashMap<String, Vec<String>>,
    owned_prefixes: &[&str],
) -> Result<bool> {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, ArrayRef, StructArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;
    let perr = |e: &dyn std::fmt::Display| ExportError::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| perr(&e))?
        .with_batch_size(256)
        .build()
        .map_err(|e| perr(&e))?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let mut batches = Vec::new();
    let mut changed = false;
    for batch in reader {
        let batch = batch.map_err(|e| perr(&e))?;
        let ids = batch
            .column_by_name("id")
            .and_then(|c| c.as_string_opt::<i32>().cloned())
            .ok_or_else(|| perr(&"no string column id"))?;
        let qi = batch.schema().index_of("qc").map_err(|e| perr(&e))?;
        let qc = batch
            .column(qi)
            .as_struct_opt()
            .cloned()
            .ok_or_else(|| perr(&"qc is not a struct"))?;
        let fi = qc
            .column_names()
            .iter()
            .position(|n| *n == "flags")
            .ok_or_else(|| perr(&"no qc.flags"))?;
        let flags = qc
            .column(fi)
            .as_list_opt::<i32>()
            .cloned()
            .ok_or_else(|| perr(&"qc.flags is not a list"))?;
        let item = match qc.fields()[fi].data_type() {
            arrow_schema::DataType::List(f) => f.clone(),
            _ => return Err(perr(&"qc.flags is not a list")),
        };
        let mut b = ListBuilder::new(StringBuilder::new()).with_field(item);
        for row in 0..batch.num_rows() {
            let old = flags.value(row);
            let old = old.as_string_opt::<i32>();
            let mut kept: Vec<String> = old
                .map(|s| {
                    (0..s.len())
                        .filter(|&i| !s.is_null(i))
                        .map(|i| s.value(i).to_string())
                        .collect()
                })
                .unwrap_or_default();
            let before = kept.clone();
            kept.retain(|f| !owned_prefixes.iter().any(|p| f.starts_with(p)));
            if let Some(add) = new_flags.get(ids.value(row)) {
                kept.extend(add.iter().cloned());
            }
            changed |= kept != before;
            for f in &kept {
                b.values().append_value(f);
            }
            b.append(true);
        }
        let mut cols: Vec<ArrayRef> = qc.columns().to_vec();
        cols[fi] = Arc::new(b.finish());
        let new_qc = StructArray::try_new(qc.fields().clone(), cols, qc.nulls().cloned()).map_err(|e| perr(&e))?;
        let mut all: Vec<ArrayRef> = batch.columns().to_vec();
        all[qi] = Arc::new(new_qc);
        batches.push(RecordBatch::try_new(batch.schema(), all).map_err(|e| perr(&e))?);
    }
    if !changed {
        return Ok(false);
    }
    let tmp = crate::temp_path(path);
    let out = std::fs::File::create(&tmp).map_err(|source| ExportError::Io {
        path: tmp.clone(),
        source,
    })?;
    let mut w = ArrowWriter::try_new(out, schema, Some(writer_props(256))).map_err(|e| perr(&e))?;
    for b in &batches {
        w.write(b).map_err(|e| perr(&e))?;
    }
    let f = w.into_inner().map_err(|e| perr(&e))?;
    f.sync_all().map_err(|source| ExportError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// Writes one Parquet file of triplet rows; visible under `path` only after [`RowWriter::finish`].
pub struct TripletParquetWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<std::fs::File>>,
    row_group_rows: usize,
}

impl TripletParquetWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = crate::temp_path(path);
        Ok(TripletParquetWriter {
            path: path.to_path_buf(),
            tmp,
            writer: None,
            row_group_rows: 256,
        })
    }

    fn perr(&self, e: impl std::fmt::Display) -> ExportError {
        ExportError::Parquet {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn write_batch(&mut self, rows: &[TripletRecord]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = triplet_batch(rows)?;
        if self.writer.is_none() {
            let file = std::fs::File::create(&self.tmp).map_err(|source| ExportError::Io {
                path: self.tmp.clone(),
                source,
            })?;
            let props = writer_props(self.row_group_rows);
            let w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| self.perr(e))?;
            self.writer = Some(w);
        }
        let Some(w) = self.writer.as_mut() else {
            return Err(self.perr("writer not open"));
        };
        let res = w.write(&batch).and_then(|_| {
            if w.in_progress_size() >= ROW_GROUP_BYTES {
                w.flush()
            } else {
                Ok(())
            }
        });
        res.map_err(|e| self.perr(e))
    }
}

/// Rows are turned into Arrow batches of at most this many image bytes (at least one row)…
const BATCH_IMAGE_BYTES: usize = 4 << 20;
/// …and a row group ends at `row_group_rows` rows or when its encoded size reaches this, whichever comes first: the
/// writer's memory stays bounded whatever the images' size.
const ROW_GROUP_BYTES: usize = 8 << 20;

impl RowWriter<TripletRecord> for TripletParquetWriter {
    fn write(&mut self, rows: &[TripletRecord]) -> Result<()> {
        let mut start = 0;
        while start < rows.len() {
            let (mut end, mut bytes) = (start, 0usize);
            while end < rows.len() && (end == start || bytes + rows[end].image.bytes.len() <= BATCH_IMAGE_BYTES) {
                bytes += rows[end].image.bytes.len();
                end += 1;
            }
            self.write_batch(&rows[start..end])?;
            start = end;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(()); // no rows: no file
        };
        let file = w.into_inner().map_err(|e| self.perr(e))?;
        file.sync_all().map_err(|source| ExportError::Io {
            path: self.tmp.clone(),
            source,
        })?;
        std::fs::rename(&self.tmp, &self.path).map_err(|source| ExportError::Io {
            path: self.path.clone(),
            source,
        })
    }
}
