//! `kokoro batch`: many items (JSONL or one per line) -> one WAV each and a manifest, through the
//! engine's scheduler at bulk priority.
//!
//! - Input: JSONL, one `{"id", "text", "voice"?, "speed"?, "lang"?}` per line, or plain text with
//!   one item per line (ids `000001`, `000002`, ... from the line number). The format is JSONL
//!   when the first non-blank line starts with `{`.
//! - Output: `DIR/<id>.wav`, and `DIR/manifest.jsonl` with one line per item (`id`, `file`,
//!   `seconds`, `status` "ok" or "failed", `error`, `code`), in input order when the run ends.
//! - A bad item (unknown voice, empty text, bad speed, an unsafe or repeated id, a line that is not
//!   JSON) fails alone; the rest completes; the exit code is 1 when any item failed.
//! - `--resume` skips items whose manifest line says "ok" and whose file is there.
//! - Files are written whole or not at all ([`AtomicFile`]); manifest lines are appended as items
//!   finish, each in one write, so an interrupted run leaves at most an unfinished line, which a
//!   resume ignores; the finished manifest is rewritten whole, in input order.
//! - Tuning: unless `--max-batch` and `--workers` are given, the first items are spoken under a
//!   few (workers, max batch) settings and the best measured throughput (audio seconds per wall
//!   second) is kept for the rest; the choice and the figures are printed.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kokoro_engine::batch::{Item, ItemDefaults, ItemError, ItemSpec, ManifestLine, ManifestWriter, parse_items, read_manifest};
use kokoro_engine::wav::PcmWavWriter;
use kokoro_engine::{Batching, Engine, EngineError, Priority, Request, SAMPLE_RATE, Scheduler, SchedulerConfig, SourceNoise, Stream};

use crate::device::DeviceChoice;
use crate::fetch::Cache;
use kokoro_engine::files::{AtomicFile, remove_stale_partials, write_atomic};
use crate::voices::{SourceStore, VoiceSource};

#[derive(Args, Debug)]
pub struct BatchArgs {
    /// JSONL (`{"id", "text", "voice"?, "speed"?, "lang"?}` per line) or plain text (one item per
    /// line); `-` reads standard input.
    input: PathBuf,
    /// Folder for `<id>.wav` and `manifest.jsonl` (made if missing).
    #[arg(long)]
    out_dir: PathBuf,
    /// Voice of items that name none.
    #[arg(long, default_value = "af_heart")]
    voice: String,
    #[command(flatten)]
    voice_source: VoiceSource,
    /// Speed of items that give none, 0.25 to 4.0.
    #[arg(long, default_value_t = 1.0, value_parser = crate::say::parse_speed)]
    speed: f32,
    /// Dialect of items that give none (default: from each item's voice).
    #[arg(long)]
    lang: Option<String>,
    /// Zero the harmonic source's noise: each file equals `kokoro say --deterministic` of its item.
    #[arg(long)]
    deterministic: bool,
    /// Seed of the source's noise when not deterministic (as `say --seed`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip items already done (manifest says ok and the file is there).
    #[arg(long)]
    resume: bool,
    /// Chunks per forward pass (default: tuned at start; always 1 with --deterministic).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Worker threads on the engine (default: tuned at start).
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    #[command(flatten)]
    precision: crate::device::PrecisionArg,
    /// Weights to load (default: the cached canonical file, fetched if missing).
    #[arg(long)]
    weights: Option<PathBuf>,
}

pub fn batch(cache: &Cache, args: BatchArgs) -> Result<()> {
    let items = read_items(&args)?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    remove_stale_partials(&args.out_dir);
    let manifest_path = args.out_dir.join("manifest.jsonl");
    let previous = if args.resume { read_manifest(&manifest_path) } else { HashMap::new() };

    // What is left to do; what a resume keeps.
    let mut done: HashMap<String, ManifestLine> = HashMap::new();
    let mut todo: Vec<(usize, String, ItemSpec)> = Vec::new();
    for (n, item) in items.iter().enumerate() {
        match &item.what {
            Err(ItemError { message, code }) => {
                done.insert(item.id.clone(), ManifestLine::failed(&item.id, format!("line {}: {message}", item.line), code));
            }
            Ok(job) => match previous.get(&item.id) {
                Some(line) if line.status == "ok" && args.out_dir.join(format!("{}.wav", item.id)).is_file() => {
                    done.insert(item.id.clone(), line.clone());
                }
                _ => todo.push((n, item.id.clone(), job.clone())),
            },
        }
    }
    let skipped = done.values().filter(|l| l.status == "ok").count();
    if args.resume {
        eprintln!("resume: {skipped} item(s) already done, {} to do", todo.len());
    }
    // The manifest so far (resumed lines and bad input lines), then a line per item as it ends.
    let mut manifest = ManifestWriter::start(&manifest_path, items.iter().filter_map(|i| done.get(&i.id))).with_context(|| format!("writing {}", manifest_path.display()))?;

    let (engine, load) = crate::load::engine(cache, args.weights.as_ref(), args.device, args.precision.precision(), &args.voice_source)?;
    eprintln!("loaded the weights in {:.2} s ({})", load.as_secs_f64(), engine.backend().as_str());
    let engine = Arc::new(engine);
    let _usage = crate::load::save_usage(cache, &engine);
    let noise = if args.deterministic { SourceNoise::Deterministic } else { SourceNoise::Seeded(args.seed) };

    let bar = progress_bar(todo.len());
    let mut run = Run { out_dir: &args.out_dir, noise, bar: &bar, manifest: &mut manifest, audio_seconds: 0.0, results: &mut done };
    let started = Instant::now();
    let mut queue: VecDeque<(usize, String, ItemSpec)> = todo.into();

    // Tuning on the first items (their audio is kept: nothing is spoken twice).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A batched pass equals the single ones up to float rounding only: deterministic files, which
    // must equal `kokoro say`, are spoken one chunk per pass.
    let max_batch = if args.deterministic { Some(1) } else { args.max_batch };
    let chosen = match (args.workers, max_batch) {
        (Some(w), Some(b)) => config(w, b),
        _ => {
            let mut candidates = Vec::new();
            for workers in args.workers.map_or_else(|| vec![1, 2.min(cores)], |w| vec![w]) {
                for max_batch in max_batch.map_or_else(|| vec![1, 4], |b| vec![b]) {
                    let c = config(workers, max_batch);
                    if !candidates.contains(&c) {
                        candidates.push(c);
                    }
                }
            }
            let per_trial = |c: &SchedulerConfig| (2 * c.workers * c.max_batch).max(4);
            if candidates.len() > 1 && queue.len() >= candidates.iter().map(per_trial).sum::<usize>() * 2 {
                let mut best: Option<(f64, SchedulerConfig)> = None;
                for c in candidates {
                    let trial: Vec<_> = queue.drain(..per_trial(&c).min(queue.len())).collect();
                    let (audio, wall) = run.speak(&engine, &c, trial)?;
                    let rate = audio / wall.max(1e-9);
                    note(&bar, format!(
                        "tuning: workers {} max_batch {}: {rate:.2} audio s per wall s ({audio:.1} s of audio in {wall:.1} s)",
                        c.workers, c.max_batch
                    ));
                    if best.as_ref().is_none_or(|(r, _)| rate > *r) {
                        best = Some((rate, c));
                    }
                }
                let (rate, c) = best.expect("at least two candidates");
                note(&bar, format!("tuning: chose workers {} max_batch {} ({rate:.2} audio s per wall s)", c.workers, c.max_batch));
                c
            } else {
                let mut c = config(args.workers.unwrap_or(1), max_batch.unwrap_or(4));
                if max_batch.is_none() {
                    c.batching = Batching::Auto; // unmeasured: batches where they pay (GPU backends)
                }
                note(&bar, format!("tuning: too few items to measure; workers {} max_batch {}", c.workers, c.max_batch));
                c
            }
        }
    };
    let rest: Vec<_> = queue.into_iter().collect();
    run.speak(&engine, &chosen, rest)?;
    bar.finish_and_clear();
    let audio_seconds = run.audio_seconds;

    // The whole manifest, in input order, replaces the appended one.
    let lines: Vec<&ManifestLine> = items.iter().filter_map(|i| done.get(&i.id)).collect();
    let mut text = String::new();
    for line in &lines {
        text.push_str(&serde_json::to_string(line)?);
        text.push('\n');
    }
    drop(manifest);
    write_atomic(&manifest_path, text.as_bytes())?;

    let failed = lines.iter().filter(|l| l.status != "ok").count();
    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "batch: {} ok ({skipped} from before), {failed} failed, of {}; {audio_seconds:.1} s of audio in {wall:.1} s ({:.2} audio s per wall s); manifest {}",
        lines.len() - failed,
        items.len(),
        audio_seconds / wall.max(1e-9),
        manifest_path.display()
    );
    if failed > 0 {
        bail!("{failed} of {} item(s) failed: see {}", items.len(), manifest_path.display());
    }
    Ok(())
}

/// Bulk work: a batch waits a little for company; no response cache (items rarely repeat).
/// `workers` threads, each running up to `max_batch` chunks per forward pass. Batching is on
/// whenever `max_batch` > 1, on any backend: tuning measures whether it pays.
fn config(workers: usize, max_batch: usize) -> SchedulerConfig {
    let (workers, max_batch) = (workers.max(1), max_batch.max(1));
    let batching = if max_batch > 1 { Batching::On } else { Batching::Off };
    SchedulerConfig { workers, max_batch, batching, max_wait: Duration::from_millis(20), response_cache_bytes: 0, ..SchedulerConfig::default() }
}

struct Run<'a> {
    out_dir: &'a Path,
    noise: SourceNoise,
    bar: &'a ProgressBar,
    manifest: &'a mut ManifestWriter,
    audio_seconds: f64,
    results: &'a mut HashMap<String, ManifestLine>,
}

impl Run<'_> {
    /// Speaks `jobs` on a scheduler with `config`, a window of requests open at once; writes each
    /// item's file and manifest line as it ends. Returns audio seconds and wall seconds.
    fn speak(&mut self, engine: &Arc<Engine<SourceStore>>, config: &SchedulerConfig, jobs: Vec<(usize, String, ItemSpec)>) -> Result<(f64, f64)> {
        let scheduler = Scheduler::new(engine.clone(), config.clone());
        let window = 2 * config.workers * config.max_batch;
        let start = Instant::now();
        let mut audio = 0.0;
        let mut open: VecDeque<(String, Result<Stream, EngineError>)> = VecDeque::new();
        let mut jobs = jobs.into_iter();
        loop {
            while open.len() < window {
                let Some((_, id, job)) = jobs.next() else { break };
                let mut request = Request::text(job.text, job.voice).speed(job.speed).noise(self.noise).priority(Priority::Bulk);
                request.lang = job.lang;
                let submitted = loop {
                    match scheduler.submit(request.clone()) {
                        Err(EngineError::Overloaded { retry_after }) => std::thread::sleep(retry_after.min(Duration::from_millis(200))),
                        other => break other,
                    }
                };
                open.push_back((id, submitted));
            }
            let Some((id, stream)) = open.pop_front() else { break };
            let line = match stream.map_err(anyhow::Error::from).and_then(|s| self.write_item(&id, s)) {
                Ok(seconds) => {
                    audio += seconds;
                    self.audio_seconds += seconds;
                    ManifestLine::ok(&id, format!("{id}.wav"), seconds)
                }
                Err(e) => {
                    let code = e.downcast_ref::<EngineError>().map_or("io", EngineError::code);
                    note(self.bar, format!("{id}: failed: {e:#}"));
                    ManifestLine::failed(&id, format!("{e:#}"), code)
                }
            };
            self.manifest.append(&line).context("appending to the manifest")?;
            self.results.insert(id, line);
            self.bar.inc(1);
            self.bar.set_message(format!("{:.0} s of audio", self.audio_seconds));
        }
        Ok((audio, start.elapsed().as_secs_f64()))
    }

    /// Writes one item's chunks into `<id>.wav` as they come; the file appears only when whole.
    fn write_item(&self, id: &str, stream: Stream) -> Result<f64> {
        let path = self.out_dir.join(format!("{id}.wav"));
        let (file, out) = AtomicFile::create(&path)?;
        let mut wav = PcmWavWriter::new(out).with_context(|| format!("creating {}", path.display()))?;
        for chunk in stream {
            wav.write(&chunk?.audio)?;
        }
        let samples = wav.finish()?;
        file.commit()?;
        Ok(samples as f64 / SAMPLE_RATE as f64)
    }
}

fn progress_bar(items: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(items as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} items ({per_sec}), {msg}; {elapsed} so far, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Reads and checks every item: ids safe as file names and unique, text present, speed in range.
fn read_items(args: &BatchArgs) -> Result<Vec<Item>> {
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut lines = Vec::new();
    for (n, line) in reader.split(b'\n').enumerate() {
        let bytes = line.with_context(|| format!("reading {}", args.input.display()))?;
        lines.push((n + 1, String::from_utf8(bytes)));
    }
    let defaults = ItemDefaults { voice: args.voice.clone(), speed: args.speed, lang: args.lang.clone() };
    let items = parse_items(lines, &defaults);
    if items.is_empty() {
        bail!("{} holds no items", args.input.display());
    }
    Ok(items)
}

/// A line above the progress bar, or on stderr when there is no bar (not a terminal).
fn note(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
