//! The front end proper: normalization, then misaki G2P, with spans back to the source.

use std::ops::Range;
use std::str::FromStr;

use misaki_rs::{G2P, Language};

use crate::TextError;
use crate::fallback::LetterToSound;
use crate::normalize::normalize;

/// English dialect of the G2P (misaki's `british` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    EnUs,
    EnGb,
}

impl Dialect {
    /// The dialect a Kokoro voice was trained on: `a*` voices American, `b*` British.
    /// `None` for the voices of other languages.
    pub fn for_voice(name: &str) -> Option<Self> {
        match name.as_bytes().first() {
            Some(b'a') => Some(Self::EnUs),
            Some(b'b') => Some(Self::EnGb),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnUs => "en-us",
            Self::EnGb => "en-gb",
        }
    }
}

impl FromStr for Dialect {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "en-us" | "us" | "a" | "en" => Ok(Self::EnUs),
            "en-gb" | "gb" | "b" | "en-uk" | "uk" => Ok(Self::EnGb),
            _ => Err(TextError::UnknownDialect(s.to_string())),
        }
    }
}

/// What a token of the phoneme string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A word (or number, or spelled-out symbol): it has a duration of its own.
    Word,
    /// Punctuation that ends a sentence (`.!?…`).
    SentenceEnd,
    /// Punctuation that ends a clause (`:;`).
    ClauseEnd,
    /// A comma or dash.
    Pause,
    /// Other punctuation (quotes, brackets).
    Other,
}

/// One token of the phonemized text.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte range in the text given to [`FrontEnd::phonemize`].
    pub source: Range<usize>,
    /// Character range (= phoneme id range) in [`Phonemized::phonemes`].
    pub phonemes: Range<usize>,
}

/// A phonemized piece of text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Phonemized {
    /// Phonemes in Kokoro's alphabet, single spaces between words, nothing outside the vocab.
    pub phonemes: String,
    /// Every token that produced phonemes, in order.
    pub tokens: Vec<Token>,
    /// Words that neither the lexicon nor the letter-to-sound fallback could read (dropped).
    pub unknown: Vec<String>,
    /// Words read by the letter-to-sound fallback.
    pub guessed: Vec<String>,
}

impl Phonemized {
    /// Length in phoneme ids.
    pub fn len(&self) -> usize {
        self.phonemes.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.phonemes.is_empty()
    }
}

/// Text in, Kokoro phonemes out. Building one loads the lexicons and the tagger (~0.15 s natively).
pub struct FrontEnd {
    dialect: Dialect,
    g2p: G2P,
    normalize: bool,
    /// Reads what misaki leaves unknown. It is applied after misaki, not through misaki's own
    /// fallback hook: the hook changes the reading of neighbouring words (stress of "by" before
    /// the word, "8-millimeter" handed over whole), this way every word misaki knows stays
    /// exactly as reference Kokoro says it.
    lts: Option<&'static LetterToSound>,
}

const UNKNOWN: &str = "❓";

impl FrontEnd {
    /// The full front end: normalization, misaki G2P, letter-to-sound for unknown words.
    pub fn new(dialect: Dialect) -> Result<Self, TextError> {
        Ok(Self { dialect, g2p: g2p(dialect)?, normalize: true, lts: Some(LetterToSound::shared(dialect)) })
    }

    /// Exactly reference Kokoro's G2P (misaki 0.9.4, no fallback, no extra normalization): unknown
    /// words are dropped. Used to measure agreement, and for users who want the reference.
    pub fn reference(dialect: Dialect) -> Result<Self, TextError> {
        Ok(Self { dialect, g2p: g2p(dialect)?, normalize: false, lts: None })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// misaki's own output string for `text` (with `❓` for unknown words), after this front end's
    /// normalization if it has one.
    pub fn raw(&self, text: &str) -> Result<String, TextError> {
        let text = if self.normalize { normalize(text, self.dialect).text } else { text.to_string() };
        Ok(self.run(&text)?.0)
    }

    fn run(&self, text: &str) -> Result<(String, Vec<misaki_rs::MToken>), TextError> {
        self.g2p.g2p(text).map_err(|e| TextError::G2p { text: text.to_string(), message: e.to_string() })
    }

    /// Phonemizes one piece of text (no chunking: see [`crate::chunk`] for long text).
    pub fn phonemize(&self, text: &str) -> Result<Phonemized, TextError> {
        let text = &*blank_controls(text);
        let normalized = if self.normalize {
            normalize(text, self.dialect)
        } else {
            crate::normalize::Normalized { text: text.to_string(), rewrites: Vec::new() }
        };
        if normalized.text.trim().is_empty() {
            return Ok(Phonemized::default());
        }
        let (_, tokens) = self.run(&normalized.text)?;
        let mut out = Phonemized::default();
        let mut chars = 0usize;
        let mut cursor = 0usize;
        let mut pending_space = false;
        for tk in &tokens {
            // The token's place in the normalized text: the next occurrence after the cursor.
            let norm_range = match normalized.text[cursor..].find(tk.text.as_str()) {
                Some(at) if !tk.text.is_empty() => cursor + at..cursor + at + tk.text.len(),
                _ => cursor..cursor,
            };
            cursor = norm_range.end;
            let is_word = tk.text.chars().any(char::is_alphanumeric);
            let mut ps = tk.phonemes.clone().unwrap_or_else(|| UNKNOWN.to_string());
            if let Some(lts) = self.lts.filter(|_| is_word && ps.contains(UNKNOWN)) {
                if let Some(read) = self.read_unknown(lts, &tk.text, &ps) {
                    if read != ps.replace(UNKNOWN, "") {
                        out.guessed.push(tk.text.clone());
                    }
                    ps = read;
                }
            }
            if ps.contains(UNKNOWN) {
                ps = ps.replace(UNKNOWN, "");
                if is_word || ps.is_empty() {
                    out.unknown.push(tk.text.clone());
                }
            }
            let ps = ps.split_whitespace().collect::<Vec<_>>().join(" ");
            if !ps.is_empty() {
                if pending_space && !out.phonemes.is_empty() {
                    out.phonemes.push(' ');
                    chars += 1;
                }
                let start = chars;
                out.phonemes.push_str(&ps);
                chars += ps.chars().count();
                out.tokens.push(Token {
                    kind: kind_of(&tk.text, is_word),
                    source: normalized.source_range(norm_range),
                    phonemes: start..chars,
                });
                pending_space = false;
            }
            if !tk.whitespace.is_empty() {
                pending_space = true;
            }
        }
        Ok(out)
    }
}

fn g2p(dialect: Dialect) -> Result<G2P, TextError> {
    let language = match dialect {
        Dialect::EnUs => Language::EnglishUS,
        Dialect::EnGb => Language::EnglishGB,
    };
    if !language.is_embedded() {
        return Err(TextError::DialectNotBuilt(dialect.as_str()));
    }
    Ok(G2P::new(language))
}

fn kind_of(text: &str, is_word: bool) -> TokenKind {
    if is_word {
        return TokenKind::Word;
    }
    if text.contains(['.', '!', '?', '…']) {
        TokenKind::SentenceEnd
    } else if text.contains([':', ';']) {
        TokenKind::ClauseEnd
    } else if text.contains([',', '—', '–', '-']) {
        TokenKind::Pause
    } else {
        TokenKind::Other
    }
}

impl FrontEnd {
    /// Fills the `❓` of a token with letter-to-sound. A whole unknown word is read whole; in a
    /// compound that misaki half knows ("intra-college" -> `❓kˈɑlɪʤ`) each letter run that misaki
    /// does not know on its own is read, in order.
    fn read_unknown(&self, lts: &LetterToSound, text: &str, ps: &str) -> Option<String> {
        if ps == UNKNOWN {
            return Some(lts.phonemize(text)).filter(|p| !p.is_empty());
        }
        let unknown_runs: Vec<&str> = text
            .split(|c: char| !c.is_alphabetic() && c != '\'' && c != '’')
            .filter(|run| run.chars().any(char::is_alphabetic))
            .filter(|run| self.run(run).map(|(p, _)| p.contains(UNKNOWN)).unwrap_or(true))
            .collect();
        if unknown_runs.is_empty() {
            // Every letter run is known: the `❓` stand for symbols ("[Prince"), which are silent.
            return Some(ps.replace(UNKNOWN, ""));
        }
        if unknown_runs.len() != ps.matches(UNKNOWN).count() {
            return Some(lts.phonemize(text)).filter(|p| !p.is_empty());
        }
        let mut out = String::new();
        let mut runs = unknown_runs.iter();
        for (i, part) in ps.split(UNKNOWN).enumerate() {
            if i > 0 {
                out.push_str(&lts.phonemize(runs.next()?));
            }
            out.push_str(part);
        }
        Some(out)
    }
}

/// Control characters that are not whitespace (a backspace, a stray NUL) become spaces, byte for
/// byte, so that spans stay valid. Text from terminals and old files carries them; failing a
/// request over one would lose the whole request for nothing.
fn blank_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return text.into();
    }
    text.chars()
        .map(|c| if c.is_control() && !c.is_whitespace() { " ".repeat(c.len_utf8()) } else { c.to_string() })
        .collect::<String>()
        .into()
}
