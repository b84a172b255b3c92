//! `--format json`: one JSON document per command, on stdout, when the command ends — whether
//! it succeeded or failed — for scripts and CI jobs. Progress and diagnostics stay on stderr;
//! exit codes are the same as in text mode.
//!
//! The document is an object: `command`, `ok`, `exit_code`, `error` (`{code, message}`, only
//! when the command failed with a diagnostic), and the command's own fields, which commands add
//! as they learn them ([`set`]). Each command's document has a JSON Schema in
//! `schema/output/<command>.schema.json`.
//!
//! The document is kept here rather than threaded through every command's return value: a
//! command that fails half-way has still said what it knew (the lock changes it found, the
//! steps that failed).

use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document on stdout at the end.
    Json,
}

static FORMAT: OnceLock<Format> = OnceLock::new();
static DOC: Mutex<Option<Map<String, Value>>> = Mutex::new(None);

/// Sets the format for this process (once, from the command line).
pub fn init(format: Format) {
    let _ = FORMAT.set(format);
}

/// Whether the command's result goes out as JSON (then stdout carries nothing else).
pub fn json() -> bool {
    FORMAT.get() == Some(&Format::Json)
}

/// Adds a field to the command's document.
pub fn set(key: &str, value: impl serde::Serialize) {
    if !json() {
        return;
    }
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    let mut doc = DOC.lock().unwrap_or_else(|e| e.into_inner());
    doc.get_or_insert_with(Map::new)
        .insert(key.to_string(), value);
}

/// Prints the document of `command`, which ended with `exit_code` and, if it failed with a
/// diagnostic, `error` (its code and its plain rendering).
pub fn finish(command: &str, exit_code: u8, error: Option<(String, String)>) {
    if !json() {
        return;
    }
    let mut doc = DOC
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    doc.insert("command".into(), command.into());
    doc.insert("ok".into(), (exit_code == 0).into());
    doc.insert("exit_code".into(), exit_code.into());
    if let Some((code, message)) = error {
        doc.insert(
            "error".into(),
            serde_json::json!({"code": code, "message": message}),
        );
    }
    let text = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    println!("{text}");
}
