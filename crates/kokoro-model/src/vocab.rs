//! Phoneme strings to Kokoro ids through the model's vocab.

use std::collections::HashMap;

use crate::config::KokoroConfig;

/// Maps phoneme characters to ids 1..=177.
#[derive(Debug, Clone)]
pub struct Vocab {
    map: HashMap<char, u32>,
}

/// The ids of a phoneme string, and the characters the vocab does not know (dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub unknown: Vec<char>,
}

impl Vocab {
    /// Builds the vocab from a configuration.
    pub fn from_config(config: &KokoroConfig) -> Self {
        let map = config
            .vocab
            .iter()
            .filter_map(|(k, &v)| {
                let mut chars = k.chars();
                let c = chars.next()?;
                chars.next().is_none().then_some((c, v))
            })
            .collect();
        Self { map }
    }

    /// The id of one phoneme character, if the vocab has it.
    pub fn id(&self, c: char) -> Option<u32> {
        self.map.get(&c).copied()
    }

    /// Encodes a phoneme string, dropping (and listing, once each) characters outside the vocab,
    /// as upstream's `KModel.forward` drops them.
    pub fn encode(&self, phonemes: &str) -> Encoded {
        let mut ids = Vec::with_capacity(phonemes.len());
        let mut unknown = Vec::new();
        for c in phonemes.chars() {
            match self.map.get(&c) {
                Some(&id) => ids.push(id),
                None if !unknown.contains(&c) => unknown.push(c),
                None => {}
            }
        }
        Encoded { ids, unknown }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_ids_and_unknowns() {
        let v = Vocab::from_config(&KokoroConfig::v1());
        // h=50 ə=83 l=54 ˈ=156 O=31 ' '=16 w=65 ˈ=156 ɜ=87 ɹ=123 l=54 d=46 .=4
        let e = v.encode("həlˈO wˈɜɹld.");
        assert_eq!(e.ids, vec![50, 83, 54, 156, 31, 16, 65, 156, 87, 123, 54, 46, 4]);
        assert!(e.unknown.is_empty());
        let e = v.encode("h#ə#1");
        assert_eq!(e.ids, vec![50, 83]);
        assert_eq!(e.unknown, vec!['#', '1']);
    }
}
