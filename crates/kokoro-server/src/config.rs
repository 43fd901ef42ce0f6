//! The server's configuration: one TOML file, every key optional (the defaults serve on
//! 127.0.0.1:8880), checked at load with errors that name the key, the value and the rule.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kokoro_engine::{ChunkOptions, SchedulerConfig};

pub use crate::alerts::AlertsConfig;
pub use crate::jobs::JobsConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration of `kokoro serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Model names `/v1/audio/speech` accepts (all are Kokoro-82M v1.0); the first is the one
    /// `/v1/models` lists first.
    pub models: Vec<String>,
    /// Seconds between checks of the configuration file for changes, which are then applied as
    /// a reload (SIGHUP) would (0: only SIGHUP and `/admin/reload`).
    pub watch_config_secs: f64,
    pub limits: Limits,
    pub voices: VoicesConfig,
    pub text: TextConfig,
    /// The engine's scheduler: batching, queue bounds, the response cache.
    pub engine: SchedulerConfig,
    pub log: LogConfig,
    pub security: SecurityConfig,
    pub rate_limit: RateLimitConfig,
    pub alerts: AlertsConfig,
    pub jobs: JobsConfig,
}

/// Where the logs go and how they look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (for people), `json` (one object per line) or `logfmt` (key=value).
    pub format: LogFormat,
    /// Which lines: a level (`info`) or tracing's directives (`info,kokoro_engine=debug`).
    /// `KOKORO_LOG` wins at start; `/admin/log-level` changes it while running.
    pub level: String,
    /// A file to write instead of stderr, rotated (empty: stderr).
    pub file: Option<PathBuf>,
    /// Rotate when the file would pass this many bytes...
    pub rotate_bytes: u64,
    /// ...or when it is this many seconds old.
    pub rotate_age_secs: u64,
    /// Rotated files kept (`kokoro.log.1` the newest); older ones are deleted.
    pub keep_files: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
    Logfmt,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into(), file: None, rotate_bytes: 64 << 20, rotate_age_secs: 86_400, keep_files: 7 }
    }
}

/// Who may call what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Keys a client must send as `Authorization: Bearer KEY` to reach `/v1` and `/dev` (empty:
    /// no key needed). Health, metrics and the status page stay open.
    pub api_keys: Vec<String>,
    /// The token `/admin/*` needs (`Authorization: Bearer TOKEN`); empty: `/admin` is off.
    pub admin_token: String,
    /// Serve `/debug/*` (caches, memory, stages, the configuration with secrets hidden).
    pub debug_routes: bool,
    /// Origins a browser page may call from (`["*"]` for any); empty: no CORS headers.
    pub cors_allow_origins: Vec<String>,
}

/// Per-client request rates on `/v1` and `/dev` (a client is its API key, else its address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per minute per client (0: no limit).
    pub requests_per_minute: u32,
    /// Requests a client may send at once above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { requests_per_minute: 0, burst: 10 }
    }
}

/// What one request may ask, and when the server refuses work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest `input`, in characters (OpenAI's limit is 4,096).
    pub max_input_chars: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// A request not finished after this many seconds fails with 504.
    pub request_timeout_secs: f64,
    /// New speech is refused (503) while the process's resident memory is above this many
    /// bytes, so it never grows past it (0: no limit).
    pub memory_limit_bytes: u64,
}

/// Voice names, start-up pre-warming and the voice cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VoicesConfig {
    /// Other names for voices or mixes: OpenAI's voice names map here, so an OpenAI client's
    /// `voice="alloy"` speaks.
    pub aliases: BTreeMap<String, String>,
    /// Voices loaded and pinned at start-up, before the server reports ready.
    pub prewarm: Vec<String>,
    /// Byte budget of the voice cache (a voice is 510 x 256 floats, 522 KiB).
    pub cache_bytes: usize,
}

/// How a request's text is cut into the chunks the model speaks one pass at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
            watch_config_secs: 2.0,
            limits: Limits::default(),
            voices: VoicesConfig::default(),
            text: TextConfig::default(),
            engine: SchedulerConfig::default(),
            log: LogConfig::default(),
            security: SecurityConfig::default(),
            rate_limit: RateLimitConfig::default(),
            alerts: AlertsConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_input_chars: 4096, max_body_bytes: 1 << 20, request_timeout_secs: 300.0, memory_limit_bytes: 0 }
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
        Self { aliases: aliases.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(), prewarm: vec!["af_heart".to_string()], cache_bytes: 16 << 20 }
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
const TOP_KEYS: [&str; 10] = ["listen", "models", "limits", "voices", "text", "engine", "log", "security", "rate_limit", "alerts"];

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
            // KOKORO_LOG is the log level at start (logging::init), not the `[log]` section.
            if rest == "LOG" {
                continue;
            }
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
        if !self.engine.precision.available() {
            return invalid("engine.precision", &self.engine.precision.as_str(), "int8 needs a CPU with AVX512_VNNI (use f32)");
        }
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
        if !(1 << 20..=16 << 30).contains(&self.voices.cache_bytes) {
            return invalid("voices.cache_bytes", &self.voices.cache_bytes, "must be 1 MiB to 16 GiB");
        }
        if l.memory_limit_bytes != 0 && l.memory_limit_bytes < 256 << 20 {
            return invalid("limits.memory_limit_bytes", &l.memory_limit_bytes, "must be 0 (no limit) or at least 268435456 (256 MiB: the model alone needs more)");
        }
        let g = &self.log;
        if crate::logging::parse_level(&g.level).is_err() {
            return invalid("log.level", &g.level, "must be a level (error, warn, info, debug, trace) or tracing directives such as info,kokoro_engine=debug");
        }
        if g.rotate_bytes < 4096 {
            return invalid("log.rotate_bytes", &g.rotate_bytes, "must be at least 4096");
        }
        if g.rotate_age_secs < 1 {
            return invalid("log.rotate_age_secs", &g.rotate_age_secs, "must be at least 1");
        }
        if !(1..=1000).contains(&g.keep_files) {
            return invalid("log.keep_files", &g.keep_files, "must be 1 to 1000");
        }
        let sec = &self.security;
        for key in &sec.api_keys {
            if key.len() < 8 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return invalid("security.api_keys", &"<redacted>", "each key must be at least 8 printable characters without spaces");
            }
        }
        if !sec.admin_token.is_empty() && (sec.admin_token.len() < 16 || !sec.admin_token.bytes().all(|b| b.is_ascii_graphic())) {
            return invalid("security.admin_token", &"<redacted>", "must be empty (no /admin) or at least 16 printable characters without spaces");
        }
        for origin in &sec.cors_allow_origins {
            if origin != "*" && (axum::http::HeaderValue::from_str(origin).is_err() || !(origin.starts_with("http://") || origin.starts_with("https://"))) {
                return invalid("security.cors_allow_origins", origin, "must be \"*\" or origins such as https://example.com");
            }
        }
        let a = &self.alerts;
        if !(a.interval_secs > 0.0 && a.interval_secs <= 3600.0) {
            return invalid("alerts.interval_secs", &a.interval_secs, "must be above 0 and at most 3600");
        }
        if !(a.window_secs >= a.interval_secs && a.window_secs <= 86_400.0) {
            return invalid("alerts.window_secs", &a.window_secs, "must be at least alerts.interval_secs and at most 86400");
        }
        if !(a.for_secs >= 0.0 && a.for_secs <= 86_400.0) {
            return invalid("alerts.for_secs", &a.for_secs, "must be 0 to 86400");
        }
        for (key, value) in [
            ("alerts.queue_saturation", a.queue_saturation),
            ("alerts.error_rate", a.error_rate),
            ("alerts.memory_ratio", a.memory_ratio),
            ("alerts.voice_cache_hit_rate", a.voice_cache_hit_rate),
            ("alerts.gpu_memory_ratio", a.gpu_memory_ratio),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return invalid(key, &value, "must be a share above 0 and at most 1");
            }
        }
        if !(a.first_audio_p99_secs > 0.0) || !(a.voice_cache_evictions_per_sec > 0.0) {
            return invalid("alerts.first_audio_p99_secs", &a.first_audio_p99_secs.min(a.voice_cache_evictions_per_sec), "thresholds must be above 0");
        }
        if !a.webhook_url.is_empty() && !a.webhook_url.starts_with("http://") {
            return invalid("alerts.webhook_url", &a.webhook_url, "must be empty or an http:// URL (plain HTTP: put TLS in front of a receiver across a network)");
        }
        if !(self.watch_config_secs == 0.0 || (0.1..=3600.0).contains(&self.watch_config_secs)) {
            return invalid("watch_config_secs", &self.watch_config_secs, "must be 0 (off) or 0.1 to 3600");
        }
        let j = &self.jobs;
        if !(1..=1_000_000).contains(&j.max_items) {
            return invalid("jobs.max_items", &j.max_items, "must be 1 to 1000000");
        }
        if !(1024..=4 << 30).contains(&j.max_upload_bytes) {
            return invalid("jobs.max_upload_bytes", &j.max_upload_bytes, "must be 1 KiB to 4 GiB");
        }
        if !(1..=256).contains(&j.window) {
            return invalid("jobs.window", &j.window, "must be 1 to 256");
        }
        if !(1..=20).contains(&j.webhook_attempts) {
            return invalid("jobs.webhook_attempts", &j.webhook_attempts, "must be 1 to 20");
        }
        if !j.webhook_secret.is_empty() && j.webhook_secret.len() < 16 {
            return invalid("jobs.webhook_secret", &"<redacted>", "must be empty (no webhooks) or at least 16 characters");
        }
        for host in &j.webhook_hosts {
            if host.is_empty() || host.contains(['/', '@', ' ']) {
                return invalid("jobs.webhook_hosts", host, "each must be a host or host:port, such as receiver.internal:9000");
            }
        }
        if !(j.keep_hours >= 0.0 && j.keep_hours <= 87_600.0) {
            return invalid("jobs.keep_hours", &j.keep_hours, "must be 0 (kept) to 87600");
        }
        if self.rate_limit.requests_per_minute > 0 && self.rate_limit.burst == 0 {
            return invalid("rate_limit.burst", &0, "must be at least 1 when requests_per_minute is set");
        }
        Ok(())
    }

    /// The configuration with its secrets replaced (what `/debug/config` shows).
    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        c.security.api_keys = c.security.api_keys.iter().map(|_| "<redacted>".to_string()).collect();
        if !c.security.admin_token.is_empty() {
            c.security.admin_token = "<redacted>".into();
        }
        if !c.jobs.webhook_secret.is_empty() {
            c.jobs.webhook_secret = "<redacted>".into();
        }
        c
    }

    /// What a live reload cannot change (they need a restart): the address, the routes' layers
    /// (CORS, body limit) and the scheduler's threads and queues. Returns their keys.
    pub fn needs_restart(&self, new: &Self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut engine = new.engine.clone();
        engine.response_cache_bytes = self.engine.response_cache_bytes;
        for (key, changed) in [
            ("listen", self.listen != new.listen),
            ("limits.max_body_bytes", self.limits.max_body_bytes != new.limits.max_body_bytes),
            ("security.cors_allow_origins", self.security.cors_allow_origins != new.security.cors_allow_origins),
            ("log.format", self.log.format != new.log.format),
            ("log.file", self.log.file != new.log.file),
            ("engine", engine != self.engine),
            ("jobs.dir", self.jobs.dir != new.jobs.dir),
            ("jobs.max_upload_bytes", self.jobs.max_upload_bytes != new.jobs.max_upload_bytes),
        ] {
            if changed {
                keys.push(key);
            }
        }
        keys
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

/// The configuration's JSON Schema (`kokoro config schema`), from the structs and their doc
/// comments (schemars).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ServerConfig)).expect("a schema serializes")
}

/// `docs/configuration.md`: every key with its type, default and meaning, from [`schema`] and
/// the defaults (`kokoro config docs`; a test checks the file is current).
pub fn docs_markdown() -> String {
    use std::fmt::Write as _;
    let schema = schema();
    let defaults = serde_json::to_value(ServerConfig::default()).expect("the defaults serialize");
    let defs = &schema["$defs"];
    let mut out = String::new();
    let _ = writeln!(out, "# Configuration of `kokoro serve`\n");
    let _ = writeln!(
        out,
        "<!-- Generated by `kokoro config docs > docs/configuration.md` from crates/kokoro-server/src/config.rs; a test checks it is current. -->\n"
    );
    let _ = writeln!(
        out,
        "One TOML file (`--config`), every key optional. Layers, each over the one before: these defaults, a built-in \
         profile (`--profile {}`), the file, then `KOKORO_<SECTION>__<KEY>=value` variables (`KOKORO_LIMITS__MAX_INPUT_CHARS=2000`). \
         `kokoro config check` validates, `kokoro config print` shows the result, `kokoro config schema` prints the JSON Schema. \
         What can change while running is listed in docs/server.md (Configuration).\n",
        PROFILES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join("|")
    );
    let table = |out: &mut String, props: &serde_json::Map<String, serde_json::Value>, defaults: &serde_json::Value, prefix: &str| {
        let _ = writeln!(out, "| key | type | default | meaning |\n|---|---|---|---|");
        for (key, prop) in props {
            if prop.get("$ref").is_some() && type_of(prop, defs).starts_with('[') {
                continue; // a section of its own
            }
            let default = default_text(&defaults[key.as_str()]);
            let _ = writeln!(out, "| `{prefix}{key}` | {} | {default} | {} |", type_of(prop, defs), cell(description(prop, defs)));
        }
        out.push('\n');
    };
    let _ = writeln!(out, "## Top level\n");
    let props = schema["properties"].as_object().expect("an object schema");
    table(&mut out, props, &defaults, "");
    for (key, prop) in props {
        let Some(def) = prop.get("$ref").and_then(|r| r.as_str()).and_then(|r| r.strip_prefix("#/$defs/")).map(|name| &defs[name]) else { continue };
        let Some(section) = def.get("properties").and_then(|p| p.as_object()) else { continue };
        let _ = writeln!(out, "## `[{key}]`\n");
        if let Some(d) = prop.get("description").or_else(|| def.get("description")).and_then(|d| d.as_str()) {
            let _ = writeln!(out, "{}\n", d.replace('\n', " "));
        }
        table(&mut out, section, &defaults[key.as_str()], &format!("{key}."));
    }
    out.trim_end().to_string() + "\n"
}

/// A property's description, or its definition's.
fn description<'a>(prop: &'a serde_json::Value, defs: &'a serde_json::Value) -> &'a str {
    prop.get("description")
        .or_else(|| prop.get("$ref").and_then(|r| r.as_str()).and_then(|r| r.strip_prefix("#/$defs/")).and_then(|n| defs[n].get("description")))
        .and_then(|d| d.as_str())
        .unwrap_or("")
}

/// A property's type in words: `integer`, `string or none`, `array of string`, `"a" \| "b"`;
/// `[section]` for a table of its own.
fn type_of(prop: &serde_json::Value, defs: &serde_json::Value) -> String {
    if let Some(name) = prop.get("$ref").and_then(|r| r.as_str()).and_then(|r| r.strip_prefix("#/$defs/")) {
        let def = &defs[name];
        if def.get("properties").is_some() {
            return format!("[{name}]");
        }
        return type_of(def, defs);
    }
    if let Some(values) = prop.get("enum").and_then(|e| e.as_array()) {
        return values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(" \\| ");
    }
    if let Some(options) = prop.get("oneOf").or_else(|| prop.get("anyOf")).and_then(|o| o.as_array()) {
        return options
            .iter()
            .map(|o| o.get("const").map_or_else(|| type_of(o, defs), |c| format!("`{c}`")))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    let types: Vec<String> = match &prop["type"] {
        serde_json::Value::String(t) => vec![t.clone()],
        serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        _ => vec!["any".into()],
    };
    types
        .iter()
        .map(|t| match t.as_str() {
            "array" => format!("array of {}", type_of(&prop["items"], defs)),
            "object" => match prop.get("additionalProperties") {
                Some(v) if v.is_object() => format!("table of {}", type_of(v, defs)),
                _ => "table".into(),
            },
            "null" => "none".into(),
            other => other.into(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn default_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Object(m) if m.len() > 3 => format!("{} entries", m.len()),
        v => format!("`{}`", v.to_string().replace('|', "\\|")),
    }
}

fn cell(text: &str) -> String {
    // Rustdoc's links (`[`Engine::batching_pays`]`) read as plain code here.
    let text = text.replace("[`", "`").replace("`]", "`");
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
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
    fn docs_configuration_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = docs_markdown();
        if on_disk != generated {
            let _ = std::fs::write(path.with_extension("md.new"), &generated);
            panic!("docs/configuration.md is out of date: run `kokoro config docs > docs/configuration.md` (the new text is in docs/configuration.md.new)");
        }
        // Every key of every section is documented, with a meaning.
        for section in ["limits", "voices", "text", "engine", "log", "security", "rate_limit", "alerts", "jobs"] {
            assert!(generated.contains(&format!("## `[{section}]`")), "{section}");
        }
        for line in generated.lines().filter(|l| l.starts_with("| `")) {
            assert!(!line.ends_with("|  |"), "a key without a meaning: {line}");
        }
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
        let e = ServerConfig::load(None, None, env(&[("KOKORO_ENGINE__PRECISION", "int7")])).unwrap_err();
        assert!(e.to_string().contains("unknown variant `int7`, expected `f32` or `int8`"), "{e}");
        match ServerConfig::load(None, None, env(&[("KOKORO_ENGINE__PRECISION", "int8")])) {
            Ok(c) => assert!(c.engine.precision.available() && c.engine.precision == kokoro_model::ComputePrecision::Int8),
            Err(e) => {
                assert!(!kokoro_model::ComputePrecision::Int8.available(), "refused where it runs: {e}");
                assert_eq!(e.to_string(), "engine.precision = int8: int8 needs a CPU with AVX512_VNNI (use f32)");
            }
        }
        let e = ServerConfig::load(None, Some("huge"), []).unwrap_err();
        assert_eq!(e.to_string(), "profile = huge: must be one of cpu, gpu, edge, dev");
        for (name, _) in PROFILES {
            ServerConfig::load(None, Some(name), []).unwrap_or_else(|e| panic!("profile {name}: {e}"));
        }
    }
}
