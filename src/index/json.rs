//! JSON text as the upstream tools write it.
//!
//! - `index.json`: Go's `json.MarshalIndent(index, "", "  ")` written without a trailing
//!   newline. Its layout is serde_json's pretty layout with a two-space indent (`"key": value`,
//!   `[]`/`{}` for empty containers); its strings differ: Go escapes `<`, `>`, `&` as
//!   `\u003c`, `\u003e`, `\u0026` and U+2028/U+2029 as `\u2028`/`\u2029` (HTML-safe output).
//!   Both write `\b \f \n \r \t`, other control characters as lowercase `\u00XX`, and leave
//!   DEL and other non-ASCII text as it is.
//! - `last_modified.json`: `jq`'s pretty output: the same layout, no HTML escaping, DEL
//!   written as `\u007f`.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// A pretty formatter with a two-space indent that escapes a few more characters.
pub struct EscapingFormatter {
    pretty: PrettyFormatter<'static>,
    extra: fn(char) -> Option<&'static str>,
}

impl EscapingFormatter {
    /// The formatter for `index.json` (Go's `encoding/json`).
    pub fn go() -> Self {
        EscapingFormatter {
            pretty: PrettyFormatter::with_indent(b"  "),
            extra: go_html_escape,
        }
    }

    /// The formatter for `last_modified.json` (`jq`).
    pub fn jq() -> Self {
        EscapingFormatter {
            pretty: PrettyFormatter::with_indent(b"  "),
            extra: jq_escape,
        }
    }
}

fn go_html_escape(c: char) -> Option<&'static str> {
    match c {
        '<' => Some("\\u003c"),
        '>' => Some("\\u003e"),
        '&' => Some("\\u0026"),
        '\u{2028}' => Some("\\u2028"),
        '\u{2029}' => Some("\\u2029"),
        _ => None,
    }
}

fn jq_escape(c: char) -> Option<&'static str> {
    match c {
        '\u{7f}' => Some("\\u007f"),
        _ => None,
    }
}

/// Serializes `value` into memory with `formatter`.
pub fn serialize_with<T: Serialize + ?Sized>(value: &T, formatter: EscapingFormatter) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Our types hold only strings, bools, lists and string-keyed maps: writing them into a
    // Vec cannot fail.
    value
        .serialize(&mut ser)
        .expect("serializing index types into memory cannot fail");
    out
}

impl Formatter for EscapingFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if let Some(escaped) = (self.extra)(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                writer.write_all(escaped.as_bytes())?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        self.pretty.write_char_escape(writer, char_escape)
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(writer)
    }
}

/// Serializes a JSON value with object keys sorted by bytes at every depth, as Go does for
/// maps, whatever map type serde_json was built with (`preserve_order` keeps insertion order).
pub struct SortedValue<'a>(pub &'a serde_json::Value);

impl Serialize for SortedValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut m = serializer.serialize_map(Some(keys.len()))?;
                for k in keys {
                    m.serialize_entry(k, &SortedValue(&map[k]))?;
                }
                m.end()
            }
            serde_json::Value::Array(items) => {
                let mut s = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    s.serialize_element(&SortedValue(item))?;
                }
                s.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// `serialize_with` helper for the `attributes` map.
pub fn sorted_attributes<S: serde::Serializer>(
    attributes: &std::collections::BTreeMap<String, serde_json::Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(attributes.iter().map(|(k, v)| (k, SortedValue(v))))
}
