//! `kokoro say`: phonemes + voice -> WAV, with an optional JSON report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use kokoro_model::{ForwardInput, Kokoro, SAMPLE_RATE, SourceNoise, Vocab, VoicePack};
use serde::Serialize;

use crate::device::DeviceChoice;
use crate::fetch::{self, Cache};

#[derive(Args, Debug)]
pub struct SayArgs {
    /// Phonemes in Kokoro's alphabet (misaki), e.g. "həlˈO wˈɜɹld.".
    #[arg(long)]
    phonemes: String,
    /// Voice name from the cache's voices folder (af_heart, am_adam, ...).
    #[arg(long, default_value = "af_heart", conflicts_with = "voice_file")]
    voice: String,
    /// A raw .bin voice pack (510 x 1 x 256 f32) to use instead of a named voice.
    #[arg(long)]
    voice_file: Option<PathBuf>,
    /// Output WAV file (24 kHz, mono, 16-bit PCM).
    #[arg(long, short, default_value = "out.wav")]
    out: PathBuf,
    /// Backend.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Zero the harmonic source's noise (reproducible output, as the ONNX export computes).
    #[arg(long)]
    deterministic: bool,
    /// Seed of the source's noise when not deterministic.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Speaking rate (durations are divided by it).
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
    /// Write a JSON report (durations, per-stage seconds, RTF) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Weights to load (default: the cached canonical file, fetched if missing).
    #[arg(long)]
    weights: Option<PathBuf>,
}

/// Errors in what the user asked for (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Occurs when no voice pack of that name is in the voices folder.
    #[error("unknown voice {name:?}: no {name}.bin in {}", dir.display())]
    UnknownVoice { name: String, dir: PathBuf },
    /// Occurs when a voice name could escape the voices folder or is otherwise malformed.
    #[error("invalid voice name {0:?}: use a name like af_heart (letters, digits, _), or --voice-file PATH")]
    InvalidVoiceName(String),
}

#[derive(Serialize)]
struct Report<'a> {
    phonemes: &'a str,
    voice: &'a str,
    device: String,
    precision: &'static str,
    deterministic: bool,
    speed: f32,
    unknown_characters: Vec<String>,
    phoneme_ids: usize,
    durations: &'a [u32],
    samples: usize,
    sample_rate: u32,
    audio_seconds: f64,
    seconds: Seconds,
    rtf: f64,
}

#[derive(Serialize)]
struct Seconds {
    load: f64,
    bert: f64,
    predictor: f64,
    text_encoder: f64,
    decoder: f64,
    total: f64,
}

pub fn say(cache: &Cache, args: SayArgs) -> Result<()> {
    let weights = match &args.weights {
        Some(p) => p.clone(),
        None => {
            if !cache.is_complete() {
                eprintln!("weights or voices missing from {}; fetching them first", cache.root.display());
                fetch::fetch(cache, false)?;
            }
            cache.canonical()
        }
    };
    let voice = match &args.voice_file {
        Some(path) => VoicePack::from_bin_file(path)?,
        None => load_voice(cache, &args.voice)?,
    };
    let device = args.device.device()?;
    let load_start = Instant::now();
    let kokoro = Kokoro::load(&weights, &device).with_context(|| format!("loading {}", weights.display()))?;
    let load = load_start.elapsed();

    let encoded = Vocab::from_config(&kokoro.config).encode(&args.phonemes);
    if !encoded.unknown.is_empty() {
        eprintln!(
            "warning: dropped {} character(s) not in Kokoro's phoneme vocab: {}",
            encoded.unknown.len(),
            encoded.unknown.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(" ")
        );
    }
    let noise = if args.deterministic { SourceNoise::Deterministic } else { SourceNoise::Seeded(args.seed) };
    let input = ForwardInput::new(encoded.ids.clone(), voice.style_for(encoded.ids.len()))
        .with_speed(args.speed)
        .with_noise(noise);
    let out = kokoro.model.forward(&input, &device)?;
    write_wav(&args.out, &out.audio)?;

    let audio_seconds = out.audio.len() as f64 / SAMPLE_RATE as f64;
    let t = &out.timings;
    let rtf = t.total.as_secs_f64() / audio_seconds;
    eprintln!(
        "wrote {} ({:.2} s of audio, {} frames) in {:.2} s (RTF {:.3}; load {:.2} s)",
        args.out.display(),
        audio_seconds,
        out.durations.iter().sum::<u32>(),
        t.total.as_secs_f64(),
        rtf,
        load.as_secs_f64()
    );
    if let Some(path) = &args.report {
        let report = Report {
            phonemes: &args.phonemes,
            voice: &args.voice,
            device: format!("{:?}", args.device).to_lowercase(),
            precision: kokoro.precision.as_str(),
            deterministic: args.deterministic,
            speed: args.speed,
            unknown_characters: encoded.unknown.iter().map(|c| c.to_string()).collect(),
            phoneme_ids: encoded.ids.len(),
            durations: &out.durations,
            samples: out.audio.len(),
            sample_rate: SAMPLE_RATE,
            audio_seconds,
            seconds: Seconds {
                load: load.as_secs_f64(),
                bert: t.bert.as_secs_f64(),
                predictor: t.predictor.as_secs_f64(),
                text_encoder: t.text_encoder.as_secs_f64(),
                decoder: t.decoder.as_secs_f64(),
                total: t.total.as_secs_f64(),
            },
            rtf,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Loads a named voice from the cache. Names are validated first, so none can leave the folder.
fn load_voice(cache: &Cache, voice: &str) -> Result<VoicePack> {
    if !kokoro_model::voice::is_valid_voice_name(voice) {
        return Err(InputError::InvalidVoiceName(voice.to_string()).into());
    }
    let path = cache.voices().join(format!("{voice}.bin"));
    if !path.is_file() {
        return Err(InputError::UnknownVoice { name: voice.to_string(), dir: cache.voices() }.into());
    }
    Ok(VoicePack::from_bin_file(&path)?)
}

/// Writes 16-bit PCM, clipping to [-1, 1].
pub fn write_wav(path: &Path, audio: &[f32]) -> Result<()> {
    let spec = hound::WavSpec { channels: 1, sample_rate: SAMPLE_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("creating {}", path.display()))?;
    for &s in audio {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
    }
    w.finalize()?;
    Ok(())
}
