//! Answer normalisation shared by both VQA protocols: the rule of the VQA evaluation that ViLT published and
//! LLaVA-Med's and MedTrinity-25M's scripts reuse (`glossary.normalize_word`), with `:` added to its punctuation
//! marks and contractions not expanded. In order:
//!
//! 1. each mark of `; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! :` is deleted when the text has it next to a space or
//!    holds a digit-comma-digit group anywhere, and replaced by a space otherwise ("left-sided" → "left sided",
//!    "yes, left" → "yes left");
//! 2. a period not followed by a digit is deleted ("2.5 cm." → "2.5 cm");
//! 3. lower case, split on white space;
//! 4. number words `none zero one … ten` become digits (`none` → `0`);
//! 5. the articles `a an the` are dropped;
//! 6. remaining commas are deleted ("1,000" → "1000").

const PUNCT: [char; 22] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!', ':',
];

const NUMBER_WORDS: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

/// `true` when `text` holds a digit, a comma and a digit in a row.
fn has_digit_comma_digit(text: &[char]) -> bool {
    text.windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == ',' && w[2].is_ascii_digit())
}

/// The normalised answer as tokens.
pub fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let digit_comma = has_digit_comma_digit(&chars);
    let mut s: String = text.to_string();
    for p in PUNCT {
        // Tested on the original text, as the reference does.
        let spaced = text.contains(&format!("{p} ")) || text.contains(&format!(" {p}"));
        s = if spaced || digit_comma {
            s.replace(p, "")
        } else {
            s.replace(p, " ")
        };
    }
    // Periods not followed by a digit.
    let cs: Vec<char> = s.chars().collect();
    let mut t = String::with_capacity(s.len());
    for (i, &c) in cs.iter().enumerate() {
        if c == '.' && !cs.get(i + 1).is_some_and(|n| n.is_ascii_digit()) {
            continue;
        }
        t.push(c);
    }
    t.to_lowercase()
        .split_whitespace()
        .map(|w| NUMBER_WORDS.iter().find(|(k, _)| *k == w).map_or(w, |(_, v)| *v))
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .map(|w| w.replace(',', ""))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The normalised answer as one string (tokens joined by single spaces).
pub fn normalize(text: &str) -> String {
    tokens(text).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived, one per rule.
    #[test]
    fn each_rule() {
        assert_eq!(normalize("Yes"), "yes"); // case
        assert_eq!(normalize("left-sided"), "left sided"); // mark replaced by a space
        assert_eq!(normalize("yes, left"), "yes left"); // mark next to a space deleted
        assert_eq!(normalize("(right)"), "right"); // marks replaced by spaces, then split
        assert_eq!(normalize("2.5 cm."), "2.5 cm"); // period before a digit kept, final period deleted
        assert_eq!(normalize("Two nodules"), "2 nodules"); // number word
        assert_eq!(normalize("none"), "0");
        assert_eq!(normalize("The left lung"), "left lung"); // article
        assert_eq!(normalize("an effusion"), "effusion");
        assert_eq!(normalize("1,000 ml"), "1000 ml"); // digit-comma-digit: every mark deleted
        assert_eq!(normalize("Yes: nodule"), "yes nodule"); // ':' is a mark here (not in ViLT's list)
        assert_eq!(normalize("don't"), "don't"); // contractions untouched
        assert_eq!(normalize("  "), "");
        assert_eq!(normalize("x-ray?"), "x ray");
    }
}
