//! Pieces of JSON text written exactly as Python's `json` module writes them.

/// Appends `text` as a JSON string, as `json.dumps(..., ensure_ascii=False)` writes a
/// `str` whose UTF-8 form is `text`: quotes, backslashes and control characters are
/// escaped, and every other character is copied as it is.
pub fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    for (index, &byte) in text.iter().enumerate() {
        // Every byte of a multi-byte UTF-8 sequence is 0x80 or above, so a byte
        // below 0x20 or a quote or backslash is always a whole character.
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_DIGITS[usize::from(byte >> 4)],
                HEX_DIGITS[usize::from(byte & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&text[copied..index]);
        out.extend_from_slice(escape);
        copied = index + 1;
    }
    out.extend_from_slice(&text[copied..]);
    out.push(b'"');
}

/// The decimal form of an i64, as `str(int)` and `json.dumps` write it.
pub struct IntText {
    bytes: [u8; 20],
    start: usize,
}

impl IntText {
    #[must_use]
    pub fn new(value: i64) -> Self {
        let mut bytes = [0u8; 20];
        let mut start = bytes.len();
        let mut magnitude = value.unsigned_abs();
        loop {
            start -= 1;
            bytes[start] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            bytes[start] = b'-';
        }
        Self { bytes, start }
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Python writes `\u` escapes with lowercase hex digits.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::{push_string, IntText};

    #[test]
    fn int_text_matches_display() {
        let values = [
            0,
            1,
            -1,
            9,
            10,
            -10,
            99,
            100,
            i64::MAX,
            i64::MIN,
            151_935,
            -7_000_001,
        ];
        for value in values {
            assert_eq!(IntText::new(value).as_bytes(), value.to_string().as_bytes());
        }
    }

    fn quoted(text: &str) -> String {
        let mut out = Vec::new();
        push_string(&mut out, text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_and_non_ascii_text_is_copied() {
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(quoted("abc"), r#""abc""#);
        assert_eq!(
            quoted("naïve 東京 🙂 \u{7f} \u{2028}"),
            "\"naïve 東京 🙂 \u{7f} \u{2028}\""
        );
    }

    #[test]
    fn quotes_backslashes_and_controls_are_escaped() {
        assert_eq!(quoted("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quoted("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(
            quoted("\u{0}\u{1}\u{1b}\u{1f} "),
            r#""\u0000\u0001\u001b\u001f ""#
        );
    }

    #[test]
    fn every_control_character_has_its_python_form() {
        for code in 0u8..0x20 {
            let text = char::from(code).to_string();
            let expected = match code {
                b'\n' => "\"\\n\"".to_owned(),
                b'\r' => "\"\\r\"".to_owned(),
                b'\t' => "\"\\t\"".to_owned(),
                0x08 => "\"\\b\"".to_owned(),
                0x0c => "\"\\f\"".to_owned(),
                _ => format!("\"\\u{code:04x}\""),
            };
            assert_eq!(quoted(&text), expected, "{code:#x}");
        }
    }
}
