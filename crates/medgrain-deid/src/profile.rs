//! The Basic Application Level Confidentiality Profile applied to a data set, recursively inside sequences.

use crate::dates;
use crate::describe::{clean_age, clean_descriptor};
use crate::keys::Keys;
use crate::table::{Code, Opt, Table};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;

/// Options of PS3.15 E.3 the profile is applied with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Retain Longitudinal Temporal Information with Modified Dates: one shift per patient, intervals kept.
    pub modified_dates: bool,
    /// Retain Patient Characteristics: age (above 89 years as 090Y), sex, size, weight and the rest of the
    /// option's K column.
    pub patient_characteristics: bool,
    /// Clean Descriptors: free-text descriptors keep only imaging-vocabulary words instead of being removed.
    pub clean_descriptors: bool,
}

impl Options {
    /// The DeidentificationMethodCodeSequence codes (CID 7050), 113100 first.
    pub fn codes(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("113100", "Basic Application Confidentiality Profile")];
        if self.clean_descriptors {
            v.push(("113105", "Clean Descriptors Option"));
        }
        if self.modified_dates {
            v.push((
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ));
        }
        if self.patient_characteristics {
            v.push(("113108", "Retain Patient Characteristics Option"));
        }
        v
    }
}

/// The dummy text D writes into string attributes (fits every string VR, SH/AE/CS's 16 characters included).
pub const DUMMY_TEXT: &str = "ANONYMIZED";

/// What happened to one data set: attributes per action taken.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Applied {
    pub removed: u64,
    pub emptied: u64,
    pub dummied: u64,
    pub uids_replaced: u64,
    pub dates_shifted: u64,
    pub cleaned: u64,
    pub kept_by_option: u64,
    pub private_removed: u64,
}

pub(crate) struct Run<'a> {
    pub table: &'a Table,
    pub keys: &'a Keys,
    pub opts: Options,
    pub shift_days: i64,
    pub applied: Applied,
    /// Inside a sequence the table marks D (Content Sequence, Graphic Annotation Sequence, …): its free text and
    /// person names are replaced too, its coded entries kept.
    pub in_dummied_sequence: bool,
}

const PATIENT_ID: Tag = Tag(0x0010, 0x0020);

impl Run<'_> {
    /// The code an attribute gets under the enabled options, and the option that gave it.
    fn effective(&self, row: &crate::table::Row) -> (Code, Option<Opt>) {
        let enabled = [
            (Opt::PatientCharacteristics, self.opts.patient_characteristics),
            (Opt::ModifiedDates, self.opts.modified_dates),
            (Opt::CleanDescriptors, self.opts.clean_descriptors),
        ];
        for (o, on) in enabled {
            if !on {
                continue;
            }
            match row.option(o) {
                // C in the patient-characteristics column (allergies, pregnancy status, ...) would need free-text
                // cleaning of clinical facts; the basic action applies instead.
                Some(Code::C) if o == Opt::PatientCharacteristics => {}
                Some(c) => return (c, Some(o)),
                None => {}
            }
        }
        (row.basic, None)
    }

    pub fn data_set(&mut self, obj: InMemDicomObject) -> InMemDicomObject {
        let mut out: Vec<InMemElement> = Vec::new();
        for elt in obj {
            if let Some(e) = self.element(elt) {
                out.push(e);
            }
        }
        InMemDicomObject::from_element_iter(out)
    }

    fn element(&mut self, elt: InMemElement) -> Option<InMemElement> {
        let tag = elt.tag();
        if tag.group() % 2 == 1 {
            self.applied.private_removed += 1;
            return None;
        }
        // overlays (groups 6000-60FF): the profile removes their data (60xx,3000) and comments; an overlay plane
        // without its data is invalid, so the whole overlay goes (the Clean Graphics option is not offered)
        if tag.group() & 0xFF00 == 0x6000 {
            self.applied.removed += 1;
            return None;
        }
        let elt = match self.known_vr(elt) {
            Some(e) => e,
            None => {
                self.applied.removed += 1;
                return None;
            }
        };
        if tag == PATIENT_ID {
            // Z/D in the table; D with a keyed pseudonym, so one patient stays one patient
            let v = elt.to_str().map(|s| s.into_owned()).unwrap_or_default();
            self.applied.dummied += 1;
            return Some(DataElement::new(
                tag,
                VR::LO,
                PrimitiveValue::from(self.keys.patient_id(&v)),
            ));
        }
        let Some(row) = self.table.get(tag.group(), tag.element()) else {
            if self.in_dummied_sequence && matches!(elt.vr(), VR::LT | VR::ST | VR::UT | VR::UC | VR::PN) {
                return Some(self.dummy(elt));
            }
            return Some(self.recurse(elt));
        };
        let (code, by) = self.effective(row);
        let vr = elt.vr();
        match code {
            Code::K => {
                if by.is_some() {
                    self.applied.kept_by_option += 1;
                }
                if tag == Tag(0x0010, 0x1010) {
                    // Patient's Age under Retain Patient Characteristics: ages above 89 grouped
                    let a = elt.to_str().ok().and_then(|s| clean_age(&s));
                    return Some(match a {
                        Some(a) if a.len() == 4 => DataElement::new(tag, vr, PrimitiveValue::from(a)),
                        _ => {
                            self.applied.emptied += 1;
                            DataElement::empty(tag, vr)
                        }
                    });
                }
                Some(self.recurse(elt))
            }
            // an attribute present but already empty holds nothing: kept, so that a module needing it (Type 2)
            // stays complete
            Code::X if is_empty(&elt) => Some(elt),
            Code::X => {
                self.applied.removed += 1;
                None
            }
            // X/Z on a sequence: its items go through the profile (a present sequence with no items breaks modules
            // that need one, e.g. Referenced Study Sequence)
            Code::XZ if vr == VR::SQ => Some(self.recurse(elt)),
            Code::Z | Code::XZ => Some(self.empty(tag, vr)),
            Code::U => Some(self.uids(elt)),
            Code::D | Code::ZD | Code::XD | Code::XZD => Some(self.dummy(elt)),
            Code::XZU => {
                if vr == VR::SQ {
                    Some(self.recurse(elt))
                } else if vr == VR::UI {
                    Some(self.uids(elt))
                } else {
                    Some(self.empty(tag, vr))
                }
            }
            Code::C => Some(self.clean(elt, by, row.basic)),
        }
    }

    /// An element read with VR UN (implicit-VR writers, unknown to the reader) gets the dictionary's VR when it is
    /// text or a number; one the profile cannot look inside (a sequence stored as UN, or a tag no dictionary knows)
    /// is `None`: removed, since what it holds cannot be checked.
    fn known_vr(&mut self, elt: InMemElement) -> Option<InMemElement> {
        use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
        if elt.vr() != VR::UN {
            return Some(elt);
        }
        let tag = elt.tag();
        let entry = dicom_dictionary_std::StandardDataDictionary.by_tag(tag)?;
        let vr = match entry.vr() {
            VirtualVr::Exact(v) => v,
            _ => return Some(elt),
        };
        if vr == VR::SQ {
            // PS3.5 6.2.2: a sequence with VR UN holds its items in implicit VR little endian
            let bytes = elt.to_bytes().ok()?;
            let items = un_sequence_items(&bytes)?;
            return Some(DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::new(items, Length::UNDEFINED),
            ));
        }
        if is_text(vr)
            || matches!(
                vr,
                VR::UI | VR::DA | VR::DT | VR::TM | VR::AS | VR::DS | VR::IS | VR::AE | VR::UR
            )
        {
            let bytes = elt.to_bytes().ok()?;
            let text = String::from_utf8_lossy(&bytes)
                .trim_end_matches(['\0', ' '])
                .to_string();
            let parts: Vec<String> = text.split('\\').map(str::to_string).collect();
            return Some(DataElement::new(tag, vr, strs(parts)));
        }
        Some(elt)
    }

    fn empty(&mut self, tag: Tag, vr: VR) -> InMemElement {
        self.applied.emptied += 1;
        if vr == VR::SQ {
            DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::<InMemDicomObject>::new(Vec::new(), Length(0)),
            )
        } else {
            DataElement::empty(tag, vr)
        }
    }

    /// Keeps an element; a sequence's items go through the profile themselves.
    fn recurse(&mut self, elt: InMemElement) -> InMemElement {
        if elt.vr() != VR::SQ {
            return elt;
        }
        let (header, value) = elt.into_parts();
        match value {
            Value::Sequence(seq) => {
                let items: Vec<InMemDicomObject> = seq.into_items().into_iter().map(|i| self.data_set(i)).collect();
                DataElement::new(header.tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
            }
            other => DataElement::new(header.tag, header.vr, other),
        }
    }

    fn uids(&mut self, elt: InMemElement) -> InMemElement {
        let (tag, vr) = (elt.tag(), elt.vr());
        if vr == VR::SQ {
            return self.recurse(elt);
        }
        let vals: Vec<String> = elt
            .to_multi_str()
            .map(|v| v.iter().map(|s| s.trim_end_matches(['\0', ' ']).to_string()).collect())
            .unwrap_or_default();
        if vals.iter().all(|v| v.is_empty()) {
            return self.empty(tag, vr);
        }
        self.applied.uids_replaced += 1;
        let mapped: Vec<String> = vals
            .iter()
            .map(|v| if v.is_empty() { String::new() } else { self.keys.uid(v) })
            .collect();
        DataElement::new(tag, VR::UI, strs(mapped))
    }

    fn dummy(&mut self, elt: InMemElement) -> InMemElement {
        let (tag, vr) = (elt.tag(), elt.vr());
        let value = match vr {
            VR::SQ => {
                let outer = std::mem::replace(&mut self.in_dummied_sequence, true);
                let e = self.recurse(elt);
                self.in_dummied_sequence = outer;
                return e;
            }
            VR::UI => return self.uids(elt),
            VR::DA => PrimitiveValue::from("19000101"),
            VR::DT => PrimitiveValue::from("19000101000000"),
            VR::TM => PrimitiveValue::from("000000"),
            VR::AS => PrimitiveValue::from("000Y"),
            VR::DS | VR::IS => PrimitiveValue::from("0"),
            VR::UR => PrimitiveValue::from("http://anonymized.invalid"),
            VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT => {
                PrimitiveValue::from(DUMMY_TEXT)
            }
            VR::US => PrimitiveValue::from(0u16),
            VR::SS => PrimitiveValue::from(0i16),
            VR::UL => PrimitiveValue::from(0u32),
            VR::SL => PrimitiveValue::from(0i32),
            VR::FL => PrimitiveValue::from(0f32),
            VR::FD => PrimitiveValue::from(0f64),
            VR::SV => PrimitiveValue::I64([0i64].into_iter().collect()),
            VR::UV => PrimitiveValue::U64([0u64].into_iter().collect()),
            VR::AT => PrimitiveValue::Tags([Tag(0, 0)].into_iter().collect()),
            // OB, OW, OF, OD, OL, OV, UN: two zero bytes
            _ => PrimitiveValue::U8([0u8, 0].into_iter().collect()),
        };
        self.applied.dummied += 1;
        DataElement::new(tag, vr, value)
    }

    fn clean(&mut self, elt: InMemElement, by: Option<Opt>, basic: Code) -> InMemElement {
        let (tag, vr) = (elt.tag(), elt.vr());
        match by {
            Some(Opt::ModifiedDates) => {
                let s = elt.to_str().map(|s| s.into_owned()).unwrap_or_default();
                let shifted = match vr {
                    VR::DA => dates::shift_da(&s, self.shift_days),
                    VR::DT => dates::shift_dt(&s, self.shift_days),
                    // whole-day shifts keep the time of day
                    VR::TM => Some(s.trim_end_matches(['\0', ' ']).to_string()),
                    VR::SQ => return self.recurse(elt),
                    _ => None,
                };
                match shifted {
                    Some(v) if !v.is_empty() => {
                        self.applied.dates_shifted += 1;
                        DataElement::new(tag, vr, PrimitiveValue::from(v))
                    }
                    // not a date this code understands: the basic action instead
                    _ => self.basic(elt, basic),
                }
            }
            Some(Opt::CleanDescriptors) if is_text(vr) => {
                let s = elt.to_str().map(|s| s.into_owned()).unwrap_or_default();
                let c = clean_descriptor(&s.replace('\\', " "));
                self.applied.cleaned += 1;
                if c.is_empty() {
                    DataElement::empty(tag, vr)
                } else {
                    DataElement::new(tag, vr, PrimitiveValue::from(c))
                }
            }
            // coded sequences (diagnosis codes, ...) keep their codes; their items go through the profile
            Some(Opt::CleanDescriptors) if vr == VR::SQ => {
                self.applied.cleaned += 1;
                self.recurse(elt)
            }
            _ => self.basic(elt, basic),
        }
    }

    fn basic(&mut self, elt: InMemElement, basic: Code) -> InMemElement {
        let (tag, vr) = (elt.tag(), elt.vr());
        match basic {
            Code::D | Code::ZD | Code::XD | Code::XZD => self.dummy(elt),
            Code::U => self.uids(elt),
            Code::K => self.recurse(elt),
            // X has no element to return: its removal is an empty value here (only reached from C fallbacks)
            _ => self.empty(tag, vr),
        }
    }
}

/// The items of a sequence read as UN bytes (defined-length items; `None` for anything else).
fn un_sequence_items(b: &[u8]) -> Option<Vec<InMemDicomObject>> {
    let ts = dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut items = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= b.len() {
        let g = u16::from_le_bytes([b[pos], b[pos + 1]]);
        let e = u16::from_le_bytes([b[pos + 2], b[pos + 3]]);
        let len = u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]);
        pos += 8;
        match (g, e) {
            (0xFFFE, 0xE0DD) => break,
            (0xFFFE, 0xE000) if len != u32::MAX => {
                let end = pos.checked_add(len as usize).filter(|&x| x <= b.len())?;
                items.push(InMemDicomObject::read_dataset_with_ts(&b[pos..end], &ts).ok()?);
                pos = end;
            }
            _ => return None,
        }
    }
    Some(items)
}

fn is_empty(elt: &InMemElement) -> bool {
    match elt.value() {
        Value::Primitive(p) => p.to_str().trim_end_matches(['\0', ' ']).is_empty(),
        Value::Sequence(s) => s.items().is_empty(),
        Value::PixelSequence(_) => false,
    }
}

fn is_text(vr: VR) -> bool {
    matches!(
        vr,
        VR::LO | VR::LT | VR::SH | VR::ST | VR::UC | VR::UT | VR::CS | VR::PN
    )
}

fn strs(v: Vec<String>) -> PrimitiveValue {
    if v.len() == 1 {
        PrimitiveValue::from(v.into_iter().next().unwrap_or_default())
    } else {
        PrimitiveValue::Strs(v.into_iter().collect())
    }
}

/// The attributes written into every de-identified data set (PS3.15 E.1.1 point 6 and PS3.3 C.7.1.1).
pub(crate) fn mark(obj: &mut InMemDicomObject, opts: &Options, edition: &str) {
    obj.put(DataElement::new(
        Tag(0x0012, 0x0062),
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    let mut method = vec![format!("PS3.15 {edition} Basic Application Confidentiality Profile")];
    for (_, meaning) in opts.codes().iter().skip(1) {
        method.push(meaning.chars().take(64).collect());
    }
    obj.put(DataElement::new(Tag(0x0012, 0x0063), VR::LO, strs(method)));
    let items: Vec<InMemDicomObject> = opts
        .codes()
        .into_iter()
        .map(|(code, meaning)| {
            InMemDicomObject::from_element_iter([
                DataElement::new(Tag(0x0008, 0x0100), VR::SH, PrimitiveValue::from(code)),
                DataElement::new(Tag(0x0008, 0x0102), VR::SH, PrimitiveValue::from("DCM")),
                DataElement::new(Tag(0x0008, 0x0104), VR::LO, PrimitiveValue::from(meaning)),
            ])
        })
        .collect();
    obj.put(DataElement::new(
        Tag(0x0012, 0x0064),
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
    obj.put(DataElement::new(
        Tag(0x0028, 0x0303),
        VR::CS,
        PrimitiveValue::from(if opts.modified_dates { "MODIFIED" } else { "REMOVED" }),
    ));
}
