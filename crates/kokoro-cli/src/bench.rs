//! `kokoro bench`: real-time factor on three utterance lengths, side by side with onnxruntime
//! (int8 export and its float twin) on the same phonemes, voice and machine, in the same run.
//!
//! RTF = synthesis seconds / audio seconds (median of `--repeats` runs after one warm-up).
//! onnxruntime runs through `benches/ort_rtf.py` in the project's Python environment (`scripts/py`
//! installs the pinned onnx, onnxruntime and numpy of `scripts/requirements.txt` on first use).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use kokoro_engine::{Engine, SourceNoise, StageTimings, Utterance};
use kokoro_model::Kokoro;

use crate::device::DeviceChoice;
use crate::fetch::{self, Cache};

/// (name, phonemes) with voice af_heart: about 1.6 s, 4.5 s and 14 s of audio.
const UTTERANCES: [(&str, &str); 3] = [
    ("short", "həlˈO wˈɜɹld."),
    ("medium", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ, ænd ðə dˈɔɡ dˈɪdᵊnt ˈivən nˈOtis."),
    (
        "long",
        "ˈɛvəɹi mˈɔɹnɪŋ ðə lˈIThaʊs kˈipəɹ wˈɔkt dˈWn ðə stˈIɹz tə tʃˈɛk ðə lˈæmp, ænd ˈɛvəɹi ˈivnɪŋ hi wˈɔkt bˈæk ˈʌp \
         əɡˈɛn, kˈWntɪŋ ðə stˈɛps ˈæz hi wˈɛnt. ðə sˈi wˈʌz ˈɔlweɪz ðˈɛɹ, ɡɹˈA ɔɹ ɡɹˈin ɔɹ ə dˈɑɹk ˈɪŋki blˈu, ænd hi \
         lˈɜɹnd tə ɹˈid ɪts mˈudz ðə wˈA ˈʌðəɹ pˈipᵊl ɹˈid ðə nˈuzpˌAvəɹ.",
    ),
];

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Backend for kokoro-burn.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    #[command(flatten)]
    precision: crate::device::PrecisionArg,
    /// Timed runs per utterance (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Skip the onnxruntime comparison.
    #[arg(long)]
    no_ort: bool,
    /// onnxruntime intra-op threads.
    #[arg(long, default_value_t = 2)]
    ort_threads: usize,
    /// Weights for kokoro-burn (default: the cached canonical file).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Also time each utterance with burn-flex's own ops instead of kokoro-kernels' (the
    /// "before" of the CPU kernels, in the same run): one more RTF column.
    #[arg(long)]
    compare_kernels: bool,
    /// With `--precision int8`: also time each utterance with the float32 kernels, in the same
    /// run (one more RTF column).
    #[arg(long)]
    compare_precision: bool,
    /// Benchmark the engine's scheduler instead: throughput for concurrent clients with batching
    /// off and on, time to first audio during a bulk job with priorities on and off, peak memory.
    #[arg(long)]
    engine: bool,
    /// With --engine: numbers of concurrent clients.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    concurrency: Vec<usize>,
    /// With --engine: items of the bulk job.
    #[arg(long, default_value_t = 100)]
    bulk_items: usize,
    /// With --engine: most interactive requests measured during the bulk job.
    #[arg(long, default_value_t = 20)]
    interactive: usize,
}

struct Row {
    name: &'static str,
    audio_seconds: f64,
    ours: Duration,
    stages: StageTimings,
    ort_int8: Option<f64>,
    ort_f32: Option<f64>,
    /// Median totals of the comparison runs (`--compare-precision`, `--compare-kernels`), in
    /// the order of [`comparisons`].
    compared: Vec<Duration>,
}

/// The other configurations each utterance is also timed with: (column, kernels, precision).
fn comparisons(args: &BenchArgs) -> Vec<(&'static str, kokoro_model::CpuKernels, kokoro_model::ComputePrecision)> {
    use kokoro_model::{ComputePrecision, CpuKernels};
    let mut list = Vec::new();
    if args.compare_precision && args.precision.precision() != ComputePrecision::F32 {
        list.push(("f32 kernels RTF", CpuKernels::Kokoro, ComputePrecision::F32));
    }
    if args.compare_kernels {
        list.push(("burn's ops RTF", CpuKernels::Burn, ComputePrecision::F32));
    }
    list
}

pub fn bench(cache: &Cache, args: BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if !cache.is_complete() {
        fetch::fetch(cache, false)?;
    }
    let weights = args.weights.clone().unwrap_or_else(|| cache.canonical());
    let (device, backend) = args.device.open()?;
    crate::device::apply_precision(args.precision.precision(), backend)?;
    let kokoro = Kokoro::load(&weights, &device).with_context(|| format!("loading {}", weights.display()))?;
    let store = kokoro_voice::DirStore { dir: cache.voices() };
    let engine = Engine::new(kokoro, device, backend, store, 1 << 20);
    if args.engine {
        return crate::bench_engine::run(std::sync::Arc::new(engine), &args.concurrency, args.bulk_items, args.interactive);
    }
    let voice = pollster::block_on(engine.voice("af_heart"))?;
    let mut rows = Vec::new();
    for (name, phonemes) in UTTERANCES {
        let utterance = Utterance::from_phonemes(phonemes);
        let speak = || engine.synthesize(&utterance, &voice, 1.0, SourceNoise::Deterministic);
        let median_of_runs = || -> Result<(f64, u64, StageTimings)> {
            let warm = speak()?;
            let mut runs: Vec<StageTimings> = (0..args.repeats).map(|_| speak().map(|o| o.timings)).collect::<Result<_, _>>()?;
            runs.sort_by_key(|t| t.total);
            Ok((warm.seconds(), warm.phoneme_ids as u64, runs[runs.len() / 2].clone()))
        };
        let (audio_seconds, ids, median) = median_of_runs()?;
        eprintln!("{name}: {ids} ids, {audio_seconds:.2} s audio, median {:.3} s", median.total.as_secs_f64());
        let mut compared = Vec::new();
        for (column, kernels, precision) in comparisons(&args) {
            kokoro_model::set_cpu_kernels(kernels);
            kokoro_model::set_compute_precision(precision);
            let run = median_of_runs();
            kokoro_model::set_cpu_kernels(kokoro_model::CpuKernels::Kokoro);
            kokoro_model::set_compute_precision(args.precision.precision());
            let total = run?.2.total;
            eprintln!("{name}: {column}, median {:.3} s", total.as_secs_f64());
            compared.push(total);
        }
        rows.push(Row { name, audio_seconds, ours: median.total, stages: median, ort_int8: None, ort_f32: None, compared });
    }
    if !args.no_ort {
        match run_ort(cache, &args) {
            Ok(results) => {
                for (model, name, median) in results {
                    if let Some(row) = rows.iter_mut().find(|r| r.name == name) {
                        let rtf = median / row.audio_seconds;
                        if model == "int8" { row.ort_int8 = Some(rtf) } else { row.ort_f32 = Some(rtf) }
                    }
                }
            }
            Err(e) => eprintln!("warning: onnxruntime comparison skipped: {e:#}"),
        }
    }
    print_table(&rows, &args);
    Ok(())
}

fn run_ort(cache: &Cache, args: &BenchArgs) -> Result<Vec<(String, String, f64)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("benches/ort_rtf.py");
    let job = serde_json::json!({
        "onnx": cache.onnx_int8(),
        "voices": cache.voices(),
        "threads": args.ort_threads,
        "repeats": args.repeats,
        "utterances": UTTERANCES.iter().map(|(n, p)| serde_json::json!({"name": n, "phonemes": p, "voice": "af_heart"})).collect::<Vec<_>>(),
    });
    let mut child = Command::new(root.join("scripts/py"))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting scripts/py {}", script.display()))?;
    child.stdin.take().expect("piped").write_all(job.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{} exited with {}", script.display(), out.status);
    }
    String::from_utf8_lossy(&out.stdout).lines().map(parse_ort_line).collect()
}

/// One line of `ort_rtf.py`'s output, `{"model", "name", "seconds": [...]}`, as (model, name,
/// median seconds). A line without timings is an error, not a panic (issue 12).
fn parse_ort_line(line: &str) -> Result<(String, String, f64)> {
    let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("parsing {line:?}"))?;
    let field = |key: &str| v[key].as_str().map(str::to_string).with_context(|| format!("no {key:?} in {line:?}"));
    let (model, name) = (field("model")?, field("name")?);
    let mut secs: Vec<f64> = v["seconds"].as_array().map(|a| a.iter().filter_map(|s| s.as_f64()).collect()).unwrap_or_default();
    secs.sort_by(f64::total_cmp);
    let median = secs.get(secs.len() / 2).copied().with_context(|| format!("onnxruntime returned no timings for {model} {name}"))?;
    Ok((model, name, median))
}

fn print_table(rows: &[Row], args: &BenchArgs) {
    let fmt = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "device: {:?}, precision {}, median of {} runs; RTF = synthesis seconds / audio seconds (lower is faster)",
        args.device,
        args.precision.precision().as_str(),
        args.repeats
    );
    println!();
    let columns = comparisons(args);
    let extra: String = columns.iter().map(|(column, ..)| format!(" {column} |")).collect();
    println!("| utterance | audio s | kokoro-burn RTF |{extra} ORT int8 RTF | ORT f32 RTF | ratio to ORT int8 | ratio to ORT f32 |");
    println!("|---|---|---|{}---|---|---|---|", "---|".repeat(columns.len()));
    for r in rows {
        let ours = r.ours.as_secs_f64() / r.audio_seconds;
        let ratio = |o: Option<f64>| o.map(|v| format!("{:.2}", ours / v)).unwrap_or_else(|| "-".into());
        let burn: String = r.compared.iter().map(|d| format!(" {:.3} |", d.as_secs_f64() / r.audio_seconds)).collect();
        println!(
            "| {} | {:.2} | {:.3} |{burn} {} | {} | {} | {} |",
            r.name, r.audio_seconds, ours, fmt(r.ort_int8), fmt(r.ort_f32), ratio(r.ort_int8), ratio(r.ort_f32)
        );
    }
    println!();
    println!("kokoro-burn per-stage seconds (median run):");
    println!();
    println!("| utterance | bert | predictor | text_encoder | decoder | total |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let s = &r.stages;
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            r.name,
            s.bert.as_secs_f64(),
            s.predictor.as_secs_f64(),
            s.text_encoder.as_secs_f64(),
            s.decoder.as_secs_f64(),
            s.total.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ort_lines_without_timings_are_errors() {
        let (model, name, median) = parse_ort_line(r#"{"model": "int8", "name": "short", "seconds": [0.3, 0.1, 0.2]}"#).unwrap();
        assert_eq!((model.as_str(), name.as_str(), median), ("int8", "short", 0.2));
        // Issue 12: an empty list indexed secs[0] and panicked.
        let e = parse_ort_line(r#"{"model": "int8", "name": "short", "seconds": []}"#).unwrap_err();
        assert!(format!("{e:#}").contains("no timings for int8 short"), "{e:#}");
        assert!(parse_ort_line(r#"{"model": "int8", "name": "short"}"#).is_err());
        assert!(parse_ort_line("not json").is_err());
    }
}
