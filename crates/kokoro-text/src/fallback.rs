//! Letter-to-sound for words the lexicon does not have, learned from the lexicon itself.
//!
//! Reference misaki (PyPI 0.9.4) has no fallback: an unknown word becomes `❓` and Kokoro drops it,
//! so the word vanishes from the audio. Its optional fallback is espeak-ng, which is GPL and does
//! not build for wasm32. This one is small and ours:
//!
//! 1. **Alignment.** Every lexicon word is aligned letter by letter with its phonemes, each letter
//!    taking zero, one or two phoneme units (a unit is one phoneme symbol, with a stress mark
//!    glued to the vowel it stresses and `ː` to the vowel it lengthens). Hard EM: start from a
//!    flat cost, align every word with Viterbi, re-estimate P(units | letter), three rounds.
//! 2. **Prediction.** For each letter, the units most often aligned with it in the widest context
//!    seen in training: the letter with two letters each side, then narrower windows, down to
//!    the letter alone (a back-off decision list).
//! 3. **Stress.** Exactly one primary stress: the first predicted one is kept, later ones become
//!    secondary; with none, the first vowel gets it.
//!
//! Measured on held-out lexicon words in `tests/fallback.rs` (word and phoneme accuracy).

use std::collections::HashMap;
use std::sync::OnceLock;

use misaki_rs::lexicon::PhonemeEntry;
use misaki_rs::{Language, Lexicon};

use crate::Dialect;

const STRESS: [char; 2] = ['ˈ', 'ˌ'];
const VOWELS: &str = "AIOQWYaiuæɑɒɔəɛɜɪʊʌᵻᵊ";
const MAX_UNITS_PER_LETTER: usize = 2;
const EM_ROUNDS: usize = 3;
/// At most this many distinct phoneme units (the lexicons have about 70).
const UNIT_LIMIT: usize = 160;
/// Contexts seen fewer times than this are left to narrower windows.
const MIN_CONTEXT_COUNT: u32 = 2;
const MAGIC: &[u8] = b"kokoro-lts-1\n";

/// Back-off windows (letters to the left, letters to the right), widest first.
const WINDOWS: [(usize, usize); 7] = [(2, 2), (1, 2), (2, 1), (1, 1), (0, 1), (1, 0), (0, 0)];

/// A learned letter-to-sound model.
pub struct LetterToSound {
    /// Output vocabulary: unit strings ("" for a silent letter, "ˈA", "ks", ...).
    outputs: Vec<String>,
    /// Context key -> index into `outputs`, for every window in `WINDOWS`.
    rules: HashMap<u64, u16>,
    us: bool,
}

fn units(phonemes: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    for c in phonemes.chars() {
        if STRESS.contains(&c) {
            pending.push(c);
        } else if c == 'ː' && !out.is_empty() {
            out.last_mut().unwrap().push(c);
        } else {
            pending.push(c);
            out.push(std::mem::take(&mut pending));
        }
    }
    out
}

fn key(window: usize, letters: &[u8], at: usize) -> u64 {
    let (left, right) = WINDOWS[window];
    // FNV-1a over the window index and then the window's letters. (Mixing the index into the
    // offset basis instead would make "norg" in one window collide with "morg" in another.)
    let mut h: u64 = (0xcbf29ce484222325 ^ (0x80 | window as u64)).wrapping_mul(0x100000001b3);
    for i in at as isize - left as isize..=at as isize + right as isize {
        let b = if i < 0 { b'^' } else { *letters.get(i as usize).unwrap_or(&b'$') };
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

/// Lowercase ASCII letters and apostrophes only: what the model reads letter by letter.
fn letters_of(word: &str) -> Vec<u8> {
    word.chars()
        .filter_map(|c| c.to_ascii_lowercase().is_ascii_lowercase().then(|| c.to_ascii_lowercase() as u8))
        .collect()
}

fn embedded_table(dialect: Dialect) -> Option<&'static [u8]> {
    match dialect {
        #[cfg(feature = "en-us")]
        Dialect::EnUs => Some(include_bytes!("../data/lts-en-us.bin")),
        #[cfg(feature = "en-gb")]
        Dialect::EnGb => Some(include_bytes!("../data/lts-en-gb.bin")),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The training pairs of a dialect's lexicon (gold and silver, plain entries and DEFAULT readings).
pub fn lexicon_pairs(dialect: Dialect) -> Vec<(String, String)> {
    let lexicon = Lexicon::new(match dialect {
        Dialect::EnUs => Language::EnglishUS,
        Dialect::EnGb => Language::EnglishGB,
    });
    let mut pairs: HashMap<String, String> = HashMap::new();
    for table in [&lexicon.silvers, &lexicon.golds] {
        for (word, entry) in table {
            if !word.chars().all(|c| c.is_ascii_alphabetic()) || word.len() < 2 {
                continue;
            }
            let ps = match entry {
                PhonemeEntry::Simple(ps) => Some(ps.clone()),
                PhonemeEntry::Tagged(tags) => tags.get("DEFAULT").cloned().flatten(),
            };
            if let Some(ps) = ps {
                // Gold after silver: gold wins for words in both.
                pairs.insert(word.to_lowercase(), ps);
            }
        }
    }
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort();
    pairs
}

impl LetterToSound {
    /// The model of a dialect, read on first use from the table that `examples/train_lts.rs`
    /// learned from the dialect's lexicon.
    pub fn shared(dialect: Dialect) -> &'static LetterToSound {
        static US: OnceLock<LetterToSound> = OnceLock::new();
        static GB: OnceLock<LetterToSound> = OnceLock::new();
        let cell = match dialect {
            Dialect::EnUs => &US,
            Dialect::EnGb => &GB,
        };
        cell.get_or_init(|| {
            // The tables are ours and checked by the tests; retrain only if one were ever corrupt
            // (or left out of this build).
            embedded_table(dialect)
                .and_then(LetterToSound::from_bytes)
                .unwrap_or_else(|| LetterToSound::train(&lexicon_pairs(dialect), dialect))
        })
    }

    /// Learns from (word, phonemes) pairs.
    pub fn train(pairs: &[(String, String)], dialect: Dialect) -> Self {
        // Units interned to small ids; a letter's output (0, 1 or 2 units) is a dense code.
        let mut unit_names: Vec<String> = Vec::new();
        let mut unit_ids: HashMap<String, u32> = HashMap::new();
        let mut data: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
        for (word, ps) in pairs {
            let letters = letters_of(word);
            let units: Vec<u32> = units(ps)
                .into_iter()
                .map(|u| {
                    let next = unit_names.len() as u32;
                    *unit_ids.entry(u.clone()).or_insert_with(|| {
                        unit_names.push(u);
                        next
                    })
                })
                .collect();
            if !letters.is_empty() && !units.is_empty() && unit_names.len() <= UNIT_LIMIT {
                data.push((letters, units));
            }
        }
        let code = |chunk: &[u32]| -> usize {
            match chunk {
                [] => 0,
                [a] => 1 + *a as usize,
                [a, b] => 1 + UNIT_LIMIT + *a as usize * UNIT_LIMIT + *b as usize,
                _ => unreachable!(),
            }
        };
        let codes = 1 + UNIT_LIMIT + UNIT_LIMIT * UNIT_LIMIT;
        let mut first = vec![0u32; 26 * UNIT_LIMIT];
        for (letters, units) in data.iter().filter(|(l, u)| l.len() == u.len()) {
            for (l, u) in letters.iter().zip(units) {
                first[(l - b'a') as usize * UNIT_LIMIT + *u as usize] += 1;
            }
        }
        let first: Vec<f32> = first
            .chunks(UNIT_LIMIT)
            .flat_map(|row| {
                let total: u32 = row.iter().sum();
                row.iter().map(move |&n| -((n as f32 + 0.01) / (total as f32 + 1.0)).ln()).collect::<Vec<_>>()
            })
            .collect();
        // cost[letter * codes + code] = -ln P(code | letter).
        let mut cost: Vec<f32> = Vec::new();
        let mut alignments: Vec<Vec<u32>> = Vec::with_capacity(data.len());
        for round in 0..EM_ROUNDS {
            let mut counts = vec![0u32; 26 * codes];
            alignments.clear();
            for (letters, units) in &data {
                let path = align(letters, units, |letter, chunk| {
                    let l = (letter - b'a') as usize;
                    if round == 0 {
                        // Start from the words spelled one unit per letter: P(unit | letter).
                        match chunk {
                            [] => 4.0,
                            [u] => first[l * UNIT_LIMIT + *u as usize],
                            [u, v] => 2.0 + first[l * UNIT_LIMIT + *u as usize] + first[l * UNIT_LIMIT + *v as usize],
                            _ => unreachable!(),
                        }
                    } else {
                        cost[l * codes + code(chunk)]
                    }
                });
                let mut ids = Vec::new();
                if let Some(path) = path {
                    let mut j = 0;
                    for (i, &k) in path.iter().enumerate() {
                        let c = code(&units[j..j + k]);
                        j += k;
                        counts[(letters[i] - b'a') as usize * codes + c] += 1;
                        ids.push(c as u32);
                    }
                }
                alignments.push(ids);
            }
            cost = vec![0.0; 26 * codes];
            for letter in 0..26 {
                let row = &counts[letter * codes..(letter + 1) * codes];
                let total: u32 = row.iter().sum();
                for (c, &n) in row.iter().enumerate() {
                    // Unseen pairs are possible but unlikely (a one-off in 10^5).
                    cost[letter * codes + c] = -((n as f32 + 1e-5) / (total as f32 + 1.0)).ln();
                }
            }
        }
        // Votes per context; a context seen once is noise (often a misalignment), not a rule.
        let mut votes: HashMap<(u64, u32), u32> = HashMap::new();
        for ((letters, _), ids) in data.iter().zip(&alignments) {
            for (at, &id) in ids.iter().enumerate() {
                for window in 0..WINDOWS.len() {
                    *votes.entry((key(window, letters, at), id)).or_default() += 1;
                }
            }
        }
        let mut best: HashMap<u64, (u32, u32, u32)> = HashMap::new(); // key -> (best count, code, total)
        for ((k, id), n) in votes {
            let e = best.entry(k).or_insert((0, 0, 0));
            e.2 += n;
            if (n, std::cmp::Reverse(id)) > (e.0, std::cmp::Reverse(e.1)) {
                e.0 = n;
                e.1 = id;
            }
        }
        let mut outputs: Vec<String> = Vec::new();
        let mut output_of_code: HashMap<u32, u16> = HashMap::new();
        let mut rules = HashMap::new();
        for (k, (_, id, total)) in best {
            if total < MIN_CONTEXT_COUNT {
                continue;
            }
            let next = outputs.len() as u16;
            let out = *output_of_code.entry(id).or_insert_with(|| {
                let id = id as usize;
                outputs.push(match id {
                    0 => String::new(),
                    c if c <= UNIT_LIMIT => unit_names[c - 1].clone(),
                    c => {
                        let c = c - 1 - UNIT_LIMIT;
                        format!("{}{}", unit_names[c / UNIT_LIMIT], unit_names[c % UNIT_LIMIT])
                    }
                });
                next
            });
            rules.insert(k, out);
        }
        let words: Vec<&[u8]> = data.iter().map(|(l, _)| l.as_slice()).collect();
        prune(&mut rules, &words);
        Self { outputs, rules, us: dialect == Dialect::EnUs }
    }

    /// Serialized form (what `examples/train_lts.rs` writes into `data/`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(u8::from(self.us));
        out.extend((self.outputs.len() as u32).to_le_bytes());
        for o in &self.outputs {
            out.push(o.len() as u8);
            out.extend(o.as_bytes());
        }
        let mut rules: Vec<_> = self.rules.iter().collect();
        rules.sort();
        out.extend((rules.len() as u32).to_le_bytes());
        for (k, v) in rules {
            out.extend(k.to_le_bytes());
            out.extend(v.to_le_bytes());
        }
        out
    }

    /// Reads [`LetterToSound::to_bytes`]'s output; `None` if it is not that.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut rest = bytes.strip_prefix(MAGIC)?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let us = take(1)?[0] == 1;
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let mut outputs = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let len = take(1)?[0] as usize;
            outputs.push(std::str::from_utf8(take(len)?).ok()?.to_string());
        }
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let mut rules = HashMap::with_capacity(n.min(1 << 22));
        for _ in 0..n {
            let k = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let v = u16::from_le_bytes(take(2)?.try_into().ok()?);
            if v as usize >= outputs.len() {
                return None;
            }
            rules.insert(k, v);
        }
        Some(Self { outputs, rules, us })
    }

    /// Phonemes for a word (letters only are read; digits and symbols are skipped).
    pub fn phonemize(&self, word: &str) -> String {
        let letters = letters_of(word);
        let mut out = String::new();
        for at in 0..letters.len() {
            let id = (0..WINDOWS.len()).find_map(|w| self.rules.get(&key(w, &letters, at))).copied().unwrap_or(0);
            out.push_str(&self.outputs[id as usize]);
        }
        let out = fix_stress(&out);
        if self.us { out.replace('ɾ', "T").replace('ʔ', "t") } else { out }
    }

    /// The rule each window gives at each letter (for inspection).
    pub fn explain(&self, word: &str) -> Vec<Vec<Option<&str>>> {
        let letters = letters_of(word);
        (0..letters.len())
            .map(|at| {
                (0..WINDOWS.len())
                    .map(|w| self.rules.get(&key(w, &letters, at)).map(|&id| self.outputs[id as usize].as_str()))
                    .collect()
            })
            .collect()
    }

    /// Number of learned context rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

/// Drops rules whose removal changes no prediction on the training words: a rule is redundant
/// where, at every letter it decides, the next narrower rule says the same. Widest windows go
/// first, and the rule that takes over from a dropped one is kept. Shrinks the table about 3x.
fn prune(rules: &mut HashMap<u64, u16>, words: &[&[u8]]) {
    let last = WINDOWS.len() - 1;
    let mut needed: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let chain = |rules: &HashMap<u64, u16>, letters: &[u8], at: usize| -> Vec<(usize, u64, u16)> {
        (0..WINDOWS.len()).filter_map(|w| { let k = key(w, letters, at); rules.get(&k).map(|&o| (w, k, o)) }).collect()
    };
    for window in 0..last {
        // Can each rule of this window go, judged where it is the rule in force?
        let mut prunable: HashMap<u64, bool> = HashMap::new();
        for letters in words {
            for at in 0..letters.len() {
                let c = chain(rules, letters, at);
                if let Some(&(_, k, o)) = c.first().filter(|(w, _, _)| *w == window) {
                    let same = c.get(1).is_some_and(|&(_, _, next)| next == o);
                    *prunable.entry(k).or_insert(true) &= same;
                }
            }
        }
        let dropped: std::collections::HashSet<u64> =
            prunable.into_iter().filter(|&(k, ok)| ok && !needed.contains(&k)).map(|(k, _)| k).collect();
        for letters in words {
            for at in 0..letters.len() {
                let c = chain(rules, letters, at);
                if let [(_, k, _), (_, next, _), ..] = c[..] {
                    if dropped.contains(&k) {
                        needed.insert(next);
                    }
                }
            }
        }
        rules.retain(|k, _| !dropped.contains(k));
    }
}

/// The Viterbi alignment: for each letter, how many units it takes (0..=2). `None` when the word
/// has more than two units per letter somewhere (abbreviations read as letters, say).
fn align<U>(letters: &[u8], units: &[U], cost: impl Fn(u8, &[U]) -> f32) -> Option<Vec<usize>> {
    let (n, m) = (letters.len(), units.len());
    if m > n * MAX_UNITS_PER_LETTER {
        return None;
    }
    let mut best = vec![f32::INFINITY; (n + 1) * (m + 1)];
    let mut back = vec![0u8; (n + 1) * (m + 1)];
    best[0] = 0.0;
    for i in 0..n {
        for j in 0..=m {
            let here = best[i * (m + 1) + j];
            if !here.is_finite() {
                continue;
            }
            for k in 0..=MAX_UNITS_PER_LETTER.min(m - j) {
                let c = here + cost(letters[i], &units[j..j + k]);
                let cell = (i + 1) * (m + 1) + j + k;
                if c < best[cell] {
                    best[cell] = c;
                    back[cell] = k as u8;
                }
            }
        }
    }
    if !best[n * (m + 1) + m].is_finite() {
        return None;
    }
    let mut path = vec![0; n];
    let mut j = m;
    for i in (1..=n).rev() {
        let k = back[i * (m + 1) + j] as usize;
        path[i - 1] = k;
        j -= k;
    }
    Some(path)
}

/// Keeps one primary stress: the first; later primaries become secondary. With no stress at all,
/// the first vowel takes the primary.
fn fix_stress(ps: &str) -> String {
    let mut out = String::with_capacity(ps.len() + 2);
    let mut seen_primary = false;
    for c in ps.chars() {
        if c == 'ˈ' {
            out.push(if seen_primary { 'ˌ' } else { 'ˈ' });
            seen_primary = true;
        } else {
            out.push(c);
        }
    }
    if !seen_primary {
        if let Some(at) = out.char_indices().find(|(_, c)| VOWELS.contains(*c)).map(|(i, _)| i) {
            // A secondary mark already before that vowel is promoted rather than doubled.
            if out[..at].ends_with('ˌ') {
                out.replace_range(at - 'ˌ'.len_utf8()..at, "ˈ");
            } else {
                out.insert(at, 'ˈ');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_glue_stress_and_length() {
        assert_eq!(units("həlˈO"), ["h", "ə", "l", "ˈO"]);
        assert_eq!(units("fˈɑːðə"), ["f", "ˈɑː", "ð", "ə"]);
    }

    #[test]
    fn alignment_covers_every_unit() {
        let u = units("ksˈɛ");
        let path = align(b"xe", &u, |_, c| c.len() as f32).unwrap();
        assert_eq!(path.iter().sum::<usize>(), u.len());
        assert!(align(b"a", &units("abc"), |_, _| 1.0).is_none());
    }

    #[test]
    fn one_primary_stress() {
        assert_eq!(fix_stress("ˈaˈb"), "ˈaˌb");
        assert_eq!(fix_stress("kæt"), "kˈæt");
        assert_eq!(fix_stress("kˌæt"), "kˈæt");
    }
}
