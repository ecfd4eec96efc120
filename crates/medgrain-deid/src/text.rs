//! Free-text scrubbing for report text: dates, phone numbers, e-mail addresses, ID-like numbers and names after
//! titles become placeholders (`[DATE]`, `[PHONE]`, `[EMAIL]`, `[ID]`, `[NAME]`), counted per kind. Measurements
//! ("12 mm", "3.5 x 2.1 cm", "T2", "C5-C6") are never touched: every pattern needs a shape no measurement has.

use regex::Regex;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Kinds of span, in the order they are replaced (e-mail before names, dates before IDs).
pub const KINDS: [&str; 5] = ["email", "date", "phone", "id", "name"];

const MONTHS: &str = "(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|\
                      sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";

fn patterns() -> &'static [(&'static str, Regex)] {
    static P: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("static pattern");
        vec![
            ("email", re(r"(?i)\b[A-Z0-9._%+-]+@[A-Z0-9.-]+\.[A-Z]{2,}\b")),
            (
                "date",
                re(&format!(
                    r"(?ix)
                    \b\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}\b                  # 2021-03-04, 2021/3/4
                    | \b\d{{1,2}}[-/.]\d{{1,2}}[-/.](?:\d{{4}}|\d{{2}})\b      # 03/04/2021, 3.4.21
                    | \b\d{{1,2}}(?:st|nd|rd|th)?[\s-]+(?:of\s+)?{MONTHS}\.?,?[\s-]+\d{{2,4}}\b  # 4 March 2021
                    | \b{MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b  # March 4, 2021
                    | \b{MONTHS}\.?\s+\d{{4}}\b                               # March 2021
                    | \b(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b  # 20210304
                    "
                )),
            ),
            (
                "phone",
                re(r"(?x)
                    (?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b   # (555) 123-4567, 555-123-4567
                    | \+\d{1,3}(?:[\s.-]?\d{2,4}){3,4}\b                                   # +44 20 7946 0958
                    | \b0\d{2,4}[\s-]\d{3,4}[\s-]?\d{3,4}\b                                # 020 7946 0958
                "),
            ),
            (
                "id",
                re(r"(?ix)
                    \b(?:MRN|MR\#|medical\s+record(?:\s+number)?|record\s+(?:number|no\.?)|patient\s+id|accession(?:\s+(?:number|no\.?))?|acc\.?|ID|SSN|NHS(?:\s+number)?)
                      \s*(?:\#|:|no\.?|number)?\s*[A-Z-]{0,4}\d[A-Z0-9-]{2,}\b
                    | \b[A-Z]{1,3}-?\d{6,}\b
                    | \b\d{3}-\d{2}-\d{4}\b
                    | \b\d{6,}\b
                "),
            ),
            (
                "name",
                re(r"\b(?:Doctor|Dr|Mrs|Mr|Ms|Miss|Professor|Prof)\.?\s+(?:[A-Z]\.\s*)*[A-Z][A-Za-z'’-]+(?:\s+[A-Z][A-Za-z'’-]+)?"),
            ),
        ]
    })
}

fn title_pattern() -> &'static Regex {
    static T: OnceLock<Regex> = OnceLock::new();
    T.get_or_init(|| Regex::new(r"^(?:Doctor|Dr|Mrs|Mr|Ms|Miss|Professor|Prof)\.?").expect("static pattern"))
}

/// What was replaced: spans per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Scrubbed {
    pub text: String,
    pub counts: BTreeMap<String, u64>,
}

impl Scrubbed {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Replaces every identifying span of `text`.
pub fn scrub(text: &str) -> Scrubbed {
    let mut out = text.to_string();
    let mut counts = BTreeMap::new();
    for (kind, re) in patterns() {
        let n = re.find_iter(&out).count() as u64;
        if n == 0 {
            continue;
        }
        let placeholder = format!("[{}]", kind.to_ascii_uppercase());
        out = if *kind == "name" {
            // keep the title: "Dr. [NAME]"
            let title = title_pattern();
            re.replace_all(&out, |c: &regex::Captures| {
                let m = c.get(0).map(|m| m.as_str()).unwrap_or("");
                let t = title.find(m).map(|t| t.as_str()).unwrap_or("");
                format!("{t} {placeholder}")
            })
            .into_owned()
        } else {
            re.replace_all(&out, placeholder.as_str()).into_owned()
        };
        *counts.entry(kind.to_string()).or_insert(0) += n;
    }
    Scrubbed { text: out, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_replaced() {
        let cases = [
            (
                "Seen on 03/04/2021 for follow-up.",
                "Seen on [DATE] for follow-up.",
                "date",
            ),
            ("Compared with 2019-11-02.", "Compared with [DATE].", "date"),
            (
                "Prior study dated 4 March 2021 shows",
                "Prior study dated [DATE] shows",
                "date",
            ),
            ("Prior of March 4, 2021 shows", "Prior of [DATE] shows", "date"),
            (
                "Call (555) 123-4567 with results.",
                "Call [PHONE] with results.",
                "phone",
            ),
            ("Call 555-123-4567.", "Call [PHONE].", "phone"),
            ("Mail jane.doe@example.org now.", "Mail [EMAIL] now.", "email"),
            ("MRN: 00123456 reviewed.", "[ID] reviewed.", "id"),
            ("Accession 987654321.", "[ID].", "id"),
            (
                "Discussed with Dr. Gregory House today.",
                "Discussed with Dr. [NAME] today.",
                "name",
            ),
            ("Mrs Smith was informed.", "Mrs [NAME] was informed.", "name"),
        ];
        for (input, want, kind) in cases {
            let s = scrub(input);
            assert_eq!(s.text, want, "{input}");
            assert_eq!(s.counts.get(kind), Some(&1), "{input}: {:?}", s.counts);
        }
    }

    #[test]
    fn findings_and_measurements_are_untouched() {
        for t in [
            "A 12 mm nodule in the right upper lobe measuring 3.5 x 2.1 cm.",
            "No pleural effusion. Degenerative change at C5-C6 and L4-L5.",
            "Hypointense on T2, 2.5 cm, stable since the prior examination.",
            "MS plaques in the periventricular white matter.",
            "Heart size is normal. Dr findings none.",
            "The id with the acc value was unchanged, no ID card.",
        ] {
            let s = scrub(t);
            assert_eq!(s.text, t, "{:?}", s.counts);
            assert_eq!(s.total(), 0);
        }
    }
}
