//! A small JSON parser that keeps each value's raw text: StarRocks' JSON scanner reads a number
//! into a VARCHAR column as the token as written, DECIMAL columns get the exact number text, and
//! JSON columns are re-parsed by serde_json from the raw text.

/// A JSON value with its raw text.
#[derive(Debug)]
pub(crate) struct J<'a> {
    /// The value's text in the document.
    pub(crate) raw: &'a str,
    /// The value.
    pub(crate) v: JV<'a>,
}

/// A JSON value's kind and contents.
#[derive(Debug)]
pub(crate) enum JV<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number (its text is the raw text).
    Num,
    /// A string, unescaped.
    Str(String),
    /// An array.
    Arr(Vec<J<'a>>),
    /// An object, members in order.
    Obj(Vec<(String, J<'a>)>),
}

impl J<'_> {
    /// The kind's name (`null`, `boolean`, `number`, `string`, `array`, `object`).
    pub(crate) fn kind(&self) -> &'static str {
        match self.v {
            JV::Null => "null",
            JV::Bool(_) => "boolean",
            JV::Num => "number",
            JV::Str(_) => "string",
            JV::Arr(_) => "array",
            JV::Obj(_) => "object",
        }
    }
}

/// Parses a whole JSON document (whitespace around it allowed, nothing else).
pub(crate) fn parse_json(s: &str) -> Result<J<'_>, String> {
    let mut p = JsonParser { s, b: s.as_bytes(), i: 0, depth: 0 };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("trailing characters at byte {}", p.i));
    }
    Ok(v)
}

struct JsonParser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> JsonParser<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn value(&mut self) -> Result<J<'a>, String> {
        let start = self.i;
        let v = match self.b.get(self.i) {
            None => return self.err("unexpected end"),
            Some(b'{') => {
                self.enter()?;
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return self.err("expected a key");
                        }
                        let key = self.string()?;
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return self.err("expected ':'");
                        }
                        self.i += 1;
                        self.ws();
                        let v = self.value()?;
                        members.push((key, v));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return self.err("expected ',' or '}'"),
                        }
                    }
                }
                self.depth -= 1;
                JV::Obj(members)
            }
            Some(b'[') => {
                self.enter()?;
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        items.push(self.value()?);
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return self.err("expected ',' or ']'"),
                        }
                    }
                }
                self.depth -= 1;
                JV::Arr(items)
            }
            Some(b'"') => JV::Str(self.string()?),
            Some(b't') => self.literal("true", JV::Bool(true))?,
            Some(b'f') => self.literal("false", JV::Bool(false))?,
            Some(b'n') => self.literal("null", JV::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                JV::Num
            }
            Some(_) => return self.err("unexpected character"),
        };
        Ok(J { raw: &self.s[start..self.i], v })
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > 256 { self.err("nesting too deep") } else { Ok(()) }
    }

    fn literal(&mut self, word: &str, v: JV<'a>) -> Result<JV<'a>, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("invalid literal")
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let digits = |p: &mut Self| {
            let start = p.i;
            while p.i < p.b.len() && p.b[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - start
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.err("invalid number"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| format!("bad \\u escape at {}", self.i))?;
        let v = u32::from_str_radix(h, 16).map_err(|_| format!("bad \\u escape at {}", self.i))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.b.len()
                && !matches!(self.b[self.i], b'"' | b'\\')
                && self.b[self.i] >= 0x20
            {
                self.i += 1;
            }
            out.push_str(&self.s[start..self.i]);
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = *self.b.get(self.i).ok_or_else(|| "unterminated string".to_owned())?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return self.err("lone surrogate");
                                }
                                self.i += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return self.err("bad surrogate pair");
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                            }
                            out.push(
                                char::from_u32(cp).ok_or_else(|| "bad code point".to_owned())?,
                            );
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }
}

impl<'a> J<'a> {
    /// The value of `key` (case-insensitive; the last of duplicates) in an object.
    pub(crate) fn get_key_ci(&'a self, key: &str) -> Option<&'a J<'a>> {
        match &self.v {
            JV::Obj(members) => {
                members.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Follows a path of object keys (exact match; the last of duplicates); `None` when a key
    /// is missing or a value on the way is not an object.
    pub(crate) fn navigate(&'a self, path: &[String]) -> Option<&'a J<'a>> {
        let mut cur = self;
        for key in path {
            cur = match &cur.v {
                JV::Obj(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// Minifies JSON text (`simdjson::minify`): drops the whitespace outside strings and keeps
/// everything else (key order, escapes, number tokens) as written. `raw` must be valid JSON.
pub(crate) fn minify(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_parser_keeps_raw_text() {
        let j = parse_json(r#" {"a": 12345678901234567890.123, "b": [1, "x\u00e9"]} "#).unwrap();
        let JV::Obj(m) = &j.v else { panic!() };
        assert_eq!(m[0].1.raw, "12345678901234567890.123");
        assert_eq!(m[1].1.raw, r#"[1, "x\u00e9"]"#);
        assert!(parse_json("{} x").is_err());
        assert!(parse_json("[1,]").is_err());
    }

    #[test]
    fn minify_keeps_order_and_escapes() {
        assert_eq!(
            minify(r#" { "b" : [1, 2.50E1] , "a": "x \" y\u00e9" } "#),
            r#"{"b":[1,2.50E1],"a":"x \" y\u00e9"}"#
        );
    }
}
