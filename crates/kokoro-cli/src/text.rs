//! Text input for `say` and `phonemize`: the TEXT argument or a file (`-` for stdin), and the
//! dialect, explicit or taken from the voice.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use kokoro_text::{ChunkOptions, Dialect, FrontEnd};
use serde::Serialize;

use crate::say::InputError;

#[derive(Args, Debug, Clone)]
pub struct TextArgs {
    /// English text to speak (any length: it is cut into chunks of at most 510 phonemes).
    #[arg(conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from a file instead (`-` for standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Dialect of the G2P: en-us or en-gb (default: from the voice, a* American, b* British).
    #[arg(long)]
    pub lang: Option<String>,
    /// One sentence per chunk instead of packing sentences up to 510 phonemes (first audio sooner).
    #[arg(long)]
    pub no_pack: bool,
}

impl TextArgs {
    /// The text, read in full.
    pub fn read(&self) -> Result<String> {
        let text = match (&self.text, &self.file) {
            (Some(t), _) => t.clone(),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).context("reading standard input")?;
                String::from_utf8(bytes).map_err(|e| InputError::NotUtf8 {
                    what: "standard input".into(),
                    at: e.utf8_error().valid_up_to(),
                })?
            }
            (None, Some(path)) => {
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                String::from_utf8(bytes).map_err(|e| InputError::NotUtf8 {
                    what: path.display().to_string(),
                    at: e.utf8_error().valid_up_to(),
                })?
            }
            (None, None) => return Err(InputError::NoText.into()),
        };
        if text.trim().is_empty() {
            return Err(InputError::NoText.into());
        }
        Ok(text)
    }

    pub fn dialect(&self, voice: Option<&str>) -> Result<Dialect> {
        match &self.lang {
            Some(lang) => Ok(lang.parse().map_err(|_| InputError::UnknownLanguage(lang.clone()))?),
            None => Ok(voice.and_then(Dialect::for_voice).unwrap_or(Dialect::EnUs)),
        }
    }

    pub fn chunk_options(&self) -> ChunkOptions {
        ChunkOptions { pack_sentences: !self.no_pack, ..ChunkOptions::default() }
    }
}

#[derive(Args, Debug)]
pub struct PhonemizeArgs {
    #[command(flatten)]
    text: TextArgs,
    /// Print one JSON object per chunk (source span, phonemes, word spans, guessed words).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ChunkJson<'a> {
    index: usize,
    text: &'a str,
    source: [usize; 2],
    phonemes: &'a str,
    phoneme_count: usize,
    words: Vec<WordJson<'a>>,
    guessed: &'a [String],
}

#[derive(Serialize)]
struct WordJson<'a> {
    text: &'a str,
    source: [usize; 2],
    phonemes: [usize; 2],
}

/// `kokoro phonemize`: one line of phonemes per chunk on standard output.
pub fn phonemize(args: PhonemizeArgs) -> Result<()> {
    let text = args.text.read()?;
    let front = FrontEnd::new(args.text.dialect(None)?)?;
    for chunk in front.chunks_with(&text, args.text.chunk_options()) {
        let chunk = chunk?;
        if args.json {
            let json = ChunkJson {
                index: chunk.index,
                text: &text[chunk.source.clone()],
                source: [chunk.source.start, chunk.source.end],
                phonemes: &chunk.phonemes,
                phoneme_count: chunk.len(),
                words: chunk
                    .words
                    .iter()
                    .map(|w| WordJson {
                        text: &text[w.source.clone()],
                        source: [w.source.start, w.source.end],
                        phonemes: [w.phonemes.start, w.phonemes.end],
                    })
                    .collect(),
                guessed: &chunk.guessed,
            };
            println!("{}", serde_json::to_string(&json)?);
        } else {
            println!("{}", chunk.phonemes);
        }
        if !chunk.guessed.is_empty() {
            eprintln!("note: not in the lexicon, read by letter-to-sound: {}", chunk.guessed.join(", "));
        }
    }
    Ok(())
}
