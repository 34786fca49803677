//! A strict JSON reader (RFC 8259) over one event's bytes, in one pass and without copies.
//!
//! It is never more lenient than msgspec: where the two could differ (lone surrogates,
//! integers beyond 64 bits, numbers out of float range, deep nesting) it gives up, and the
//! decoder then leaves the batch to Python. Input must already be valid UTF-8.

use std::borrow::Cow;

const MAX_DEPTH: usize = 64;

/// A JSON value as msgspec decodes it: integers without `.`/`e` are ints, others floats.
/// Arrays and objects are skipped (and checked) as `Nested`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Nested,
}

pub struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader { text, bytes: text.as_bytes(), pos: 0 }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Option<Value<'a>> {
        self.bytes[self.pos..].starts_with(word.as_bytes()).then(|| {
            self.pos += word.len();
            value
        })
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.ws();
        (self.pos == self.bytes.len()).then_some(())
    }

    /// The members of an object, each handed to `member` with the reader at its value,
    /// which `member` must read.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        if self.closed(b'}')? {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            member(self, key)?;
            if self.separated(b'}')? {
                return Some(());
            }
        }
    }

    /// Right after an opening bracket: is it closed at once?
    fn closed(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let at_close = self.peek()? == close;
        if at_close {
            self.pos += 1;
        }
        Some(at_close)
    }

    /// After a member or element: `,` (false: another follows) or the closing bracket (true).
    fn separated(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let byte = self.peek()?;
        self.pos += 1;
        match byte {
            b',' => Some(false),
            _ => (byte == close).then_some(true),
        }
    }

    /// The next value; arrays and objects are checked and skipped.
    pub fn value(&mut self) -> Option<Value<'a>> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'{' | b'[' => self.skip(0).map(|()| Value::Nested),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            _ => self.number(),
        }
    }

    /// Is the next value an object?
    pub fn at_object(&mut self) -> bool {
        self.ws();
        self.peek() == Some(b'{')
    }

    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'{' => self.object(|reader, _| reader.skip(depth + 1)),
            b'[' => {
                self.pos += 1;
                if self.closed(b']')? {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if self.separated(b']')? {
                        return Some(());
                    }
                }
            }
            _ => self.value().map(|_| ()),
        }
    }

    #[inline]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        self.pos += plain_run(&self.bytes[start..]);
        if *self.bytes.get(self.pos)? != b'"' {
            return self.escaped(start).map(Cow::Owned);
        }
        self.pos += 1;
        // SAFETY: the text is UTF-8 and both ends of the slice are next to ASCII bytes.
        Some(Cow::Borrowed(unsafe { self.text.get_unchecked(start..self.pos - 1) }))
    }

    fn escaped(&mut self, start: usize) -> Option<String> {
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            self.pos += plain_run(&self.bytes[run..]);
            out.push_str(&self.text[run..self.pos]);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let escape = self.peek()?;
                    self.pos += 1;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.code_point()?,
                        _ => return None,
                    });
                }
                _ => return None, // a control character
            }
        }
    }

    /// After `\u`: a code point, from a surrogate pair where there is one.
    fn code_point(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                    return None;
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(first),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        // The digits go into `mantissa` (wrapping: beyond 19 digits the slow path reads the text).
        let mut mantissa: u64 = 0;
        let integer_digits = match self.peek()? {
            b'0' => {
                self.pos += 1;
                0
            }
            b'1'..=b'9' => self.accumulate(&mut mantissa),
            _ => return None,
        };
        let mut fraction_digits = 0;
        let mut leading_zeros = 0; // of the fraction, when the integer part is 0
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if integer_digits == 0 {
                leading_zeros = self.bytes[self.pos..].iter().take_while(|&&b| b == b'0').count();
            }
            fraction_digits = self.accumulate(&mut mantissa);
            if fraction_digits == 0 {
                return None;
            }
            float = true;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            float = true;
            exponent = true;
        }
        let significant = integer_digits + fraction_digits - leading_zeros;
        if !float {
            return if significant <= 18 {
                let value = mantissa as i64;
                Some(Value::Int(if negative { -value } else { value }))
            } else {
                self.text[start..self.pos].parse::<i64>().ok().map(Value::Int)
            };
        }
        // Clinger's fast path: an exact mantissa and power of ten, one correctly rounded
        // operation. Otherwise the standard library's parser, also correctly rounded.
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        if !exponent && significant <= 15 && fraction_digits <= 22 {
            let value = mantissa as f64 / POWERS[fraction_digits];
            return Some(Value::Float(if negative { -value } else { value }));
        }
        let value: f64 = self.text[start..self.pos].parse().ok()?;
        value.is_finite().then_some(Value::Float(value))
    }

    /// Reads digits into `mantissa`; how many.
    fn accumulate(&mut self, mantissa: &mut u64) -> usize {
        let start = self.pos;
        while let Some(&b) = self.bytes.get(self.pos) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.pos += 1;
        }
        self.pos - start
    }
}

/// Length of the run of bytes that need no attention in a string: all but `"`, `\\` and
/// control characters. (Eight bytes at a time was slower: most strings here are names of
/// a few bytes.)
fn plain_run(bytes: &[u8]) -> usize {
    bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Option<Value<'_>> {
        let mut reader = Reader::new(text);
        let value = reader.value()?;
        reader.end().map(|()| value)
    }

    #[test]
    fn scalars_as_msgspec_reads_them() {
        assert_eq!(one("-0"), Some(Value::Int(0)));
        assert_eq!(one(" 1e2 "), Some(Value::Float(100.0)));
        assert_eq!(one("0.1"), Some(Value::Float(0.1)));
        assert_eq!(one("-0.0"), Some(Value::Float(-0.0)));
        assert_eq!(one("123456789012345678"), Some(Value::Int(123456789012345678)));
        assert_eq!(one("-9223372036854775808"), Some(Value::Int(i64::MIN)));
        assert_eq!(one("0.000000000000000000000000001"), Some(Value::Float(1e-27)));
        assert_eq!(one("9007199254740993.0"), Some(Value::Float(9007199254740992.0)));
        assert_eq!(one(r#""a\u0062\ud83d\ude00""#), Some(Value::Str(Cow::Owned("ab\u{1F600}".into()))));
        assert_eq!(one(r#"[1, {"a": [true, null]}]"#), Some(Value::Nested));
    }

    #[test]
    fn refuses_what_msgspec_might_read_otherwise() {
        for text in [
            "1e999",
            "99999999999999999999",
            "01",
            "1.",
            "-",
            r#""\ud800""#,
            r#""\udc00""#,
            "\"a\tb\"",
            "[1,]",
            "{\"a\" 1}",
            "tru",
            "nul",
            "[",
            "1 2",
        ] {
            assert_eq!(one(text), None, "{text}");
        }
    }
}
