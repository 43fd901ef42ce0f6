//! `kokoro voices list | info | mix`, and the voice lookup `say` uses: names and mixes
//! (`af_bella(2)+af_sky(1)`) resolved against the cached voices folder or a bundle file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kokoro_voice::format::{read_voice_file, write_safetensors};
use kokoro_voice::{MixSpec, STYLE_WIDTH, VOICE_ROWS, Voice, VoiceError, check_voice_name};

use crate::fetch::Cache;

/// Where named voices come from.
#[derive(Args, Debug, Clone, Default)]
pub struct VoiceSource {
    /// Folder of raw .bin packs (default: the cache's voices folder, filled by `kokoro fetch`).
    #[arg(long, global = true)]
    pub voices_dir: Option<PathBuf>,
    /// A voice bundle (.npz such as kokoro-onnx's voices-v1.0.bin, or safetensors) instead.
    #[arg(long, global = true, conflicts_with = "voices_dir")]
    pub voices_file: Option<PathBuf>,
}

/// Errors in what the user asked for (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum VoiceInputError {
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error("unknown voice {name:?}: not in {}", place.display())]
    Unknown { name: String, place: PathBuf },
}

impl VoiceSource {
    fn place(&self, cache: &Cache) -> PathBuf {
        self.voices_file.clone().or_else(|| self.voices_dir.clone()).unwrap_or_else(|| cache.voices())
    }

    /// Loads one voice by name.
    pub fn load(&self, cache: &Cache, name: &str) -> Result<Voice> {
        check_voice_name(name).map_err(VoiceInputError::from)?;
        let unknown = || VoiceInputError::Unknown { name: name.to_string(), place: self.place(cache) };
        if let Some(file) = &self.voices_file {
            let voices = read_voice_file(file).map_err(VoiceInputError::from)?;
            return Ok(voices.into_iter().find(|(n, _)| n == name).ok_or_else(unknown)?.1);
        }
        let path = self.place(cache).join(format!("{name}.bin"));
        if !path.is_file() {
            return Err(unknown().into());
        }
        let mut voices = read_voice_file(&path).map_err(VoiceInputError::from)?;
        Ok(voices.remove(0).1)
    }

    /// Loads a name or a mix.
    pub fn load_spec(&self, cache: &Cache, spec: &str, normalize: bool) -> Result<Voice> {
        // Without mix syntax it is one name: report a bad one as a bad name, not a bad mix.
        if !spec.contains(['+', '(']) && !spec.trim_start().get(1..).is_some_and(|rest| rest.contains('-')) {
            return self.load(cache, spec.trim());
        }
        let mix = MixSpec::parse(spec).map_err(|e| VoiceInputError::from(VoiceError::from(e)))?;
        let mix = if normalize { mix } else { mix.unnormalized() };
        if let Some(name) = mix.single() {
            return self.load(cache, &name);
        }
        let mut failure = None;
        let voice = mix.mix(|name| {
            self.load(cache, name).map_err(|e| {
                let message = format!("{e:#}");
                failure = Some(e);
                VoiceError::Unknown(message)
            })
        });
        match (voice, failure) {
            (_, Some(e)) => Err(e),
            (v, None) => Ok(v.map_err(VoiceInputError::from)?),
        }
    }

    /// Every voice name available, sorted.
    pub fn names(&self, cache: &Cache) -> Result<Vec<String>> {
        if let Some(file) = &self.voices_file {
            return Ok(read_voice_file(file).map_err(VoiceInputError::from)?.into_iter().map(|(n, _)| n).collect());
        }
        let dir = self.place(cache);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {} (run `kokoro fetch`?)", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".bin")).map(str::to_string))
            .filter(|n| kokoro_voice::is_valid_voice_name(n))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The voices of a [`VoiceSource`] as the engine's store: `say` and `bench` resolve names and
/// mixes through the engine (its cache, its mix rules), which loads named parts from here.
pub struct SourceStore {
    voices_file: Option<PathBuf>,
    dir: PathBuf,
}

impl SourceStore {
    pub fn new(source: &VoiceSource, cache: &Cache) -> Self {
        Self { voices_file: source.voices_file.clone(), dir: source.place(cache) }
    }

    /// The folder or bundle voices come from.
    pub fn place(&self) -> &Path {
        self.voices_file.as_deref().unwrap_or(&self.dir)
    }

    fn unknown(&self, name: &str) -> VoiceError {
        VoiceError::Unknown(name.to_string())
    }
}

impl kokoro_voice::VoiceStore for SourceStore {
    async fn list(&self) -> Result<Vec<String>, VoiceError> {
        match &self.voices_file {
            Some(file) => Ok(read_voice_file(file)?.into_iter().map(|(n, _)| n).collect()),
            None => kokoro_voice::DirStore { dir: self.dir.clone() }.list().await,
        }
    }

    async fn fetch(&self, name: &str) -> Result<Vec<u8>, VoiceError> {
        check_voice_name(name)?;
        let path = match &self.voices_file {
            Some(file) => file.clone(),
            None => self.dir.join(format!("{name}.bin")),
        };
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.unknown(name)),
            r => r.map_err(|e| VoiceError::Io(path.display().to_string(), e)),
        }
    }

    async fn load(&self, name: &str) -> Result<Voice, VoiceError> {
        check_voice_name(name)?;
        if let Some(file) = &self.voices_file {
            let voices = read_voice_file(file)?;
            return voices.into_iter().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(|| self.unknown(name));
        }
        let path = self.dir.join(format!("{name}.bin"));
        if !path.is_file() {
            return Err(self.unknown(name));
        }
        read_voice_file(&path)?.into_iter().next().map(|(_, v)| v).ok_or_else(|| self.unknown(name))
    }
}

#[derive(Subcommand, Debug)]
pub enum VoicesCommand {
    /// List the voices, with language and gender from the voice manifest (voices/manifest.json;
    /// `-` for voices it does not list).
    List,
    /// Describe a voice or a mix: where it comes from, its shape and value statistics.
    Info {
        /// A name (af_heart) or a mix (af_bella(2)+af_sky(1)).
        spec: String,
    },
    /// Cache-hit latency, cold load per format, and hit rates of a replayed trace.
    Bench,
    /// Pre-warm voices (names or mixes) into a cache in the background, with progress, then
    /// print the cache's snapshot.
    Prewarm {
        /// Voices to load and pin, comma-separated (af_heart,bf_emma,af_bella(2)+af_sky(1)).
        list: String,
        /// Cache budget in MiB.
        #[arg(long, default_value_t = 64)]
        budget_mib: usize,
    },
    /// Usage analytics recorded by `kokoro say` (requests, load times, busiest hour).
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mix voices and write the result (.bin raw f32, or .safetensors).
    Mix {
        /// The mix, Kokoro-FastAPI syntax: af_bella(2)+af_sky(1), '-' subtracts.
        spec: String,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
        /// Use the weights as written instead of normalizing them to sum to 1.
        #[arg(long)]
        no_normalize: bool,
    },
}

#[derive(Args, Debug)]
pub struct VoicesArgs {
    #[command(subcommand)]
    command: VoicesCommand,
    #[command(flatten)]
    source: VoiceSource,
}

/// What the voice manifest says about a voice, for display: language tag, language in words,
/// gender. None for voices it does not list (a user's own packs or bundles): those are shown as
/// unknown rather than guessed from their name.
fn describe(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    let entry = kokoro_voice::Manifest::bundled().get(name)?;
    Some((entry.language.as_str(), language_in_words(&entry.language), entry.gender.as_str()))
}

/// The manifest's language tags in words (Kokoro's names for them).
fn language_in_words(tag: &str) -> &'static str {
    match tag {
        "en-us" => "American English",
        "en-gb" => "British English",
        "es" => "Spanish",
        "fr-fr" => "French",
        "hi" => "Hindi",
        "it" => "Italian",
        "ja" => "Japanese",
        "pt-br" => "Brazilian Portuguese",
        "zh" => "Mandarin Chinese",
        _ => "unknown",
    }
}

pub fn voices(cache: &Cache, args: VoicesArgs) -> Result<()> {
    let source = &args.source;
    match args.command {
        VoicesCommand::List => {
            let mut out = std::io::stdout().lock();
            for name in source.names(cache)? {
                let (tag, language, gender) = describe(&name).unwrap_or(("-", "-", "-"));
                // A closed pipe (`kokoro voices list | head`) ends the listing quietly.
                if writeln!(out, "{name:<14} {tag:<6} {language:<22} {gender}").is_err() {
                    break;
                }
            }
        }
        VoicesCommand::Info { spec } => {
            let voice = source.load_spec(cache, &spec, true)?;
            let mix = MixSpec::parse(&spec).map_err(|e| VoiceInputError::from(VoiceError::from(e)))?;
            println!("voice:     {spec}");
            println!("key:       {}", mix.canonical().map_err(|e| VoiceInputError::from(VoiceError::from(e)))?);
            match mix.single() {
                None => {
                    for (name, w) in mix.weights().map_err(|e| VoiceInputError::from(VoiceError::from(e)))? {
                        println!("  {name:<14} weight {w:+.4}");
                    }
                }
                Some(name) => match describe(&name) {
                    Some((tag, language, gender)) => println!("language:  {tag} ({language})\ngender:    {gender}"),
                    None => println!("language:  - (not in voices/manifest.json)\ngender:    -"),
                },
            }
            println!("source:    {}", source.place(cache).display());
            println!("shape:     {VOICE_ROWS} x 1 x {STYLE_WIDTH} f32 ({} bytes)", voice.byte_size());
            let v = voice.values();
            let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
            let std = (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            let (min, max) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
            println!("values:    mean {mean:.4}, std {std:.4}, min {min:.4}, max {max:.4}");
        }
        VoicesCommand::Bench => crate::voice_bench::bench(cache, source)?,
        VoicesCommand::Prewarm { list, budget_mib } => {
            // Cache keys are canonical, so "af_sky+af_bella(2)" and "af_bella(2)+af_sky" share an
            // entry; a canonical key is itself a valid mix, so the loader takes it as it is.
            let specs: Vec<String> = split_list(&list)
                .into_iter()
                .map(|s| MixSpec::parse(&s).ok().and_then(|m| m.canonical().ok()).unwrap_or(s))
                .collect();
            let vc = std::sync::Arc::new(kokoro_voice::VoiceCache::new(budget_mib << 20));
            let (src, root) = (source.clone(), cache.root.clone());
            let load = std::sync::Arc::new(move |spec: &str| {
                src.load_spec(&Cache { root: root.clone() }, spec, true)
                    .map_err(|e| VoiceError::BadFile { what: spec.to_string(), message: format!("{e:#}") })
            });
            let run = kokoro_voice::Prewarm::start(vc.clone(), specs, load, |p| eprintln!("{}", p.log_line()));
            let failed = run.wait();
            print_snapshot(&vc.snapshot());
            if !failed.is_empty() {
                anyhow::bail!("{} voice(s) failed to pre-warm: {}", failed.len(), failed.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>().join(", "));
            }
        }
        VoicesCommand::Stats { json } => {
            let analytics = load_usage(cache);
            if json {
                println!("{}", analytics.to_json());
            } else if analytics.voices.is_empty() {
                println!("no usage recorded yet in {} (kokoro say records it)", usage_path(cache).display());
            } else {
                print!("{}", analytics.report());
            }
        }
        VoicesCommand::Mix { spec, out, no_normalize } => {
            let voice = source.load_spec(cache, &spec, !no_normalize)?;
            write_voice(&out, &spec, voice)?;
            eprintln!("wrote {} ({spec})", out.display());
        }
    }
    Ok(())
}

fn write_voice(out: &Path, spec: &str, voice: Voice) -> Result<()> {
    let bytes = if out.extension().is_some_and(|e| e == "safetensors") {
        let name: String = spec.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        write_safetensors(&[(name, voice)])?
    } else {
        voice.to_bin_bytes()
    };
    Ok(kokoro_engine::files::write_atomic(out, &bytes)?)
}

/// Where `say` keeps voice usage analytics.
pub fn usage_path(cache: &Cache) -> PathBuf {
    cache.root.join("voice-usage.json")
}

/// The saved analytics (empty when none, or unreadable: analytics never fail a request).
pub fn load_usage(cache: &Cache) -> kokoro_voice::UsageAnalytics {
    std::fs::read_to_string(usage_path(cache))
        .ok()
        .and_then(|j| kokoro_voice::UsageAnalytics::from_json(&j).ok())
        .unwrap_or_default()
}


/// Splits a comma-separated list of names and mixes (commas never occur inside a mix).
fn split_list(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Prints a cache's inspection snapshot.
pub fn print_snapshot(s: &kokoro_voice::CacheSnapshot) {
    println!("cache: {} entries, {:.1} of {:.1} MiB in use", s.entries.len(), s.bytes as f64 / 1048576.0, s.budget as f64 / 1048576.0);
    let st = &s.stats;
    println!(
        "stats: hits {} misses {} loads {} failures {} evictions {} coalesced {} prefetches {} uncacheable {}",
        st.hits, st.misses, st.loads, st.load_failures, st.evictions, st.coalesced, st.prefetches, st.uncacheable
    );
    println!("load times: <1 ms {} | <10 ms {} | <100 ms {} | <1 s {} | longer {}",
        st.load_time_histogram[0], st.load_time_histogram[1], st.load_time_histogram[2], st.load_time_histogram[3], st.load_time_histogram[4]);
    for e in &s.entries {
        println!("  {:<40} {:>8} bytes {:>6} hits  load {:>7.2} ms{}", e.key, e.bytes, e.hits, e.load_time.as_secs_f64() * 1e3, if e.pinned { "  pinned" } else { "" });
    }
}
