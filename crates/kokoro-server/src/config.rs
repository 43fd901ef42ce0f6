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

/// `b` laid over `a`: tables merge key by key, anything else replaces.
fn merge(a: &mut toml::Table, b: toml::Table) {
    for (key, value) in b {
        match (a.get_mut(&key), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => merge(old, new),
            (_, value) => {
                a.insert(key, value);
            }
        }
    }
}

/// A rule made at run time (the profile names), kept for the error's `&'static str`.
fn leak(rule: String) -> &'static str {
    Box::leak(rule.into_boxed_str())
}

/// A configuration that cannot be used: which key, what value, which rule.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key} = {value}: {rule}")]
    Invalid { key: &'static str, value: String, rule: &'static str },
}

/// Built-in profiles: TOML laid over the defaults before the file (`--profile NAME`).
pub const PROFILES: [(&str, &str); 4] = [
    // The CPU: batching only adds padding to compute-bound work (docs/engine.md), one worker.
    ("cpu", "[engine]\nbatching = \"off\"\nmax_batch = 1\nworkers = 1\n"),
    // A GPU: chunks of similar length share passes; wait a little longer for company.
    ("gpu", "[engine]\nbatching = \"on\"\nmax_batch = 16\nmax_wait = 15\nmax_requests = 2048\nmax_queued_chunks = 1024\n"),
    // A small machine: short queues, small caches, shorter inputs.
    (
        "edge",
        "[limits]\nmax_input_chars = 2048\n[engine]\nbatching = \"off\"\nmax_batch = 1\nmax_requests = 16\nmax_queued_chunks = 64\nmax_held_audio_bytes = 67108864\nresponse_cache_bytes = 8388608\n",
    ),
    // Development: every request really spoken (no response cache), a short timeout.
    ("dev", "[limits]\nrequest_timeout_secs = 60.0\n[engine]\nresponse_cache_bytes = 0\n"),
];

/// The top-level keys `KOKORO_*` variables may set (others, such as `KOKORO_CACHE`, are not
/// configuration).
const TOP_KEYS: [&str; 6] = ["listen", "models", "limits", "voices", "text", "engine"];

impl ServerConfig {
    /// The configuration from its layers, each over the one before: the defaults, a built-in
    /// profile, a TOML file, then `KOKORO_<SECTION>__<KEY>=value` variables from `env`
    /// (`KOKORO_LIMITS__MAX_INPUT_CHARS=2000`, `KOKORO_LISTEN=0.0.0.0:8880`; a value is read as
    /// TOML, else as a string). Checked once, at the end.
    pub fn load(file: Option<&Path>, profile: Option<&str>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(name) = profile {
            let Some((_, text)) = PROFILES.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
                return Err(ConfigError::Invalid { key: "profile", value: name.to_string(), rule: leak(format!("must be one of {}", names.join(", "))) });
            };
            merge(&mut table, text.parse::<toml::Table>().expect("built-in profiles are TOML"));
        }
        if let Some(path) = file {
            let parse = |message: String| ConfigError::Parse { path: path.display().to_string(), message };
            let text = std::fs::read_to_string(path).map_err(|e| parse(e.to_string()))?;
            merge(&mut table, text.parse::<toml::Table>().map_err(|e| parse(e.to_string()))?);
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KOKORO_") else { continue };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if !TOP_KEYS.contains(&path[0].as_str()) {
                continue;
            }
            let value = format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).unwrap_or(toml::Value::String(value));
            let mut overlay = toml::Table::new();
            let mut slot = &mut overlay;
            for key in &path[..path.len() - 1] {
                slot = slot.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut().expect("a table just made");
            }
            slot.insert(path[path.len() - 1].clone(), value);
            merge(&mut table, overlay);
        }
        let config: Self = table.try_into().map_err(|e: toml::de::Error| ConfigError::Parse { path: "configuration".into(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML (`kokoro config print`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the configuration serializes")
    }

    /// Reads and checks a TOML file (no profile, no environment).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(Some(path), None, [])
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

    #[test]
    fn layers_apply_in_order_profile_file_environment() {
        let dir = std::env::temp_dir().join(format!("kokoro-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("k.toml");
        std::fs::write(&file, "[engine]\nmax_requests = 100\n[limits]\nmax_input_chars = 3000\n").unwrap();
        let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let c = ServerConfig::load(
            Some(&file),
            Some("edge"),
            env(&[("KOKORO_LIMITS__MAX_INPUT_CHARS", "1000"), ("KOKORO_LISTEN", "0.0.0.0:9000"), ("KOKORO_CACHE", "/somewhere"), ("KOKORO_LOG", "debug")]),
        )
        .unwrap();
        assert_eq!(c.engine.max_queued_chunks, 64, "from the profile");
        assert_eq!(c.engine.max_requests, 100, "the file over the profile");
        assert_eq!(c.limits.max_input_chars, 1000, "the environment over the file");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000", "a string value");
        assert_eq!(c.engine.batching, kokoro_engine::Batching::Off);
        // What print writes reads back the same.
        assert_eq!(ServerConfig::from_toml(&c.to_toml()).unwrap(), c);

        let e = ServerConfig::load(None, None, env(&[("KOKORO_ENGINE__MAX_BATCH", "0")])).unwrap_err();
        assert_eq!(e.to_string(), "engine.max_batch = 0: must be 1 to 64");
        let e = ServerConfig::load(None, None, env(&[("KOKORO_ENGINE__MAX_BACH", "2")])).unwrap_err();
        assert!(e.to_string().contains("max_bach"), "{e}");
        let e = ServerConfig::load(None, Some("huge"), []).unwrap_err();
        assert_eq!(e.to_string(), "profile = huge: must be one of cpu, gpu, edge, dev");
        for (name, _) in PROFILES {
            ServerConfig::load(None, Some(name), []).unwrap_or_else(|e| panic!("profile {name}: {e}"));
        }
    }
}
