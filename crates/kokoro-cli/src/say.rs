//! `kokoro say`: text (or phonemes) + voice -> WAV, with an optional JSON report. Long text is
//! spoken chunk by chunk; each chunk's audio is written as soon as it is made.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kokoro_engine::wav::PcmWavWriter;
use kokoro_engine::{MAX_SPEED, MIN_SPEED, SAMPLE_RATE, SourceNoise, Timeline, Voice, WordTime};
use serde::Serialize;
use std::io::IsTerminal;

use crate::device::DeviceChoice;
use crate::fetch::Cache;
use kokoro_engine::files::{AtomicFile, write_atomic};
use crate::text::TextArgs;
use crate::voices::{VoiceInputError, VoiceSource};

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
    #[command(flatten)]
    precision: crate::device::PrecisionArg,
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
    /// Occurs when --precision asks for arithmetic this machine or backend does not have.
    #[error("--precision {precision} needs {needs}")]
    PrecisionUnavailable { precision: &'static str, needs: &'static str },
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
    /// Words in seconds from the start of the whole audio (text only).
    words: Vec<WordTime>,
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
    let (engine, load) = crate::load::engine(cache, args.weights.as_ref(), args.device, args.precision.precision(), &args.voice_source)?;
    let engine = std::sync::Arc::new(engine);
    let _usage = crate::load::save_usage(cache, &engine);
    let place = engine.store().place().display().to_string();

    let voice = match &args.voice_file {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Voice::from_bin_bytes(&bytes, &path.display().to_string()).map_err(VoiceInputError::from)?
        }
        None => {
            pollster::block_on(engine.voice(&args.voice)).with_context(|| format!("voice {:?} (voices from {place})", args.voice))?
        }
    };

    // What to say: the phonemes as given, or the text's utterances, made one by one as we go.
    let text = match &args.phonemes {
        Some(_) => None,
        None => Some(args.text.read()?),
    };
    let plan = match (&args.phonemes, &text) {
        (Some(p), _) => engine.plan_phonemes(p.clone()),
        (None, Some(text)) => {
            let voice_for_dialect = if args.voice_file.is_none() { args.voice.as_str() } else { "" };
            let dialect = engine.dialect(args.text.lang.as_deref(), voice_for_dialect)?;
            engine.plan(text.as_str(), dialect, args.text.chunk_options())?
        }
        _ => unreachable!("text is read whenever phonemes are absent"),
    };
    let progress = Progress::new(text.as_ref().map_or(0, |t| t.len()));

    let noise = if args.deterministic { SourceNoise::Deterministic } else { SourceNoise::Seeded(args.seed) };
    let mut wav = WavOut::create(&args.out)?;
    let mut timeline = Timeline::new();
    let mut unknown: Vec<char> = Vec::new();
    let mut durations: Vec<u32> = Vec::new();
    let mut chunks: Vec<ChunkReport> = Vec::new();
    let mut words: Vec<WordTime> = Vec::new();
    let mut seconds = Seconds::default();
    for utterance in plan {
        let utterance = utterance?;
        if !utterance.guessed.is_empty() {
            progress.note(format!("note: not in the lexicon, read by letter-to-sound: {}", utterance.guessed.join(", ")));
        }
        let chunk = engine.synthesize(&utterance, &voice, args.speed, noise)?;
        wav.write(&chunk.audio)?;
        words.extend(timeline.place(&chunk));
        unknown.extend(chunk.unknown.iter().filter(|c| !unknown.contains(c)).collect::<Vec<_>>());
        let t = &chunk.timings;
        seconds.bert += t.bert.as_secs_f64();
        seconds.predictor += t.predictor.as_secs_f64();
        seconds.text_encoder += t.text_encoder.as_secs_f64();
        seconds.decoder += t.decoder.as_secs_f64();
        seconds.total += t.total.as_secs_f64();
        durations.extend(&chunk.durations);
        if text.is_some() {
            progress.note(format!(
                "chunk {}: {} phonemes -> {:.2} s of audio in {:.2} s",
                chunks.len() + 1,
                chunk.phoneme_ids,
                chunk.seconds(),
                t.total.as_secs_f64()
            ));
        }
        progress.advance(chunk.source.as_ref().map_or(0, |s| s.end), timeline.samples());
        chunks.push(ChunkReport {
            source: chunk.source.map(|s| [s.start, s.end]),
            phonemes: chunk.phonemes,
            phoneme_ids: chunk.phoneme_ids,
            samples: chunk.audio.len(),
            guessed: chunk.guessed,
        });
    }
    progress.finish();
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
            device: engine.backend().as_str().to_string(),
            precision: engine.kokoro().precision.as_str(),
            deterministic: args.deterministic,
            speed: args.speed,
            unknown_characters: unknown.iter().map(|c| c.to_string()).collect(),
            phoneme_ids: chunks.iter().map(|c| c.phoneme_ids).sum(),
            durations: &durations,
            words,
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

/// A progress bar over the text (bytes spoken of the whole), with audio made and time left; shown
/// only on a terminal and for texts of more than one chunk's worth. Notes print above it.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Texts shorter than this finish before a bar would say anything useful.
    const MIN_TEXT_BYTES: usize = 1000;

    fn new(text_bytes: usize) -> Self {
        let bar = (text_bytes >= Self::MIN_TEXT_BYTES && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(text_bytes as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% of the text, {msg} of audio; {elapsed} so far, {eta} left")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self { bar }
    }

    fn note(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn advance(&self, text_done: usize, samples: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(text_done as u64);
            bar.set_message(format!("{:.0} s", samples as f64 / SAMPLE_RATE as f64));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A 16-bit PCM WAV written as the audio arrives, under its name only once finished.
struct WavOut {
    file: AtomicFile,
    writer: PcmWavWriter<std::io::BufWriter<std::fs::File>>,
}

impl WavOut {
    fn create(path: &Path) -> Result<Self> {
        let (file, out) = AtomicFile::create(path)?;
        let writer = PcmWavWriter::new(out).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { file, writer })
    }

    fn write(&mut self, audio: &[f32]) -> Result<()> {
        Ok(self.writer.write(audio)?)
    }

    /// Completes the header and moves the file to its name; returns the samples written.
    fn finish(self) -> Result<usize> {
        let samples = self.writer.finish()?;
        self.file.commit()?;
        Ok(samples)
    }
}

/// `--speed`: a number in OpenAI's range, [`MIN_SPEED`, `MAX_SPEED`] (clap exits with code 2 otherwise).
pub(crate) fn parse_speed(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(speed) if (MIN_SPEED..=MAX_SPEED).contains(&speed) => Ok(speed),
        _ => Err(format!("speed must be a number from {MIN_SPEED} to {MAX_SPEED}")),
    }
}
