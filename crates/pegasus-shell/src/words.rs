//! Command-line words: splitting a line into words (quotes, `\` and `\xNN` escapes),
//! quoting bytes back for printing, and parsing words into options and positionals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Result, ShellError};

/// Splits a command line into words: whitespace separates, quotes group, `\` escapes, and
/// `\xNN` inside a word stands for one byte.
pub fn split_words(line: &str) -> Result<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('x') => {
                        let hi = chars.next().and_then(|c| c.to_digit(16));
                        let lo = chars.next().and_then(|c| c.to_digit(16));
                        match (hi, lo) {
                            (Some(h), Some(l)) => cur.push((h * 16 + l) as u8),
                            _ => return Err(ShellError::Usage("bad \\x escape".into())),
                        }
                    }
                    Some('n') => cur.push(b'\n'),
                    Some('t') => cur.push(b'\t'),
                    Some(o) => {
                        let mut b = [0u8; 4];
                        cur.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
                    }
                    None => return Err(ShellError::Usage("dangling \\".into())),
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                in_word = true;
                let mut b = [0u8; 4];
                cur.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    if quote.is_some() {
        return Err(ShellError::Usage("unterminated quote".into()));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Quotes bytes for printing: printable ASCII as is, the rest as `\xNN`.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02X}");
            }
        }
    }
    s.push('"');
    s
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parsed `-x value` options and positional words.
pub(crate) struct Args {
    pub(crate) positional: Vec<Vec<u8>>,
    options: BTreeMap<String, Option<Vec<u8>>>,
}

/// Splits words into positionals and options; `flags` are options without a value.
pub(crate) fn parse_args(words: &[Vec<u8>], flags: &[&str]) -> Result<Args> {
    let mut positional = Vec::new();
    let mut options = BTreeMap::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let s = text(w);
        if s.starts_with('-') && s.len() > 1 && s.parse::<i64>().is_err() {
            let name = s.trim_start_matches('-').to_string();
            if flags.contains(&name.as_str()) {
                options.insert(name, None);
            } else {
                let v = it
                    .next()
                    .ok_or_else(|| ShellError::Usage(format!("option {s} needs a value")))?;
                options.insert(name, Some(v.clone()));
            }
        } else {
            positional.push(w.clone());
        }
    }
    Ok(Args {
        positional,
        options,
    })
}

impl Args {
    pub(crate) fn opt_str(&self, name: &str) -> Option<String> {
        self.options.get(name).and_then(|v| v.as_deref()).map(text)
    }

    pub(crate) fn opt_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.options.get(name).and_then(|v| v.clone())
    }

    pub(crate) fn opt_num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.opt_str(name) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ShellError::Usage(format!("-{name} expects a number, got {s:?}"))),
        }
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }
}

pub(crate) fn num<T: std::str::FromStr>(w: &[u8], what: &str) -> Result<T> {
    text(w)
        .parse()
        .map_err(|_| ShellError::Usage(format!("{what} must be a number, got {:?}", text(w))))
}

pub(crate) fn usage(s: &str) -> ShellError {
    ShellError::Usage(format!("usage: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_with_byte_escapes() {
        let w = split_words(r#"set "hash key" 'sk 1' v\x00\xFFz"#).unwrap();
        assert_eq!(
            w,
            vec![
                b"set".to_vec(),
                b"hash key".to_vec(),
                b"sk 1".to_vec(),
                vec![b'v', 0, 0xff, b'z']
            ]
        );
        assert!(split_words("get \"open").is_err());
        assert!(split_words("get \\x4").is_err());
        assert_eq!(split_words("   ").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            split_words("a \"\"").unwrap(),
            vec![b"a".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn values_print_escaped() {
        assert_eq!(escape(b"ab\x00\"c"), r#""ab\x00\"c""#);
    }

    #[test]
    fn options_and_positionals_separate() {
        let w = split_words("t -p 8 -r 3 -d").unwrap();
        let a = parse_args(&w, &["d"]).unwrap();
        assert_eq!(a.positional, vec![b"t".to_vec()]);
        assert_eq!(a.opt_num::<i32>("p").unwrap(), Some(8));
        assert!(a.flag("d"));
        // A negative number is a value, not an option.
        let w = split_words("incr hk sk -5").unwrap();
        assert_eq!(parse_args(&w, &[]).unwrap().positional.len(), 4);
        assert!(parse_args(&split_words("x -p").unwrap(), &[]).is_err());
    }
}
