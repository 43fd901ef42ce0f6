//! Weighted voice mixing with Kokoro-FastAPI's syntax: `af_bella(2)+af_sky(1)`, `-` subtracts,
//! weight 1 when none is given, whitespace anywhere between parts.
//!
//! Weights are normalized by default so that they sum to 1 (`af_bella(2)+af_sky(1)` is
//! `(2 bella + sky) / 3`); with subtraction the signed sum is used (`a(2)-b(1)` is `2a - b`), and a
//! mix whose weights sum to zero or less must be taken un-normalized. Equal mixes, however written,
//! share one [`MixSpec::canonical`] key (sorted, merged, normalized), so a cache keeps one entry.

use std::collections::BTreeMap;

use crate::{VOICE_LEN, Voice, VoiceError, is_valid_voice_name};

/// A mix that does not parse, with the character position (1-based) where it went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad voice mix {spec:?} at character {at}: {message}")]
pub struct MixError {
    pub spec: String,
    pub at: usize,
    pub message: String,
}

/// One voice of a mix and its (signed) weight.
#[derive(Debug, Clone, PartialEq)]
pub struct MixTerm {
    pub name: String,
    pub weight: f64,
}

/// A parsed mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixSpec {
    pub terms: Vec<MixTerm>,
    pub normalize: bool,
}

struct Parser<'a> {
    spec: &'a str,
    chars: Vec<char>,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> MixError {
        MixError { spec: self.spec.to_string(), at: self.at + 1, message: message.into() }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn name(&mut self) -> Result<String, MixError> {
        let start = self.at;
        while self.chars.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
            self.at += 1;
        }
        if start == self.at {
            return Err(match self.chars.get(self.at) {
                Some(c) => self.error(format!("expected a voice name, found {c:?}")),
                None => self.error("expected a voice name, found the end"),
            });
        }
        let name: String = self.chars[start..self.at].iter().collect();
        if !is_valid_voice_name(&name) {
            self.at = start;
            return Err(self.error(format!("voice name {name:?} is longer than 64 characters")));
        }
        Ok(name)
    }

    fn weight(&mut self) -> Result<f64, MixError> {
        // After '(' : a positive decimal number, then ')'.
        self.skip_ws();
        let start = self.at;
        while self.chars.get(self.at).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        let weight: f64 = match text.parse() {
            Ok(w) if w > 0.0 && f64::is_finite(w) => w,
            _ => {
                self.at = start;
                return Err(self.error(match self.chars.get(start) {
                    Some(c) if !c.is_ascii_digit() && *c != '.' => format!("expected a positive weight, found {c:?}"),
                    _ if text.is_empty() => "expected a positive weight".to_string(),
                    _ => format!("weight {text:?} is not a positive number"),
                }));
            }
        };
        self.skip_ws();
        match self.chars.get(self.at) {
            Some(')') => {
                self.at += 1;
                Ok(weight)
            }
            Some(c) => Err(self.error(format!("expected ')' after the weight, found {c:?}"))),
            None => Err(self.error("expected ')' after the weight, found the end")),
        }
    }
}

impl MixSpec {
    /// Parses a mix; weights normalized.
    pub fn parse(spec: &str) -> Result<Self, MixError> {
        let mut p = Parser { spec, chars: spec.chars().collect(), at: 0 };
        let mut terms = Vec::new();
        let mut sign = 1.0;
        loop {
            p.skip_ws();
            let name = p.name()?;
            p.skip_ws();
            let mut weight = 1.0;
            if p.chars.get(p.at) == Some(&'(') {
                p.at += 1;
                weight = p.weight()?;
                p.skip_ws();
            }
            terms.push(MixTerm { name, weight: sign * weight });
            match p.chars.get(p.at) {
                None => break,
                Some('+') => sign = 1.0,
                Some('-') => sign = -1.0,
                Some(c) => return Err(p.error(format!("expected '+', '-' or the end, found {c:?}"))),
            }
            p.at += 1;
        }
        Ok(Self { terms, normalize: true })
    }

    /// The same mix with weights used as written.
    pub fn unnormalized(self) -> Self {
        Self { normalize: false, ..self }
    }

    /// The one voice this mix comes to, if and only if its merged weights are a single voice at
    /// weight 1 (no mixing to do): `af_sky-af_sky+af_heart` is `af_heart`. Always equal to
    /// [`MixSpec::canonical`] when it is `Some`.
    pub fn single(&self) -> Option<String> {
        match self.weights() {
            Ok(mut w) if w.len() == 1 && is_unit(w[0].1) => w.pop().map(|(name, _)| name),
            _ => None,
        }
    }

    /// Voices and the weights they are mixed with: equal names merged, sorted by name, normalized
    /// if asked. Fails when normalizing weights that sum to zero or less.
    pub fn weights(&self) -> Result<Vec<(String, f64)>, MixError> {
        let mut merged: BTreeMap<&str, f64> = BTreeMap::new();
        for t in &self.terms {
            *merged.entry(&t.name).or_default() += t.weight;
        }
        let mut weights: Vec<(String, f64)> =
            merged.into_iter().filter(|(_, w)| *w != 0.0).map(|(n, w)| (n.to_string(), w)).collect();
        if self.normalize {
            let sum: f64 = weights.iter().map(|(_, w)| w).sum();
            if sum <= 1e-12 {
                let spec = self.to_string();
                return Err(MixError {
                    at: 1,
                    message: format!("the weights sum to {sum}, which cannot be normalized (mix without normalizing)"),
                    spec,
                });
            }
            for (_, w) in &mut weights {
                *w /= sum;
            }
        }
        Ok(weights)
    }

    /// A key equal for equal mixes however written (`af_sky + af_bella(2)` and
    /// `af_bella(4)+af_sky(2)` share one).
    pub fn canonical(&self) -> Result<String, MixError> {
        let weights = self.weights()?;
        if let [(name, w)] = &weights[..]
            && is_unit(*w)
        {
            return Ok(name.clone());
        }
        let mut key = if self.normalize { String::new() } else { "raw:".to_string() };
        for (i, (name, w)) in weights.iter().enumerate() {
            if i > 0 || *w < 0.0 {
                key.push(if *w < 0.0 { '-' } else { '+' });
            }
            key.push_str(&format!("{name}({:.6})", w.abs()));
        }
        Ok(key)
    }

    /// Mixes the voices that `load` returns for each name.
    pub fn mix(&self, mut load: impl FnMut(&str) -> Result<Voice, VoiceError>) -> Result<Voice, VoiceError> {
        let weights = self.weights()?;
        let mut acc = vec![0f64; VOICE_LEN];
        for (name, w) in &weights {
            let voice = load(name)?;
            for (a, v) in acc.iter_mut().zip(voice.values()) {
                *a += w * *v as f64;
            }
        }
        Voice::from_values(acc.into_iter().map(|v| v as f32).collect(), &self.to_string())
    }
}

/// Is a merged weight 1, up to the rounding of normalization?
fn is_unit(weight: f64) -> bool {
    (weight - 1.0).abs() < 1e-9
}

impl std::fmt::Display for MixSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(if t.weight < 0.0 { "-" } else { "+" })?;
            }
            write!(f, "{}({})", t.name, t.weight.abs())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fastapi_syntax() {
        let m = MixSpec::parse(" af_bella(2) + af_sky( 1 ) - am_adam(0.5)").unwrap();
        assert_eq!(m.terms.len(), 3);
        assert_eq!(m.terms[2], MixTerm { name: "am_adam".into(), weight: -0.5 });
        assert_eq!(MixSpec::parse("af_heart").unwrap().single().as_deref(), Some("af_heart"));
        assert_eq!(MixSpec::parse("af_bella+af_sky").unwrap().weights().unwrap(), [("af_bella".into(), 0.5), ("af_sky".into(), 0.5)]);
    }

    #[test]
    fn errors_point_at_the_position() {
        for (spec, at, needle) in [
            ("", 1, "expected a voice name"),
            ("af_bella(2", 11, "expected ')'"),
            ("af_bella(x)", 10, "expected a positive weight"),
            ("af_bella(0)", 10, "not a positive number"),
            ("af_bella++af_sky", 10, "expected a voice name"),
            ("af_bella af_sky", 10, "expected '+', '-' or the end"),
            ("../etc/passwd", 1, "expected a voice name"),
            ("af_bella/x", 9, "expected '+', '-' or the end"),
            ("-af_bella", 1, "expected a voice name"),
        ] {
            let e = MixSpec::parse(spec).unwrap_err();
            assert_eq!(e.at, at, "{spec}: {e}");
            assert!(e.message.contains(needle), "{spec}: {e}");
        }
        let e = MixSpec::parse("a(1)-a(1)").unwrap().weights().unwrap_err();
        assert!(e.message.contains("cannot be normalized"), "{e}");
    }

    #[test]
    fn single_is_the_merged_voice() {
        // Issue 12: `single()` returned the first term ("af_sky") while the key was af_heart.
        let m = MixSpec::parse("af_sky-af_sky+af_heart").unwrap();
        assert_eq!(m.single().as_deref(), Some("af_heart"));
        assert_eq!(m.canonical().unwrap(), "af_heart");
        assert_eq!(MixSpec::parse("af_bella+af_sky").unwrap().single(), None);
        assert_eq!(MixSpec::parse("af_bella(3)").unwrap().single().as_deref(), Some("af_bella"));
        assert_eq!(MixSpec::parse("af_bella(3)").unwrap().unnormalized().single(), None);
    }

    proptest::proptest! {
        /// `single()` is `Some(k)` exactly when the canonical key is the plain voice name `k`, and
        /// mixing through `single()` gives the voice the key names.
        #[test]
        fn single_agrees_with_the_canonical_key(
            terms in proptest::collection::vec((0usize..3, 1u32..4, proptest::bool::ANY), 1..6),
            normalize in proptest::bool::ANY,
        ) {
            let names = ["af_bella", "af_heart", "af_sky"];
            let mut spec = String::new();
            for (i, (name, weight, minus)) in terms.iter().enumerate() {
                if i > 0 {
                    spec.push(if *minus { '-' } else { '+' });
                }
                spec.push_str(&format!("{}({weight})", names[*name]));
            }
            let mix = MixSpec::parse(&spec).unwrap();
            let mix = if normalize { mix } else { mix.unnormalized() };
            match (mix.single(), mix.canonical()) {
                (Some(name), Ok(key)) => proptest::prop_assert_eq!(name, key),
                (Some(name), Err(e)) => proptest::prop_assert!(false, "{spec}: single {name} but no key: {e}"),
                (None, Ok(key)) => proptest::prop_assert!(!names.contains(&key.as_str()), "{spec}: key {key} is one voice"),
                (None, Err(_)) => {}
            }
        }
    }

    #[test]
    fn equal_mixes_share_a_key() {
        let key = |s: &str| MixSpec::parse(s).unwrap().canonical().unwrap();
        assert_eq!(key("af_bella(2)+af_sky(1)"), key("af_sky + af_bella(2)"));
        assert_eq!(key("af_bella(4)+af_sky(2)"), key("af_bella(2)+af_sky(1)"));
        assert_eq!(key("af_bella+af_bella"), "af_bella");
        assert_ne!(key("af_bella(2)+af_sky(1)"), key("af_bella(1)+af_sky(2)"));
        assert_eq!(key("af_bella(2)-af_sky(1)"), "af_bella(2.000000)-af_sky(1.000000)");
        assert_ne!(MixSpec::parse("af_bella(2)+af_sky(1)").unwrap().unnormalized().canonical().unwrap(), key("af_bella(2)+af_sky(1)"));
    }
}
