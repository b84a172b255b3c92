//! Double-quoted string literals in the backslash dialect KDL and YAML share.
//!
//! Both languages escape `"`, `\`, newline, carriage return and tab with the same one-letter
//! escapes; they differ only in how any other control character is spelled (KDL `\u{1f}`, YAML
//! `\u001f`), so that part is the caller's. The lockfile writer and the devfile rewrite each
//! pass their own, and a change to the common part reaches both.

use std::fmt::Write as _;

/// `s` between double quotes, with `"`, `\`, `\n`, `\r` and `\t` escaped by a backslash and
/// every other control character written by `unicode`.
pub fn double_quoted(s: &str, unicode: fn(&mut String, char)) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => unicode(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// KDL's escape of a code point: `\u{1f}`, lower-case hex, no padding.
pub fn kdl_unicode(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", c as u32);
}

/// YAML's escape of a code point below U+10000: `\u001f`, four lower-case hex digits. (Control
/// characters all lie below U+00A0.)
pub fn yaml_unicode(out: &mut String, c: char) {
    let _ = write!(out, "\\u{:04x}", c as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_escapes_and_each_dialects_unicode() {
        let s = "a\"b\\c\nd\re\tf\u{1}g\u{7f}é";
        assert_eq!(
            double_quoted(s, kdl_unicode),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\u{1}g\\u{7f}é\""
        );
        assert_eq!(
            double_quoted(s, yaml_unicode),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fé\""
        );
    }
}
