//! `kokoro bench --engine`: the scheduler under load, in one run.
//!
//! 1. Throughput (audio seconds per wall second) for 1, 4, 16 and 64 concurrent clients, each
//!    sending requests of mixed length one after another, with batching off (`max_batch` 1) and
//!    on (`max_batch` 8, `Batching::On` whatever the backend), side by side.
//! 2. Time to first audio (p50, p99) of short interactive requests while a 100-item bulk job
//!    runs, with priorities on and off.
//! 3. Peak memory (the process's high-water RSS) after each part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use kokoro_engine::{Batching, Engine, Priority, Request, Scheduler, SchedulerConfig, VoiceStore};

/// Mixed lengths: about 1, 3 and 6 seconds of audio.
const TEXTS: [&str; 3] = [
    "Hello there.",
    "The quick brown fox jumps over the lazy dog, and the dog does not notice.",
    "Every morning the keeper walked down the stairs to check the lamp, and every evening he walked back up again, counting the steps.",
];

pub fn run<S: VoiceStore + Send + Sync + 'static>(engine: Arc<Engine<S>>, concurrency: &[usize], bulk_items: usize, interactive: usize) -> Result<()> {
    // Warm-up: the front end and the voice, so the first row does not pay for them.
    let warm = Scheduler::new(engine.clone(), SchedulerConfig::default());
    warm.submit(Request::text("Warm up.", "af_heart"))?.collect_audio()?;
    drop(warm);

    println!("\n## Throughput: audio seconds per wall second ({} backend, requests of mixed length)\n", engine.backend().as_str());
    println!("| concurrent | requests | batching off | batching on (max 8) | on / off | mean batch (on) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &c in concurrency {
        let requests = c.max(12);
        let off = throughput(&engine, c, requests, 1)?;
        let on = throughput(&engine, c, requests, 8)?;
        println!("| {c} | {requests} | {:.2} | {:.2} | {:.2} | {:.2} |", off.0, on.0, on.0 / off.0, on.1);
    }
    println!("\npeak RSS so far: {}", peak_rss());

    println!("\n## Time to first audio of short interactive requests while a {bulk_items}-item bulk job runs\n");
    println!("| priorities | interactive requests measured | TTFA p50 | TTFA p99 |");
    println!("|---|---:|---:|---:|");
    for priorities in [true, false] {
        let (p50, p99, measured) = ttfa(&engine, priorities, bulk_items, interactive)?;
        println!(
            "| {} | {measured} | {:.3} s | {:.3} s |",
            if priorities { "on" } else { "off (first come)" },
            p50.as_secs_f64(),
            p99.as_secs_f64()
        );
    }
    println!("\npeak RSS: {}", peak_rss());
    Ok(())
}

/// `clients` threads each sending requests one after another until `requests` are done; returns
/// audio seconds per wall second and the mean chunks per forward pass.
fn throughput<S: VoiceStore + Send + Sync + 'static>(engine: &Arc<Engine<S>>, clients: usize, requests: usize, max_batch: usize) -> Result<(f64, f64)> {
    let batching = if max_batch > 1 { Batching::On } else { Batching::Off };
    let config = SchedulerConfig { max_batch, batching, max_wait: Duration::from_millis(5), response_cache_bytes: 0, max_requests: 4096, ..SchedulerConfig::default() };
    let scheduler = Arc::new(Scheduler::new(engine.clone(), config));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (scheduler, next) = (scheduler.clone(), next.clone());
            std::thread::spawn(move || -> Result<f64> {
                let mut audio = 0.0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        return Ok(audio);
                    }
                    let chunks = scheduler.submit(Request::text(TEXTS[i % TEXTS.len()], "af_heart"))?.collect_audio()?;
                    audio += chunks.iter().map(|c| c.seconds()).sum::<f64>();
                }
            })
        })
        .collect();
    let mut audio = 0.0;
    for t in threads {
        audio += t.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    let wall = start.elapsed().as_secs_f64();
    let stats = scheduler.stats();
    Ok((audio / wall, stats.chunks as f64 / stats.batches.max(1) as f64))
}

/// A bulk job of `bulk_items` fed as `kokoro batch` feeds it (16 requests open at once, each
/// read in turn), and meanwhile up to `interactive` short requests, one every 300 ms; the time
/// from each one's submission to its first chunk, and how many measured while the job ran.
fn ttfa<S: VoiceStore + Send + Sync + 'static>(engine: &Arc<Engine<S>>, priorities: bool, bulk_items: usize, interactive: usize) -> Result<(Duration, Duration, usize)> {
    let config = SchedulerConfig { priorities, max_wait: Duration::from_millis(5), response_cache_bytes: 0, ..SchedulerConfig::default() };
    let scheduler = Arc::new(Scheduler::new(engine.clone(), config));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let (scheduler, running) = (scheduler.clone(), running.clone());
        std::thread::spawn(move || -> Result<()> {
            let mut open = std::collections::VecDeque::new();
            let mut submitted = 0;
            while submitted < bulk_items || !open.is_empty() {
                while open.len() < 16 && submitted < bulk_items {
                    open.push_back(scheduler.submit(Request::text(TEXTS[submitted % 2], "af_heart").priority(Priority::Bulk))?);
                    submitted += 1;
                }
                if let Some(stream) = open.pop_front() {
                    stream.collect_audio()?;
                }
            }
            running.store(false, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_millis(500)); // the job under way
    let mut times = Vec::new();
    while times.len() < interactive && running.load(std::sync::atomic::Ordering::Relaxed) {
        let start = Instant::now();
        let mut stream = scheduler.submit(Request::text("Yes, I can help with that.", "af_heart").priority(Priority::Interactive))?;
        stream.next().transpose()?;
        times.push(start.elapsed());
        drop(stream);
        std::thread::sleep(Duration::from_millis(300));
    }
    feeder.join().map_err(|_| anyhow::anyhow!("the bulk feeder panicked"))??;
    anyhow::ensure!(!times.is_empty(), "the bulk job ended before any interactive request: use more --bulk-items");
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    Ok((at(0.5), at(0.99), times.len()))
}

/// The process's peak resident memory (Linux `VmHWM`), or "n/a".
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l["VmHWM:".len()..].trim().to_string()))
        .unwrap_or_else(|| "n/a".into())
}
