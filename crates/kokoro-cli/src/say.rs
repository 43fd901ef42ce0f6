//! `kokoro say`: text (or phonemes) + voice -> WAV, with an optional JSON report. Long text is
//! spoken chunk by chunk; each chunk's audio is written as soon as it is made.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use kokoro_model::{ForwardInput, Kokoro, MAX_SPEED, MIN_SPEED, SAMPLE_RATE, SourceNoise, Vocab, VoicePack};
use kokoro_text::FrontEnd;
use serde::Serialize;

use crate::device::DeviceChoice;
use crate::fetch::{self, Cache};
use crate::output::{AtomicFile, write_atomic};
use crate::text::TextArgs;
use crate::voices::VoiceSource;

#[derive(Args, Debug)]
pub struct SayArgs {
    #[command(flatten)]
    text: TextArgs,
    /// Phonemes in Kokoro's alphabet (misaki) instead of text, e.g. "həlˈO wˈɜɹld.".
    #[arg(long, conflicts_with_all = ["text", "file", "lang"])]
    phonemes: Option<String>,
    /// Voice name (af_heart, am_adam, ...) or mix (af_bella(2)+af_sky(1), '-' subtracts) from the
    /// cache's voices folder, or from --voices-dir / --voices-file.
    #[arg(long, default_value = "af_heart", conflicts_with = "voice_file")]
    voice: String,
    #[command(flatten)]
    voice_source: VoiceSource,
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
    /// Speaking rate, 0.25 to 4.0 (durations are divided by it).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
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
    /// Occurs when neither text nor phonemes were given, or the text is blank.
    #[error("no text to speak: give TEXT, --file PATH (- for stdin) or --phonemes")]
    NoText,
    /// Occurs when the text holds nothing that can be spoken (symbols only, say).
    #[error("nothing to say: the text has no words or numbers that can be spoken")]
    NothingToSay,
    /// Occurs when a text file is not UTF-8.
    #[error("{what} is not UTF-8 text (invalid byte at offset {at})")]
    NotUtf8 { what: String, at: usize },
    /// Occurs when --lang is not a supported dialect.
    #[error("unknown language {0:?}: use en-us or en-gb")]
    UnknownLanguage(String),
}

#[derive(Serialize)]
struct Report<'a> {
    text: Option<&'a str>,
    phonemes: &'a str,
    voice: &'a str,
    device: String,
    precision: &'static str,
    deterministic: bool,
    speed: f32,
    unknown_characters: Vec<String>,
    phoneme_ids: usize,
    durations: &'a [u32],
    chunks: Vec<ChunkReport>,
    samples: usize,
    sample_rate: u32,
    audio_seconds: f64,
    seconds: Seconds,
    rtf: f64,
}

#[derive(Serialize)]
struct ChunkReport {
    /// Byte range of the text (absent for --phonemes).
    source: Option<[usize; 2]>,
    phonemes: String,
    phoneme_ids: usize,
    samples: usize,
    guessed: Vec<String>,
}

#[derive(Serialize, Default)]
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
        None => {
            let start = Instant::now();
            let voice = args.voice_source.load_spec(cache, &args.voice, true)?;
            crate::voices::record_usage(cache, &args.voice, start.elapsed());
            voice.into()
        }
    };
    let device = args.device.device()?;
    let load_start = Instant::now();
    let kokoro = Kokoro::load(&weights, &device).with_context(|| format!("loading {}", weights.display()))?;
    let load = load_start.elapsed();

    // What to say: the phonemes as given, or the text's chunks, made one by one as we go.
    let text = match &args.phonemes {
        Some(_) => None,
        None => Some(args.text.read()?),
    };
    let front = match &text {
        Some(_) => Some(FrontEnd::new(args.text.dialect(args.voice_file.is_none().then_some(args.voice.as_str()))?)?),
        None => None,
    };
    let utterances: Box<dyn Iterator<Item = Result<Utterance>>> = match (&args.phonemes, &text, &front) {
        (Some(p), _, _) => Box::new(std::iter::once(Ok(Utterance { source: None, phonemes: p.clone(), guessed: Vec::new() }))),
        (None, Some(text), Some(front)) => Box::new(front.chunks_with(text, args.text.chunk_options()).map(|c| {
            let c = c?;
            Ok(Utterance { source: Some([c.source.start, c.source.end]), phonemes: c.phonemes, guessed: c.guessed })
        })),
        _ => unreachable!("text is read whenever phonemes are absent"),
    };

    let vocab = Vocab::from_config(&kokoro.config);
    let noise = if args.deterministic { SourceNoise::Deterministic } else { SourceNoise::Seeded(args.seed) };
    let mut wav = WavOut::create(&args.out)?;
    let mut unknown: Vec<char> = Vec::new();
    let mut durations: Vec<u32> = Vec::new();
    let mut chunks: Vec<ChunkReport> = Vec::new();
    let mut seconds = Seconds::default();
    for utterance in utterances {
        let utterance = utterance?;
        let encoded = vocab.encode(&utterance.phonemes);
        unknown.extend(encoded.unknown.iter().filter(|c| !unknown.contains(c)).collect::<Vec<_>>());
        if !utterance.guessed.is_empty() {
            eprintln!("note: not in the lexicon, read by letter-to-sound: {}", utterance.guessed.join(", "));
        }
        let input = ForwardInput::new(encoded.ids.clone(), voice.style_for(encoded.ids.len()))
            .with_speed(args.speed)
            .with_noise(noise);
        let out = kokoro.model.forward(&input, &device)?;
        wav.write(&out.audio)?;
        let t = &out.timings;
        seconds.bert += t.bert.as_secs_f64();
        seconds.predictor += t.predictor.as_secs_f64();
        seconds.text_encoder += t.text_encoder.as_secs_f64();
        seconds.decoder += t.decoder.as_secs_f64();
        seconds.total += t.total.as_secs_f64();
        durations.extend(&out.durations);
        if text.is_some() {
            eprintln!(
                "chunk {}: {} phonemes -> {:.2} s of audio in {:.2} s",
                chunks.len() + 1,
                encoded.ids.len(),
                out.audio.len() as f64 / SAMPLE_RATE as f64,
                t.total.as_secs_f64()
            );
        }
        chunks.push(ChunkReport {
            source: utterance.source,
            phonemes: utterance.phonemes,
            phoneme_ids: encoded.ids.len(),
            samples: out.audio.len(),
            guessed: utterance.guessed,
        });
    }
    if chunks.is_empty() {
        return Err(InputError::NothingToSay.into());
    }
    let samples = wav.finish()?;
    if !unknown.is_empty() {
        eprintln!(
            "warning: dropped {} character(s) not in Kokoro's phoneme vocab: {}",
            unknown.len(),
            unknown.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(" ")
        );
    }

    let audio_seconds = samples as f64 / SAMPLE_RATE as f64;
    let rtf = seconds.total / audio_seconds;
    eprintln!(
        "wrote {} ({:.2} s of audio, {} chunk(s), {} frames) in {:.2} s (RTF {:.3}; load {:.2} s)",
        args.out.display(),
        audio_seconds,
        chunks.len(),
        durations.iter().sum::<u32>(),
        seconds.total,
        rtf,
        load.as_secs_f64()
    );
    seconds.load = load.as_secs_f64();
    if let Some(path) = &args.report {
        let phonemes = chunks.iter().map(|c| c.phonemes.as_str()).collect::<Vec<_>>().join(" ");
        let report = Report {
            text: text.as_deref(),
            phonemes: &phonemes,
            voice: &args.voice,
            device: format!("{:?}", args.device).to_lowercase(),
            precision: kokoro.precision.as_str(),
            deterministic: args.deterministic,
            speed: args.speed,
            unknown_characters: unknown.iter().map(|c| c.to_string()).collect(),
            phoneme_ids: chunks.iter().map(|c| c.phoneme_ids).sum(),
            durations: &durations,
            chunks,
            samples,
            sample_rate: SAMPLE_RATE,
            audio_seconds,
            seconds,
            rtf,
        };
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}

/// One model call's worth of input.
struct Utterance {
    source: Option<[usize; 2]>,
    phonemes: String,
    guessed: Vec<String>,
}

/// A 16-bit PCM WAV written as the audio arrives, under its name only once finished.
struct WavOut {
    file: AtomicFile,
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    samples: usize,
}

impl WavOut {
    fn create(path: &Path) -> Result<Self> {
        let (file, out) = AtomicFile::create(path)?;
        let writer = hound::WavWriter::new(out, wav_spec()).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { file, writer, samples: 0 })
    }

    /// Writes 16-bit PCM, clipping to [-1, 1].
    fn write(&mut self, audio: &[f32]) -> Result<()> {
        for &s in audio {
            self.writer.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        self.samples += audio.len();
        Ok(())
    }

    /// Completes the header and moves the file to its name.
    fn finish(self) -> Result<usize> {
        self.writer.finalize()?;
        self.file.commit()?;
        Ok(self.samples)
    }
}

/// `--speed`: a number in OpenAI's range, [`MIN_SPEED`, `MAX_SPEED`] (clap exits with code 2 otherwise).
fn parse_speed(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(speed) if (MIN_SPEED..=MAX_SPEED).contains(&speed) => Ok(speed),
        _ => Err(format!("speed must be a number from {MIN_SPEED} to {MAX_SPEED}")),
    }
}

fn wav_spec() -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: SAMPLE_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

