//! The SOQL tokenizer: identifiers, quoted strings with backslash escapes, numbers, unquoted date and datetime literals, operators and punctuation, each with its byte offset.

use super::{SoqlError, MALFORMED_QUERY};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name or keyword, as written.
    Ident(String),
    /// A quoted string, decoded; `raw` keeps the text between the quotes for `LIKE`.
    Str {
        value: String,
        raw: String,
    },
    /// A number as written (optionally signed).
    Number(String),
    /// An unquoted date or datetime literal as written (`2024-01-01`, `2024-01-01T00:00:00Z`).
    DateLit(String),
    Comma,
    LParen,
    RParen,
    Dot,
    Colon,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// End of input.
    Eof,
}

/// A token and where it starts (byte offset into the query).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub offset: usize,
}

impl Tok {
    /// The token as Salesforce echoes it in "unexpected token" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Number(s) | Tok::DateLit(s) => s.clone(),
            Tok::Str { raw, .. } => format!("'{raw}'"),
            Tok::Comma => ",".into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Dot => ".".into(),
            Tok::Colon => ":".into(),
            Tok::Eq => "=".into(),
            Tok::Ne => "!=".into(),
            Tok::Lt => "<".into(),
            Tok::Le => "<=".into(),
            Tok::Gt => ">".into(),
            Tok::Ge => ">=".into(),
            Tok::Eof => "<EOF>".into(),
        }
    }
}

/// Splits a query into tokens, ending with `Eof`.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, SoqlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let simple = |tok: Tok| Token { tok, offset: start };
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
            }
            b',' => {
                out.push(simple(Tok::Comma));
                i += 1;
            }
            b'(' => {
                out.push(simple(Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push(simple(Tok::RParen));
                i += 1;
            }
            b'.' => {
                out.push(simple(Tok::Dot));
                i += 1;
            }
            b':' => {
                out.push(simple(Tok::Colon));
                i += 1;
            }
            b'=' => {
                out.push(simple(Tok::Eq));
                i += 1;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push(simple(Tok::Ne));
                i += 2;
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    out.push(simple(Tok::Le));
                    i += 2;
                }
                Some(b'>') => {
                    out.push(simple(Tok::Ne));
                    i += 2;
                }
                _ => {
                    out.push(simple(Tok::Lt));
                    i += 1;
                }
            },
            b'>' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    out.push(simple(Tok::Ge));
                    i += 2;
                } else {
                    out.push(simple(Tok::Gt));
                    i += 1;
                }
            }
            b'\'' => {
                let (tok, next) = lex_string(text, i)?;
                out.push(Token { tok, offset: start });
                i = next;
            }
            b'0'..=b'9' => {
                let (tok, next) = lex_number_or_date(text, i);
                out.push(Token { tok, offset: start });
                i = next;
            }
            b'-' | b'+' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (tok, next) = lex_number_or_date(text, i + 1);
                let tok = match tok {
                    Tok::Number(_) => Tok::Number(text[i..next].to_string()),
                    other => other,
                };
                out.push(Token { tok, offset: start });
                i = next;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                out.push(simple(Tok::Ident(text[i..j].to_string())));
                i = j;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(SoqlError::located(
                    MALFORMED_QUERY,
                    text,
                    i,
                    &format!("unexpected token: {ch}"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        offset: text.len(),
    });
    Ok(out)
}

/// A quoted string starting at `start` (the opening quote).
fn lex_string(text: &str, start: usize) -> Result<(Tok, usize), SoqlError> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((k, ch)) = chars.next() {
        match ch {
            '\'' => {
                let end = start + 1 + k;
                let raw = text[start + 1..end].to_string();
                return Ok((Tok::Str { value, raw }, end + 1));
            }
            '\\' => {
                let Some((_, esc)) = chars.next() else { break };
                let decoded = match esc {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    '\'' | '"' | '\\' | '%' | '_' => esc,
                    other => {
                        return Err(SoqlError::located(
                            MALFORMED_QUERY,
                            text,
                            start,
                            &format!("Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."),
                        ));
                    }
                };
                // `\%` and `\_` stay escaped in `raw`; in plain comparisons they mean the
                // characters themselves.
                value.push(decoded);
            }
            other => value.push(other),
        }
    }
    Err(SoqlError::located(
        MALFORMED_QUERY,
        text,
        start,
        "line 1:0 mismatched character '<EOF>' expecting '''",
    ))
}

/// A number, or a date/datetime literal, starting at a digit.
fn lex_number_or_date(text: &str, start: usize) -> (Tok, usize) {
    let bytes = text.as_bytes();
    let digits = |from: usize| {
        let mut j = from;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let j = digits(start);
    // YYYY-MM-DD…
    if j - start == 4
        && bytes.get(j) == Some(&b'-')
        && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
    {
        let mut k = j;
        while k < bytes.len()
            && (bytes[k].is_ascii_digit()
                || matches!(
                    bytes[k],
                    b'-' | b':' | b'.' | b'+' | b'T' | b'Z' | b't' | b'z'
                ))
        {
            k += 1;
        }
        return (Tok::DateLit(text[start..k].to_string()), k);
    }
    let mut end = j;
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut k = end + 1;
        if matches!(bytes.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if bytes.get(k).is_some_and(u8::is_ascii_digit) {
            end = digits(k);
        }
    }
    (Tok::Number(text[start..end].to_string()), end)
}
