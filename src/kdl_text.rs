//! Reading and parsing the KDL files a user controls: the manifest and the lockfile.
//!
//! Both are small (a manifest is a few kilobytes, a lockfile of a large registry well under a
//! megabyte), so a file is read with a size limit: reading stops one byte past the limit instead
//! of trusting the file's reported size (`/dev/zero` reports 0 and never ends).
//!
//! The `kdl` parser is recursive: every `{` block, every `(` of a type annotation, every nested
//! `/* */` comment, every `*` and `/` inside a block comment and every chained `/-` takes one
//! more level of the parser's stack, so a few thousand of them abort the process with a stack
//! overflow, which no error handling can catch. [`parse`] therefore first scans the text for
//! those constructs (a lexer that knows strings and comments, not a parser) and refuses a file
//! nested deeper than [`MAX_DEPTH`] with the offset of the first token too deep; it then parses
//! on a thread of its own with a large stack ([`PARSER_STACK`], reserved address space, only
//! touched as deep as the parse goes), so the limits hold in debug builds and in test threads
//! whose default stack is small. The two files airgap reads nest two levels deep.

use std::io::Read;
use std::path::Path;

use kdl::{KdlDocument, KdlError};

/// The deepest nesting accepted: of `{` blocks, of `(`, of `/* */` comments, and the longest
/// chain of `/-` with nothing else between them.
pub const MAX_DEPTH: usize = 64;

/// The most `*` and `/` characters one block comment (with the comments nested in it) may hold.
pub const MAX_COMMENT_MARKS: usize = 4096;

/// The stack of the parser thread. Address space only: the memory is touched as deep as the
/// parse goes (a few megabytes at [`MAX_DEPTH`] in a debug build).
pub const PARSER_STACK: usize = 256 << 20;

/// Reads the text of `path`, refusing a file longer than `limit` bytes or not UTF-8.
pub fn read_limited(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes)
        .map_err(|e| ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Why [`read_limited`] read nothing.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// The file is longer than the limit.
    TooLarge,
}

/// A file longer than airgap reads.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{}` is larger than {}: airgap reads at most that much of a {what}", path.display(), human(*limit))]
#[diagnostic(
    code(airgap::too_large),
    help("check that the path names a {what}: a {what} is a small text file")
)]
pub struct TooLarge {
    pub path: std::path::PathBuf,
    pub limit: u64,
    /// "manifest", "lockfile".
    pub what: &'static str,
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why [`parse`] gave no document.
#[derive(Debug)]
pub enum Rejected {
    /// Nested deeper than the limits, found before parsing.
    TooDeep(TooDeep),
    /// The parser's own error.
    Kdl(KdlError),
    /// The parser thread could not start.
    Thread(std::io::Error),
}

/// The first token that nests too deep: its byte span and what it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub offset: usize,
    pub len: usize,
    pub nesting: Nesting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    Blocks,
    Parentheses,
    Comments,
    CommentMarks,
    Slashdashes,
}

impl TooDeep {
    /// The problem in words, for a diagnostic's message.
    pub fn message(&self) -> String {
        match self.nesting {
            Nesting::Blocks => format!("`{{ }}` blocks are nested more than {MAX_DEPTH} deep"),
            Nesting::Parentheses => format!("more than {MAX_DEPTH} `(` are open at once"),
            Nesting::Comments => format!("`/* */` comments are nested more than {MAX_DEPTH} deep"),
            Nesting::CommentMarks => {
                format!("a `/* */` comment holds more than {MAX_COMMENT_MARKS} `*` and `/`")
            }
            Nesting::Slashdashes => format!("more than {MAX_DEPTH} `/-` in a row"),
        }
    }

    /// The diagnostic's label.
    pub fn label(&self) -> &'static str {
        match self.nesting {
            Nesting::CommentMarks => "this comment",
            _ => "too deep from here",
        }
    }
}

/// Parses KDL 2 text, refusing nesting deeper than the limits (see the module docs).
pub fn parse(text: &str) -> Result<KdlDocument, Rejected> {
    check_nesting(text).map_err(Rejected::TooDeep)?;
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("kdl-parser".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || KdlDocument::parse_v2(text))
            .map_err(Rejected::Thread)?;
        match parser.join() {
            Ok(parsed) => parsed.map_err(Rejected::Kdl),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Scans `text` for nesting beyond the limits. A lexer, not a parser: it skips strings and
/// comments and counts the tokens that make `kdl`'s parser recurse; on invalid text it may
/// count differently from the parser, which then reports the syntax error.
pub fn check_nesting(text: &str) -> Result<(), TooDeep> {
    let b = text.as_bytes();
    let too_deep = |offset, len, nesting| TooDeep {
        offset,
        len,
        nesting,
    };
    let (mut braces, mut parens, mut slashdashes) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = skip_string(b, i, 0);
                slashdashes = 0;
                continue;
            }
            b'#' => {
                let hashes = b[i..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + hashes) == Some(&b'"') {
                    i = skip_string(b, i + hashes, hashes);
                } else {
                    i += hashes;
                }
                slashdashes = 0;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = b[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i)?;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'-') => {
                slashdashes += 1;
                if slashdashes > MAX_DEPTH {
                    return Err(too_deep(i, 2, Nesting::Slashdashes));
                }
                i += 2;
                continue;
            }
            b'{' => {
                braces += 1;
                slashdashes = 0;
                if braces > MAX_DEPTH {
                    return Err(too_deep(i, 1, Nesting::Blocks));
                }
            }
            b'}' => braces = braces.saturating_sub(1),
            b'(' => {
                parens += 1;
                if parens > MAX_DEPTH {
                    return Err(too_deep(i, 1, Nesting::Parentheses));
                }
            }
            b')' => parens = parens.saturating_sub(1),
            b' ' | b'\t' | b'\r' | b'\n' | b'\\' => {}
            _ => slashdashes = 0,
        }
        i += 1;
    }
    Ok(())
}

/// The offset after the string starting with the `"` at `open`; `hashes` is the number of `#`
/// before it (a raw string). An unterminated string runs to the end.
fn skip_string(b: &[u8], open: usize, hashes: usize) -> usize {
    let multi_line = b[open..].starts_with(b"\"\"\"");
    let mut i = open + if multi_line { 3 } else { 1 };
    while i < b.len() {
        match b[i] {
            b'\\' if hashes == 0 => i += 2,
            b'"' => {
                let quotes = if multi_line { 3 } else { 1 };
                let end = i + quotes + hashes;
                if b[i..].starts_with(&b"\"\"\""[..quotes])
                    && end <= b.len()
                    && b[i + quotes..end].iter().all(|c| *c == b'#')
                {
                    return end;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// The offset after the block comment opening at `open`, or the place it nests too deep.
fn skip_block_comment(b: &[u8], open: usize) -> Result<usize, TooDeep> {
    let (mut level, mut marks) = (0usize, 0usize);
    let mut i = open;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            level += 1;
            if level > MAX_DEPTH {
                return Err(TooDeep {
                    offset: i,
                    len: 2,
                    nesting: Nesting::Comments,
                });
            }
            marks += 2;
            i += 2;
        } else if b[i..].starts_with(b"*/") {
            level -= 1;
            marks += 2;
            i += 2;
            if level == 0 {
                return Ok(i);
            }
        } else {
            if matches!(b[i], b'*' | b'/') {
                marks += 1;
            }
            i += 1;
        }
        if marks > MAX_COMMENT_MARKS {
            return Err(TooDeep {
                offset: open,
                len: 2,
                nesting: Nesting::CommentMarks,
            });
        }
    }
    Ok(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nesting(text: &str) -> Option<Nesting> {
        check_nesting(text).err().map(|e| e.nesting)
    }

    #[test]
    fn ordinary_text_passes() {
        let text = r##"
            // a comment with { and ( and /- and /* unbalanced
            source "a{{{" git="https://x/y" /* (((( */ {
                stacks "go" #"raw {{{ "# """
                multi {{{{
                """
            }
        "##;
        assert_eq!(nesting(text), None);
    }

    #[test]
    fn every_recursive_construct_has_a_limit() {
        let deep = |open: &str, close: &str| {
            format!(
                "{}{}",
                open.repeat(MAX_DEPTH + 1),
                close.repeat(MAX_DEPTH + 1)
            )
        };
        assert_eq!(nesting(&deep("a {", "}")), Some(Nesting::Blocks));
        assert_eq!(nesting(&deep("a (", "")), Some(Nesting::Parentheses));
        assert_eq!(nesting(&deep("/*", "*/")), Some(Nesting::Comments));
        assert_eq!(nesting(&deep("/- ", "")), Some(Nesting::Slashdashes));
        let stars = format!("/*{}*/", "*".repeat(MAX_COMMENT_MARKS));
        assert_eq!(nesting(&stars), Some(Nesting::CommentMarks));
        assert_eq!(nesting(&deep("a {", "}")[2..]), Some(Nesting::Blocks));
        assert_eq!(nesting(&format!("\"{}\"", "{".repeat(1000))), None);
        assert_eq!(nesting(&format!("##\"{}\"##", "{\"#".repeat(1000))), None);
    }

    #[test]
    fn the_limits_hold_in_a_small_stack() {
        // Every construct at its limit parses (or fails) without overflowing, even on a
        // thread with a test's small stack: the parser runs on its own thread.
        let at = |open: &str, close: &str| {
            format!("{}{}", open.repeat(MAX_DEPTH), close.repeat(MAX_DEPTH))
        };
        let cases = [
            at("a {", "}"),
            at("a (", ""),
            at("/*", "*/"),
            format!("a {}1", "/- ".repeat(MAX_DEPTH)),
            format!("/*{}*/", "*".repeat(MAX_COMMENT_MARKS - 4)),
        ];
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                for case in &cases {
                    assert!(!matches!(parse(case), Err(Rejected::TooDeep(_))));
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
