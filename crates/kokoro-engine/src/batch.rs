//! Bulk work as `kokoro batch` reads and reports it (and the server's jobs will): items in JSONL
//! or one per line, each checked on its own so that a bad item fails alone, and the lines of the
//! manifest that says how each ended.
//!
//! - JSONL: one `{"id", "text", "voice"?, "speed"?, "lang"?}` per line; plain text: one item per
//!   line, ids `000001`, `000002`, ... from the line number. The input is JSONL when its first
//!   non-blank line starts with `{`.
//! - Ids must be plain file names ([`is_safe_id`]) and unique; text must be there; speed in range.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::string::FromUtf8Error;

use serde::{Deserialize, Serialize};

/// What an item takes when it does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemDefaults {
    pub voice: String,
    pub speed: f32,
    pub lang: Option<String>,
}

/// One JSONL line of the input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemLine {
    id: String,
    text: String,
    voice: Option<String>,
    speed: Option<f32>,
    lang: Option<String>,
}

/// What an item asks to be spoken.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSpec {
    pub text: String,
    pub voice: String,
    pub speed: f32,
    pub lang: Option<String>,
}

/// Why an item cannot be spoken, with a stable code (`bad_id`, `bad_item`, `bad_text`,
/// `nothing_to_say`, `bad_speed`).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    pub message: String,
    pub code: &'static str,
}

/// An item to speak, or the reason it cannot be.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// Input line, from 1.
    pub line: usize,
    pub what: Result<ItemSpec, ItemError>,
}

fn error(message: String, code: &'static str) -> ItemError {
    ItemError { message, code }
}

/// The items of an input's lines (numbered from 1; a line that is not UTF-8 comes as its error).
/// Blank lines are skipped.
pub fn parse_items(lines: Vec<(usize, Result<String, FromUtf8Error>)>, defaults: &ItemDefaults) -> Vec<Item> {
    let jsonl = lines.iter().find_map(|(_, l)| l.as_ref().ok().map(|l| l.trim()).filter(|l| !l.is_empty())).is_some_and(|l| l.starts_with('{'));
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for (line, text) in lines {
        let text = text.map(|t| t.trim_end_matches('\r').to_string());
        if text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
            continue;
        }
        let plain_id = format!("{line:06}");
        let item = match text {
            Err(e) => Item { id: plain_id, line, what: Err(error(format!("not UTF-8 (invalid byte at {})", e.utf8_error().valid_up_to()), "bad_text")) },
            Ok(text) if jsonl => match serde_json::from_str::<ItemLine>(&text) {
                Err(e) => Item { id: stand_in(line, &seen), line, what: Err(error(format!("not a JSON item: {e}"), "bad_item")) },
                Ok(i) => {
                    let what = if !is_safe_id(&i.id) {
                        Err(error(format!("id {:?} is not a safe file name (1-128 of A-Z a-z 0-9 . _ -, not starting with '.')", i.id), "bad_id"))
                    } else {
                        spec(defaults, i.text, i.voice, i.speed, i.lang)
                    };
                    let id = if is_safe_id(&i.id) { i.id } else { stand_in(line, &seen) };
                    Item { id, line, what }
                }
            },
            Ok(text) => Item { id: plain_id, line, what: spec(defaults, text, None, None, None) },
        };
        if !seen.insert(item.id.clone()) {
            let id = stand_in(line, &seen);
            seen.insert(id.clone());
            items.push(Item { id, line, what: Err(error(format!("id {:?} repeats an earlier line's", item.id), "bad_id")) });
            continue;
        }
        items.push(item);
    }
    items
}

/// The id of an item whose own cannot be used: `line-N`, or `line-N-2`, ... when an item took
/// that name itself, so that no two items share an id.
fn stand_in(line: usize, seen: &HashSet<String>) -> String {
    let base = format!("line-{line}");
    (1..).map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") }).find(|id| !seen.contains(id)).expect("an unused id")
}

fn spec(defaults: &ItemDefaults, text: String, voice: Option<String>, speed: Option<f32>, lang: Option<String>) -> Result<ItemSpec, ItemError> {
    if text.trim().is_empty() {
        return Err(error("no text".into(), "nothing_to_say"));
    }
    let speed = speed.unwrap_or(defaults.speed);
    if !(crate::MIN_SPEED..=crate::MAX_SPEED).contains(&speed) {
        return Err(error(format!("speed must be between {} and {}, got {speed}", crate::MIN_SPEED, crate::MAX_SPEED), "bad_speed"));
    }
    Ok(ItemSpec { text, voice: voice.unwrap_or_else(|| defaults.voice.clone()), speed, lang: lang.or_else(|| defaults.lang.clone()) })
}

/// An id that is a plain file name everywhere: no separators, no `..`, no hidden files.
pub fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && !id.starts_with('.') && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// One line of `manifest.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestLine {
    pub id: String,
    pub file: Option<String>,
    pub seconds: Option<f64>,
    /// `ok` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub code: Option<String>,
}

impl ManifestLine {
    pub fn ok(id: &str, file: String, seconds: f64) -> Self {
        Self { id: id.to_string(), file: Some(file), seconds: Some(seconds), status: "ok".into(), error: None, code: None }
    }

    pub fn failed(id: &str, error: String, code: &str) -> Self {
        Self { id: id.to_string(), file: None, seconds: None, status: "failed".into(), error: Some(error), code: Some(code.to_string()) }
    }
}

/// A manifest written before: its last line per id; unreadable lines (an interrupted write) skipped.
pub fn read_manifest(path: &Path) -> HashMap<String, ManifestLine> {
    let Ok(text) = std::fs::read_to_string(path) else { return HashMap::new() };
    text.lines().filter_map(|l| serde_json::from_str::<ManifestLine>(l).ok()).map(|l| (l.id.clone(), l)).collect()
}

/// The manifest while a run goes on: lines appended, one write each, flushed, so an interrupted
/// run leaves at most an unfinished last line (which [`read_manifest`] skips).
pub struct ManifestWriter {
    file: std::fs::File,
}

impl ManifestWriter {
    /// Starts `path` afresh with `lines` (kept from before), atomically.
    pub fn start<'a>(path: &Path, lines: impl Iterator<Item = &'a ManifestLine>) -> std::io::Result<Self> {
        let mut text = String::new();
        for line in lines {
            text.push_str(&manifest_text(line));
        }
        crate::files::write_atomic(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self { file })
    }

    /// Appends one line.
    pub fn append(&mut self, line: &ManifestLine) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(manifest_text(line).as_bytes())?;
        // On the disk before the item counts as done (a power cut must not lose it).
        self.file.sync_data()
    }
}

/// A manifest line as written, newline included.
fn manifest_text(line: &ManifestLine) -> String {
    let mut text = serde_json::to_string(line).expect("a manifest line is plain JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<(usize, Result<String, FromUtf8Error>)> {
        text.iter().enumerate().map(|(i, l)| (i + 1, Ok(l.to_string()))).collect()
    }

    fn defaults() -> ItemDefaults {
        ItemDefaults { voice: "af_heart".into(), speed: 1.0, lang: None }
    }

    #[test]
    fn ids_are_plain_file_names() {
        for ok in ["a", "item-1", "chapter_02.part.3", "000001"] {
            assert!(is_safe_id(ok), "{ok}");
        }
        for bad in ["", ".hidden", "..", "../x", "a/b", "a\\b", "a b", "é", "x\0", &"a".repeat(129)] {
            assert!(!is_safe_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn each_bad_item_fails_alone_with_its_code() {
        let items = parse_items(
            lines(&[
                r#"{"id": "a", "text": "Hello."}"#,
                r#"{"id": "../b", "text": "Hi."}"#,
                r#"{"id": "c", "text": "  "}"#,
                "",
                r#"{"id": "d", "text": "Fast.", "speed": 9}"#,
                r#"{"id": "a", "text": "Again."}"#,
                "not json",
                r#"{"id": "e", "text": "Mine.", "voice": "bf_emma", "lang": "en-gb"}"#,
            ]),
            &defaults(),
        );
        let codes: Vec<(&str, Option<&str>)> = items.iter().map(|i| (i.id.as_str(), i.what.as_ref().err().map(|e| e.code))).collect();
        assert_eq!(
            codes,
            [("a", None), ("line-2", Some("bad_id")), ("c", Some("nothing_to_say")), ("d", Some("bad_speed")), ("line-6", Some("bad_id")), ("line-7", Some("bad_item")), ("e", None)]
        );
        assert_eq!(items[0].what, Ok(ItemSpec { text: "Hello.".into(), voice: "af_heart".into(), speed: 1.0, lang: None }));
        assert_eq!(items[6].what, Ok(ItemSpec { text: "Mine.".into(), voice: "bf_emma".into(), speed: 1.0, lang: Some("en-gb".into()) }));
        // An item named like a stand-in keeps its name; the stand-in moves aside.
        let taken = parse_items(lines(&[r#"{"id": "line-2", "text": "Mine."}"#, r#"{"id": "../x", "text": "Hi."}"#]), &defaults());
        assert_eq!(taken.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["line-2", "line-2-2"]);
        let plain = parse_items(lines(&["First line.", "", "Third line."]), &defaults());
        assert_eq!(plain.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["000001", "000003"]);
    }
}
