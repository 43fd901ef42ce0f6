//! The server's configuration: one TOML file, every key optional (the defaults serve on
//! 127.0.0.1:8880), checked at load with errors that name the key, the value and the rule.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kokoro_engine::{ChunkOptions, SchedulerConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Model names `/v1/audio/speech` accepts (all are Kokoro-82M v1.0); the first is the one
    /// `/v1/models` lists first.
    pub models: Vec<String>,
    pub limits: Limits,
    pub voices: VoicesConfig,
    pub text: TextConfig,
    /// The engine's scheduler: batching, queue bounds, the response cache.
    pub engine: SchedulerConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest `input`, in characters (OpenAI's limit is 4,096).
    pub max_input_chars: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// A request not finished after this many seconds fails with 504.
    pub request_timeout_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoicesConfig {
    /// Other names for voices or mixes: OpenAI's voice names map here, so an OpenAI client's
    /// `voice="alloy"` speaks.
    pub aliases: BTreeMap<String, String>,
    /// Voices loaded and pinned at start-up, before the server reports ready.
    pub prewarm: Vec<String>,
}

/// How a request's text is cut into the chunks the model speaks one pass at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// Pack whole sentences into each chunk up to `max_phonemes` (fewer passes, more throughput),
    /// or speak each sentence as its own chunk (the default: the first audio comes after the
    /// first sentence, not after the first 510 phonemes).
    pub pack_sentences: bool,
    /// Most phonemes in one chunk (the model's limit is 510).
    pub max_phonemes: usize,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self { pack_sentences: false, max_phonemes: 510 }
    }
}

impl TextConfig {
    pub fn chunk_options(&self) -> ChunkOptions {
        ChunkOptions { max_phonemes: self.max_phonemes, pack_sentences: self.pack_sentences }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8880)),
            models: ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"].map(String::from).to_vec(),
            limits: Limits::default(),
            voices: VoicesConfig::default(),
            text: TextConfig::default(),
            engine: SchedulerConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_input_chars: 4096, max_body_bytes: 1 << 20, request_timeout_secs: 300.0 }
    }
}

impl Default for VoicesConfig {
    fn default() -> Self {
        // Kokoro-FastAPI's mapping of OpenAI's voices (api/src/core/openai_mappings.json), so
        // clients moving from it hear the same voices.
        let aliases = [
            ("alloy", "am_adam"),
            ("ash", "af_nicole"),
            ("coral", "bf_emma"),
            ("echo", "af_bella"),
            ("fable", "af_sarah"),
            ("onyx", "bm_george"),
            ("nova", "bf_isabella"),
            ("sage", "am_michael"),
            ("shimmer", "af_sky"),
        ];
        Self { aliases: aliases.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(), prewarm: vec!["af_heart".to_string()] }
    }
}

/// A configuration that cannot be used: which key, what value, which rule.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key} = {value}: {rule}")]
    Invalid { key: &'static str, value: String, rule: &'static str },
}

impl ServerConfig {
    /// Reads and checks a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.display().to_string(), message },
            e => e,
        })
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse { path: "config".into(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// The rules a configuration must keep.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: &dyn std::fmt::Display, rule| Err(ConfigError::Invalid { key, value: value.to_string(), rule });
        let l = &self.limits;
        if !(1..=1_000_000).contains(&l.max_input_chars) {
            return invalid("limits.max_input_chars", &l.max_input_chars, "must be 1 to 1000000");
        }
        if !(1024..=1 << 30).contains(&l.max_body_bytes) {
            return invalid("limits.max_body_bytes", &l.max_body_bytes, "must be 1024 to 1073741824");
        }
        if !(l.request_timeout_secs > 0.0 && l.request_timeout_secs <= 86_400.0) {
            return invalid("limits.request_timeout_secs", &l.request_timeout_secs, "must be above 0 and at most 86400");
        }
        if self.models.is_empty() {
            return invalid("models", &"[]", "must name at least one model");
        }
        for (alias, target) in &self.voices.aliases {
            if !kokoro_voice::is_valid_voice_name(alias) {
                return invalid("voices.aliases", alias, "an alias must be a voice name: letters, digits and _ (at most 64)");
            }
            if kokoro_voice::MixSpec::parse(target).is_err() {
                return invalid("voices.aliases", target, "must be a voice name or a mix such as af_bella(2)+af_sky(1)");
            }
        }
        for voice in &self.voices.prewarm {
            if !kokoro_voice::is_valid_voice_name(voice) {
                return invalid("voices.prewarm", voice, "must list voice names (letters, digits and _)");
            }
        }
        if !(16..=510).contains(&self.text.max_phonemes) {
            return invalid("text.max_phonemes", &self.text.max_phonemes, "must be 16 to 510 (the model reads at most 510)");
        }
        let e = &self.engine;
        if !(1..=64).contains(&e.max_batch) {
            return invalid("engine.max_batch", &e.max_batch, "must be 1 to 64");
        }
        if !(1..=64).contains(&e.workers) {
            return invalid("engine.workers", &e.workers, "must be 1 to 64");
        }
        if e.max_queued_chunks == 0 || e.max_requests == 0 {
            return invalid("engine.max_requests", &e.max_requests.min(e.max_queued_chunks), "queue bounds must be at least 1");
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.limits.request_timeout_secs)
    }

    /// A voice spec with aliases replaced: `alloy` -> `am_adam`; a mix's parts each in turn.
    pub fn resolve_voice(&self, spec: &str) -> String {
        let spec = spec.trim();
        if let Some(target) = self.voices.aliases.get(spec) {
            return target.clone();
        }
        if !spec.contains(['+', '-', '(']) || self.voices.aliases.is_empty() {
            return spec.to_string();
        }
        // Replace whole names only: split on the mix syntax, keep the separators.
        let mut out = String::with_capacity(spec.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            out.push_str(self.voices.aliases.get(word.as_str()).map_or(word.as_str(), String::as_str));
            word.clear();
        };
        for c in spec.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default_and_bad_values_name_key_value_and_rule() {
        assert_eq!(ServerConfig::from_toml("").unwrap(), ServerConfig::default());
        let e = ServerConfig::from_toml("[limits]\nmax_input_chars = 0\n").unwrap_err();
        assert_eq!(e, ConfigError::Invalid { key: "limits.max_input_chars", value: "0".into(), rule: "must be 1 to 1000000" });
        let e = ServerConfig::from_toml("[limits]\nmax_input_charz = 10\n").unwrap_err();
        assert!(e.to_string().contains("max_input_charz"), "{e}");
        let e = ServerConfig::from_toml("[voices]\nprewarm = [\"../etc/passwd\"]\n").unwrap_err();
        assert!(e.to_string().starts_with("voices.prewarm = ../etc/passwd"), "{e}");
    }

    #[test]
    fn aliases_replace_whole_names_in_mixes() {
        let c = ServerConfig::default();
        assert_eq!(c.resolve_voice("alloy"), "am_adam");
        assert_eq!(c.resolve_voice("alloy(2)+af_sky(1)"), "am_adam(2)+af_sky(1)");
        assert_eq!(c.resolve_voice("af_alloy"), "af_alloy");
        assert_eq!(c.resolve_voice(" af_heart "), "af_heart");
    }
}
