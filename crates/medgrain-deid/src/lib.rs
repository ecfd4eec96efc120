//! De-identification for medgrain.
//!
//! - [`Deidentifier`]: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, every attribute of
//!   Table E.1-1 ([`table`], kept as data) with its action, recursively inside sequences; private attributes
//!   removed; the Modified Dates, Patient Characteristics and Clean Descriptors options; keyed UIDs, patient IDs
//!   and date shifts ([`keys`]); pixel data untouched; files at risk of burned-in text excluded unless allowed.
//! - [`text::scrub`]: identifying spans in report text.
//! - [`describe`]: the descriptive facts of a header, cleaned, for captions.

pub mod dates;
pub mod describe;
pub mod keys;
mod profile;
pub mod table;
pub mod text;

pub use keys::{Keys, SECRET_ENV};
pub use profile::{Applied, Options, DUMMY_TEXT};

use dicom_core::Tag;
use dicom_object::{FileDicomObject, InMemDicomObject};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    #[error("{0}")]
    Secret(String),
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// Why a file may carry identifying text in its pixels, when it may.
pub fn burned_in_risk(obj: &InMemDicomObject, sop_class: &str) -> Option<String> {
    let text = |t: Tag| {
        obj.element(t).ok().and_then(|e| {
            e.to_str()
                .ok()
                .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_ascii_uppercase())
        })
    };
    let burned = text(Tag(0x0028, 0x0301));
    if burned.as_deref() == Some("YES") {
        return Some("BurnedInAnnotation is YES".into());
    }
    let sop = sop_class.trim_end_matches(['\0', ' ']);
    // Secondary Capture (incl. the multi-frame SC classes): screenshots and scanned documents
    if sop == "1.2.840.10008.5.1.4.1.1.7" || sop.starts_with("1.2.840.10008.5.1.4.1.1.7.") {
        return Some(format!("Secondary Capture SOP class {sop}"));
    }
    // Ultrasound (single, multi-frame and their retired classes): patient data is routinely burned in
    if matches!(
        sop,
        "1.2.840.10008.5.1.4.1.1.6.1"
            | "1.2.840.10008.5.1.4.1.1.6.2"
            | "1.2.840.10008.5.1.4.1.1.3.1"
            | "1.2.840.10008.5.1.4.1.1.6"
            | "1.2.840.10008.5.1.4.1.1.3"
    ) {
        return Some(format!("ultrasound SOP class {sop}"));
    }
    let modality = text(Tag(0x0008, 0x0060)).unwrap_or_default();
    match modality.as_str() {
        "US" | "IVUS" | "SC" | "OT" | "ES" | "XC" | "DOC" => Some(format!("modality {modality}")),
        // angiography and fluoroscopy often carry annotations; excluded unless the header says there are none
        "XA" | "RF" if burned.as_deref() != Some("NO") => {
            Some(format!("modality {modality} without BurnedInAnnotation NO"))
        }
        _ => None,
    }
}

/// The outcome for one input file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileOutcome {
    /// Written output, relative to the output folder; `None` when excluded.
    pub output: Option<String>,
    /// Why the pixels may hold identifying text (excluded unless allowed).
    pub burned_in_risk: Option<String>,
    pub applied: Applied,
}

/// A configured de-identifier.
#[derive(Debug, Clone)]
pub struct Deidentifier {
    keys: Keys,
    pub options: Options,
    pub allow_burned_in: bool,
}

impl Deidentifier {
    pub fn new(keys: Keys, options: Options, allow_burned_in: bool) -> Self {
        Deidentifier {
            keys,
            options,
            allow_burned_in,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Applies the profile to a data set (the top level of a file or a header read elsewhere) and marks it.
    pub fn data_set(&self, obj: InMemDicomObject) -> (InMemDicomObject, Applied) {
        let patient = obj
            .element(Tag(0x0010, 0x0020))
            .ok()
            .and_then(|e| e.to_str().ok().map(|s| s.into_owned()))
            .unwrap_or_default();
        let mut run = profile::Run {
            table: table::Table::standard(),
            keys: &self.keys,
            opts: self.options,
            shift_days: self.keys.date_shift_days(&patient),
            applied: Applied::default(),
            in_dummied_sequence: false,
        };
        let mut out = run.data_set(obj);
        profile::mark(&mut out, &self.options, table::edition());
        (out, run.applied)
    }

    /// Reads `input`, de-identifies it and writes it under `out_dir` as
    /// `<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm` (the new UIDs), atomically. Files at risk of
    /// burned-in text are not written unless allowed. Nothing is written for a file that fails.
    pub fn file(&self, input: &Path, out_dir: &Path) -> Result<FileOutcome, DeidError> {
        self.file_as(input, out_dir, 0)
    }

    /// [`Deidentifier::file`], with `-N` after the SOP Instance UID in the file name when `suffix` is N > 0 (two
    /// different input files holding the same SOPInstanceUID).
    pub fn file_as(&self, input: &Path, out_dir: &Path, suffix: usize) -> Result<FileOutcome, DeidError> {
        let unreadable = |reason: String| DeidError::Unreadable {
            path: input.to_path_buf(),
            reason,
        };
        let obj = medgrain_imaging::dicom::open_object(input).map_err(unreadable)?;
        let meta = obj.meta().clone();
        let sop_class = meta.media_storage_sop_class_uid.clone();
        let inner: InMemDicomObject = obj.into_inner();
        let risk = burned_in_risk(&inner, &sop_class);
        if risk.is_some() && !self.allow_burned_in {
            return Ok(FileOutcome {
                output: None,
                burned_in_risk: risk,
                applied: Applied::default(),
            });
        }
        if let Some(r) = &risk {
            tracing::warn!(file = %input.display(), reason = %r, "kept a file at risk of burned-in identifying text (--allow-burned-in)");
        }
        let (out, applied) = self.data_set(inner);
        // the first value, digits and dots only (a UID, so a file name component)
        let uid = |t: Tag| {
            out.element(t)
                .ok()
                .and_then(|e| e.to_multi_str().ok().and_then(|v| v.first().cloned()))
                .map(|s| {
                    s.chars()
                        .filter(|c| c.is_ascii_digit() || *c == '.')
                        .collect::<String>()
                })
                .filter(|s| !s.is_empty() && !s.starts_with('.'))
        };
        // an instance is named by its (new) SOP Instance UID; a data set without one is not an instance to share
        let sop_uid = uid(Tag(0x0008, 0x0018)).ok_or_else(|| {
            unreadable("no SOPInstanceUID: not a composite instance that can be de-identified and named".into())
        })?;
        let mut new_meta = meta.clone();
        new_meta.media_storage_sop_instance_uid = sop_uid.clone();
        let rel = format!(
            "{}/{}/{}{}.dcm",
            uid(Tag(0x0020, 0x000D)).unwrap_or_else(|| "no-study".into()),
            uid(Tag(0x0020, 0x000E)).unwrap_or_else(|| "no-series".into()),
            sop_uid,
            if suffix > 0 {
                format!("-{suffix}")
            } else {
                String::new()
            }
        );
        new_meta.source_application_entity_title = None;
        new_meta.sending_application_entity_title = None;
        new_meta.receiving_application_entity_title = None;
        new_meta.private_information_creator_uid = None;
        new_meta.private_information = None;
        new_meta.implementation_version_name = Some("MEDGRAIN_DEID".into());
        let file = out.with_meta(meta_builder(&new_meta)).map_err(|e| DeidError::Write {
            path: input.to_path_buf(),
            reason: format!("file meta: {e}"),
        })?;
        let dest = out_dir.join(&rel);
        write_atomic(&file, &dest).map_err(|reason| DeidError::Write {
            path: input.to_path_buf(),
            reason,
        })?;
        Ok(FileOutcome {
            output: Some(rel),
            burned_in_risk: risk,
            applied,
        })
    }
}

fn meta_builder(m: &dicom_object::FileMetaTable) -> dicom_object::meta::FileMetaTableBuilder {
    let mut b = dicom_object::meta::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(m.media_storage_sop_class_uid.trim_end_matches(['\0', ' ']))
        .media_storage_sop_instance_uid(m.media_storage_sop_instance_uid.trim_end_matches(['\0', ' ']))
        .transfer_syntax(m.transfer_syntax.trim_end_matches(['\0', ' ']))
        .implementation_class_uid(m.implementation_class_uid.trim_end_matches(['\0', ' ']));
    if let Some(v) = &m.implementation_version_name {
        b = b.implementation_version_name(v.as_str());
    }
    b
}

fn write_atomic(file: &FileDicomObject<InMemDicomObject>, dest: &Path) -> Result<(), String> {
    let dir = dest.parent().ok_or("no parent folder")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dest.with_extension(format!("dcm.tmp-{}", std::process::id()));
    file.write_to_file(&tmp)
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", dest.display())
    })
}
