//! SOQL `LIKE` patterns: `%` and `_` wildcards, backslash escapes, case-insensitive matching without allocating per row.

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// A literal character, lower-cased.
    Char(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters.
    Any,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LikePattern {
    parts: Vec<Part>,
}

fn fold(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    }
}

impl LikePattern {
    /// Compiles the text written between the quotes (escapes not yet decoded).
    pub fn new(raw: &str) -> Self {
        let mut parts = Vec::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            let part = match c {
                '%' => {
                    if parts.last() == Some(&Part::Any) {
                        continue;
                    }
                    Part::Any
                }
                '_' => Part::One,
                '\\' => match chars.next() {
                    Some('n') => Part::Char('\n'),
                    Some('t') => Part::Char('\t'),
                    Some('r') => Part::Char('\r'),
                    Some('b') => Part::Char('\u{8}'),
                    Some('f') => Part::Char('\u{c}'),
                    Some(other) => Part::Char(fold(other)),
                    None => Part::Char('\\'),
                },
                other => Part::Char(fold(other)),
            };
            parts.push(part);
        }
        LikePattern { parts }
    }

    /// Whether `text` matches, ignoring case.
    pub fn matches(&self, text: &str) -> bool {
        let parts = &self.parts;
        let mut p = 0;
        let mut s = 0;
        // Backtrack point: the pattern index after the last `%`, and the text position it
        // was last tried at.
        let mut star: Option<(usize, usize)> = None;
        loop {
            let next = text[s..].chars().next();
            match (parts.get(p), next) {
                (Some(Part::Any), _) => {
                    p += 1;
                    star = Some((p, s));
                    continue;
                }
                (Some(Part::One), Some(c)) => {
                    p += 1;
                    s += c.len_utf8();
                    continue;
                }
                (Some(Part::Char(want)), Some(c)) if fold(c) == *want => {
                    p += 1;
                    s += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            match star {
                Some((sp, ss)) => match text[ss..].chars().next() {
                    Some(c) => {
                        let ss = ss + c.len_utf8();
                        star = Some((sp, ss));
                        p = sp;
                        s = ss;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    #[test]
    fn wildcards_escapes_and_case() {
        let m = |p: &str, t: &str| LikePattern::new(p).matches(t);
        assert!(m("acme%", "ACME Corp"));
        assert!(m("%corp", "Acme Corp"));
        assert!(m("%me c%", "Acme Corp"));
        assert!(m("a_me", "Acme"));
        assert!(!m("a_me", "Acmee"));
        assert!(m("%", ""));
        assert!(!m("_", ""));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("a\\_b", "A_B"));
        assert!(!m("a\\_b", "axb"));
        assert!(m("%a%b%c%", "xxAyyBzzC"));
        assert!(!m("%a%b%c%", "xxAyyCzzB"));
        assert!(m("ÉCOLE%", "école normale"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }
}
