//! PS3.15 Annex E Table E.1-1 as data: `data/table_e1_1.tsv`, generated from the standard's table by
//! `scripts/gen_deid_table.py` (edition and provenance in its header). Nothing here lists tags by hand.

use std::collections::HashMap;

/// The table file, compiled in.
pub const TABLE_TSV: &str = include_str!("../data/table_e1_1.tsv");

/// The edition of PS3.15 the Basic Profile column comes from.
pub fn edition() -> &'static str {
    TABLE_TSV
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("20") && w.len() == 5))
        .unwrap_or("unknown")
}

/// One action code of Table E.1-1 (PS3.15 E.1.1 "Table E.1-1 action codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Code {
    /// D: replace with a non-zero length dummy value consistent with the VR.
    D,
    /// Z: replace with a zero length value.
    Z,
    /// X: remove.
    X,
    /// K: keep.
    K,
    /// C: clean (replace with values of similar meaning known not to identify).
    C,
    /// U: replace the UID with a non-zero length, internally consistent UID.
    U,
    /// Z/D: Z unless D is needed for IOD conformance (Type 2 vs Type 1).
    ZD,
    /// X/Z: X unless Z is needed (Type 3 vs Type 2).
    XZ,
    /// X/D: X unless D is needed (Type 3 vs Type 1).
    XD,
    /// X/Z/D: X unless Z or D is needed (Type 3 vs Type 2 vs Type 1).
    XZD,
    /// X/Z/U*: X unless Z or a replacement of every UID inside is needed (sequences of references).
    XZU,
}

impl Code {
    fn parse(s: &str) -> Option<Code> {
        Some(match s {
            "D" => Code::D,
            "Z" => Code::Z,
            "X" => Code::X,
            "K" => Code::K,
            "C" => Code::C,
            "U" => Code::U,
            "Z/D" => Code::ZD,
            "X/Z" => Code::XZ,
            "X/D" => Code::XD,
            "X/Z/D" => Code::XZD,
            "X/Z/U*" => Code::XZU,
            _ => return None,
        })
    }
}

/// The options of PS3.15 E.3 this table carries a column for, in the file's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opt {
    ModifiedDates,
    PatientCharacteristics,
    CleanDescriptors,
    RetainUids,
    RetainDevice,
    RetainInstitution,
    CleanGraphics,
    CleanStructuredContent,
    RetainSafePrivate,
}

const OPTS: [Opt; 9] = [
    Opt::ModifiedDates,
    Opt::PatientCharacteristics,
    Opt::CleanDescriptors,
    Opt::RetainUids,
    Opt::RetainDevice,
    Opt::RetainInstitution,
    Opt::CleanGraphics,
    Opt::CleanStructuredContent,
    Opt::RetainSafePrivate,
];

/// One attribute row.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub basic: Code,
    pub options: Vec<(Opt, Code)>,
}

impl Row {
    /// The option's code for this attribute, if the option changes it.
    pub fn option(&self, o: Opt) -> Option<Code> {
        self.options.iter().find(|(k, _)| *k == o).map(|(_, c)| *c)
    }
}

/// The parsed table: exact tags, and tags with masked hex digits (curves 50xx,xxxx, overlays 60xx,3000 / 60xx,4000).
#[derive(Debug)]
pub struct Table {
    exact: HashMap<u32, Row>,
    masked: Vec<(u32, u32, Row)>,
    pub private: Row,
}

impl Table {
    /// The compiled-in table. Panics only if the committed data file is malformed, which a unit test rules out.
    pub fn standard() -> &'static Table {
        static T: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        T.get_or_init(|| Table::parse(TABLE_TSV).expect("data/table_e1_1.tsv is well formed (tested)"))
    }

    pub fn parse(text: &str) -> Result<Table, String> {
        let mut exact = HashMap::new();
        let mut masked = Vec::new();
        let mut private = None;
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let header = lines.next().ok_or("empty table")?;
        if !header.starts_with("tag\tname\tbasic") {
            return Err(format!("unexpected header {header:?}"));
        }
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != 3 + OPTS.len() + 1 {
                return Err(format!("row {}: {} fields", i + 1, f.len()));
            }
            let basic = Code::parse(f[2]).ok_or_else(|| format!("row {}: action {:?}", i + 1, f[2]))?;
            let mut options = Vec::new();
            for (k, o) in OPTS.iter().enumerate() {
                let s = f[3 + k];
                if !s.is_empty() {
                    let c = Code::parse(s).ok_or_else(|| format!("row {}: option code {s:?}", i + 1))?;
                    options.push((*o, c));
                }
            }
            let row = Row {
                name: f[1].to_string(),
                basic,
                options,
            };
            if f[0] == "private" {
                private = Some(row);
                continue;
            }
            if f[0].len() != 8 {
                return Err(format!("row {}: tag {:?}", i + 1, f[0]));
            }
            let (mut value, mut mask) = (0u32, 0u32);
            for ch in f[0].chars() {
                value <<= 4;
                mask <<= 4;
                if ch != 'x' {
                    value |= ch
                        .to_digit(16)
                        .ok_or_else(|| format!("row {}: tag {:?}", i + 1, f[0]))?;
                    mask |= 0xF;
                }
            }
            if mask == u32::MAX {
                exact.insert(value, row);
            } else {
                masked.push((value, mask, row));
            }
        }
        Ok(Table {
            exact,
            masked,
            private: private.ok_or("no private-attributes row")?,
        })
    }

    /// The row for a (public) tag, if Table E.1-1 lists it.
    pub fn get(&self, group: u16, element: u16) -> Option<&Row> {
        let t = ((group as u32) << 16) | element as u32;
        self.exact
            .get(&t)
            .or_else(|| self.masked.iter().find(|(v, m, _)| t & m == *v).map(|(_, _, r)| r))
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.masked.len() + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_table_parses_with_every_attribute() {
        let t = Table::standard();
        // 655 attribute rows plus the private-attributes row (scripts/gen_deid_table.py prints the count)
        assert_eq!(t.len(), 656);
        assert_eq!(edition(), "2026c");
        // rows read straight off PS3.15 Table E.1-1
        let name = t.get(0x0010, 0x0010).unwrap();
        assert_eq!((name.name.as_str(), name.basic), ("Patient's Name", Code::Z));
        let age = t.get(0x0010, 0x1010).unwrap();
        assert_eq!(age.basic, Code::X);
        assert_eq!(age.option(Opt::PatientCharacteristics), Some(Code::K));
        assert_eq!(t.get(0x0020, 0x000D).unwrap().basic, Code::U);
        assert_eq!(t.get(0x0008, 0x1140).unwrap().basic, Code::XZU);
        assert_eq!(t.get(0x0008, 0x0020).unwrap().option(Opt::ModifiedDates), Some(Code::C));
        assert_eq!(
            t.get(0x0008, 0x1030).unwrap().option(Opt::CleanDescriptors),
            Some(Code::C)
        );
        // masked groups: overlay data in any 60xx group, curve data in any 50xx group
        assert_eq!(t.get(0x6002, 0x3000).unwrap().basic, Code::X);
        assert_eq!(t.get(0x5010, 0x0005).unwrap().basic, Code::X);
        // not in the table: kept by the Basic Profile
        assert!(t.get(0x0028, 0x0010).is_none(), "Rows");
        assert!(t.get(0x0008, 0x0060).is_none(), "Modality");
        assert_eq!(t.private.basic, Code::X);
    }
}
