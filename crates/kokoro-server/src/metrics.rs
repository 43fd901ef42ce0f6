//! `GET /metrics`: Prometheus text exposition, and the per-stage aggregates `/debug/stages` shows.
//!
//! Each server owns its recorder (`metrics-exporter-prometheus`, not installed globally), so two
//! servers in one process (the tests) count only their own requests. Events are recorded as they
//! happen (requests, first audio, each forward pass through [`SchedulerObserver`]); levels that
//! already exist elsewhere (queue depths, cache counters, memory, process, GPU) are read when
//! scraped. Names follow Prometheus' conventions: `kokoro_` prefix, base units in the name
//! (`_seconds`, `_bytes`), counters end in `_total`; histograms have explicit buckets up to 60 s.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kokoro_engine::{BatchReport, Priority, SchedulerObserver, SchedulerStats};
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde::Serialize;

/// Seconds: 5 ms to 60 s.
pub const SECONDS_BUCKETS: [f64; 15] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0];
/// Chunks in one forward pass.
pub const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0, 64.0];
/// Wall seconds per audio second (below 1: faster than real time).
pub const RTF_BUCKETS: [f64; 11] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0];

/// Where a request's time goes, in the order a chunk meets them.
pub const STAGES: [&str; 7] = ["queue_wait", "text", "bert", "predictor", "text_encoder", "decoder", "encode"];

/// The values read at scrape time, gathered by the caller (the server state knows where they live).
#[derive(Debug, Clone, Default)]
pub struct Levels {
    pub scheduler: Option<SchedulerStats>,
    pub voice_cache: Option<VoiceCacheLevels>,
    pub response_cache: Option<kokoro_engine::ResponseCacheStats>,
    pub response_cache_bytes: usize,
    pub response_cache_entries: usize,
    pub memory: MemoryUse,
    pub memory_limit_bytes: u64,
    pub ready: bool,
    pub draining: bool,
    pub prewarm_done: usize,
    pub prewarm_total: usize,
    pub prewarm_failed: usize,
    pub alerts_firing: Vec<String>,
    pub queue_capacity: usize,
    pub jobs: Option<crate::jobs::JobCounts>,
}

/// The voice cache's counters and level.
#[derive(Debug, Clone, Default)]
pub struct VoiceCacheLevels {
    pub stats: kokoro_voice::CacheStats,
    pub bytes: usize,
    pub budget: usize,
    pub entries: usize,
}

/// Bytes held, by component (`/debug/memory`, `kokoro_memory_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemoryUse {
    /// The process's resident set (Linux: /proc; 0 elsewhere).
    pub process_rss: u64,
    pub weights: u64,
    pub voice_cache: u64,
    pub response_cache: u64,
    /// Finished audio not yet taken by its response.
    pub queued_audio: u64,
}

/// One stage's time since start, and a recent share that decays with a one-minute half-life
/// (what "the current bottleneck" compares).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageAggregate {
    pub count: u64,
    pub total_seconds: f64,
    pub max_seconds: f64,
    pub recent_seconds: f64,
}

#[derive(Debug)]
struct Stages {
    stages: [StageAggregate; STAGES.len()],
    decayed_at: Instant,
}

/// What `/debug/stages` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StagesReport {
    pub stages: Vec<(String, StageAggregate)>,
    /// The stage with the most time over the last minutes, when anything has run.
    pub bottleneck: Option<String>,
}

/// The server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    gpu: Option<nvml_wrapper::Nvml>,
    stages: Mutex<Stages>,
    /// Label sets seen per route, for `requests_total` lookups in tests and the status page.
    requests: Mutex<HashMap<(String, u16), u64>>,
    /// Recent times to first audio (at most [`RECENT_FIRST_AUDIO`]), for the alerts' p99.
    recent_first_audio: Mutex<VecDeque<(Instant, f64)>>,
}

/// How many recent times to first audio the alerts' quantile looks at, at most.
const RECENT_FIRST_AUDIO: usize = 20_000;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("gpu", &self.gpu.is_some()).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let seconds = [
            "kokoro_http_request_duration_seconds",
            "kokoro_time_to_first_audio_seconds",
            "kokoro_queue_wait_seconds",
            "kokoro_stage_duration_seconds",
            "kokoro_batch_duration_seconds",
        ];
        let mut builder = PrometheusBuilder::new();
        for name in seconds {
            builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), &SECONDS_BUCKETS).expect("non-empty buckets");
        }
        builder = builder
            .set_buckets_for_metric(Matcher::Full("kokoro_batch_size_chunks".into()), &BATCH_BUCKETS)
            .expect("non-empty buckets")
            .set_buckets_for_metric(Matcher::Full("kokoro_real_time_factor".into()), &RTF_BUCKETS)
            .expect("non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            recorder,
            handle,
            process: metrics_process::Collector::default(),
            // Loads libnvidia-ml at run time: absent (no driver, no GPU) is not an error.
            gpu: nvml_wrapper::Nvml::init().ok(),
            stages: Mutex::new(Stages { stages: [StageAggregate::default(); STAGES.len()], decayed_at: Instant::now() }),
            requests: Mutex::new(HashMap::new()),
            recent_first_audio: Mutex::new(VecDeque::new()),
        };
        metrics.record(|| metrics.describe());
        metrics
    }

    /// Runs `f` with this server's recorder as the `metrics` macros' target.
    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    fn describe(&self) {
        describe_counter!("kokoro_http_requests_total", "HTTP requests answered, by route, method and status");
        describe_histogram!("kokoro_http_request_duration_seconds", Unit::Seconds, "HTTP request duration, to the last byte of the body");
        describe_histogram!("kokoro_time_to_first_audio_seconds", Unit::Seconds, "From a speech request's arrival to its first audio bytes, by priority");
        describe_histogram!("kokoro_queue_wait_seconds", Unit::Seconds, "Time a chunk waited in the scheduler's queue, by priority");
        describe_histogram!("kokoro_batch_size_chunks", "Chunks per forward pass");
        describe_histogram!("kokoro_batch_duration_seconds", Unit::Seconds, "Wall time of one forward pass");
        describe_histogram!("kokoro_stage_duration_seconds", Unit::Seconds, "Time in each stage: text (G2P), bert, predictor, text_encoder, decoder (per pass), encode (per request)");
        describe_histogram!("kokoro_real_time_factor", "Wall seconds per second of audio, per speech request");
        describe_counter!("kokoro_speech_requests_total", "Speech requests finished, by outcome (done, failed, client_gone) and format");
        describe_counter!("kokoro_audio_bytes_total", Unit::Bytes, "Encoded audio bytes sent, by format");
        describe_gauge!("kokoro_build_info", "This server's version (the value is 1)");
        describe_gauge!("kokoro_ready", "1 when the weights are loaded and pre-warm is done (and not draining)");
        describe_gauge!("kokoro_draining", "1 while the server drains before it stops");
        describe_gauge!("kokoro_jobs", "Batch jobs by status");
        describe_gauge!("kokoro_job_items_pending", "Items of unfinished batch jobs not yet ended");
        describe_gauge!("kokoro_prewarm_voices", "Start-up pre-warm: voices done, in all, and failed");
        describe_gauge!("kokoro_queue_capacity_chunks", "Chunks the queue takes before it refuses work (engine.max_queued_chunks)");
        describe_gauge!("kokoro_queue_depth_chunks", "Chunks waiting in the scheduler's queue, by priority");
        describe_gauge!("kokoro_chunks_in_flight", "Chunks in forward passes now");
        describe_gauge!("kokoro_open_requests", "Requests the scheduler holds (queued, speaking or waiting for their reader)");
        describe_counter!("kokoro_engine_requests_total", "Scheduler requests by event: submitted, completed, failed, cancelled, timed_out, rejected (overload), cache_hit");
        describe_counter!("kokoro_chunks_spoken_total", "Chunks spoken by forward passes");
        describe_counter!("kokoro_batches_total", "Forward passes run");
        describe_counter!("kokoro_voice_cache_hits_total", "Voice cache lookups answered from memory");
        describe_counter!("kokoro_voice_cache_misses_total", "Voice cache lookups that loaded the voice");
        describe_counter!("kokoro_voice_cache_evictions_total", "Voices evicted from the cache to keep its budget");
        describe_counter!("kokoro_voice_cache_load_failures_total", "Voice loads that failed");
        describe_gauge!("kokoro_voice_cache_bytes", Unit::Bytes, "Bytes the voice cache holds");
        describe_gauge!("kokoro_voice_cache_budget_bytes", Unit::Bytes, "The voice cache's byte budget");
        describe_gauge!("kokoro_voice_cache_entries", "Voices and mixes in the cache");
        describe_counter!("kokoro_response_cache_hits_total", "Requests answered from the response cache");
        describe_counter!("kokoro_response_cache_misses_total", "Reproducible requests not in the response cache");
        describe_counter!("kokoro_response_cache_evictions_total", "Responses evicted to keep the cache's budget");
        describe_counter!("kokoro_response_cache_inserts_total", "Responses stored");
        describe_gauge!("kokoro_response_cache_bytes", Unit::Bytes, "Bytes the response cache holds");
        describe_gauge!("kokoro_response_cache_entries", "Responses in the cache");
        describe_gauge!("kokoro_memory_bytes", Unit::Bytes, "Memory by component: process_rss, weights, voice_cache, response_cache, queued_audio");
        describe_gauge!("kokoro_memory_limit_bytes", Unit::Bytes, "limits.memory_limit_bytes (0: none)");
        describe_gauge!("kokoro_alerts_firing", "Alerts the server's own evaluation has firing now");
        describe_gauge!("kokoro_gpu_present", "1 when an NVIDIA GPU is visible through NVML");
        describe_gauge!("kokoro_gpu_utilization_ratio", "GPU busy fraction over the driver's last sample period, by GPU");
        describe_gauge!("kokoro_gpu_memory_used_bytes", Unit::Bytes, "GPU memory in use, by GPU");
        describe_gauge!("kokoro_gpu_memory_total_bytes", Unit::Bytes, "GPU memory in all, by GPU");
        self.process.describe();
    }

    /// An answered HTTP request (`route` is the route's pattern, not the path, so ids do not
    /// make new series).
    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        self.record(|| counter!("kokoro_http_requests_total", "route" => route.to_string(), "method" => method.to_string(), "status" => status.to_string()).increment(1));
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner).entry((route.to_string(), status)).or_default() += 1;
    }

    /// An HTTP request's body finished (or was dropped by a client that left).
    pub fn http_duration(&self, route: &str, seconds: f64) {
        self.record(|| histogram!("kokoro_http_request_duration_seconds", "route" => route.to_string()).record(seconds));
    }

    /// Requests answered so far on `route` with `status` (for the tests and the status page).
    pub fn requests_answered(&self, route: &str, status: u16) -> u64 {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).get(&(route.to_string(), status)).copied().unwrap_or(0)
    }

    pub fn first_audio(&self, priority: Priority, seconds: f64) {
        self.record(|| histogram!("kokoro_time_to_first_audio_seconds", "priority" => priority.as_str()).record(seconds));
        let mut recent = self.recent_first_audio.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT_FIRST_AUDIO {
            recent.pop_front();
        }
        recent.push_back((Instant::now(), seconds));
    }

    /// Times to first audio within the last `window`.
    pub fn first_audio_within(&self, window: Duration) -> Vec<f64> {
        let mut recent = self.recent_first_audio.lock().unwrap_or_else(PoisonError::into_inner);
        while recent.front().is_some_and(|(at, _)| at.elapsed() > window) {
            recent.pop_front();
        }
        recent.iter().map(|(_, s)| *s).collect()
    }

    /// API requests (`/v1`, `/dev`) answered since start, and those answered 5xx. Health
    /// checks, scrapes and the status page's polls are not counted.
    pub fn answered(&self) -> (u64, u64) {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .iter()
            .filter(|((route, _), _)| is_api_route(route))
            .fold((0, 0), |(all, errors), ((_, status), n)| (all + n, errors + if *status >= 500 { *n } else { 0 }))
    }

    /// A speech request's end: its outcome, real-time factor, encoding time and bytes.
    pub fn speech_done(&self, outcome: &'static str, format: &'static str, rtf: Option<f64>, encode: Duration, bytes: u64) {
        self.record(|| {
            counter!("kokoro_speech_requests_total", "outcome" => outcome, "format" => format).increment(1);
            counter!("kokoro_audio_bytes_total", "format" => format).increment(bytes);
            if let Some(rtf) = rtf {
                histogram!("kokoro_real_time_factor").record(rtf);
            }
            histogram!("kokoro_stage_duration_seconds", "stage" => "encode").record(encode.as_secs_f64());
        });
        self.stage(6, encode);
    }

    fn stage(&self, index: usize, took: Duration) {
        let mut s = self.stages.lock().unwrap_or_else(PoisonError::into_inner);
        s.decay();
        let a = &mut s.stages[index];
        let secs = took.as_secs_f64();
        a.count += 1;
        a.total_seconds += secs;
        a.max_seconds = a.max_seconds.max(secs);
        a.recent_seconds += secs;
    }

    /// Per-stage aggregates and the current bottleneck.
    pub fn stages(&self) -> StagesReport {
        let mut s = self.stages.lock().unwrap_or_else(PoisonError::into_inner);
        s.decay();
        let bottleneck = s
            .stages
            .iter()
            .zip(STAGES)
            .filter(|(a, _)| a.recent_seconds > 0.0)
            .max_by(|(a, _), (b, _)| a.recent_seconds.total_cmp(&b.recent_seconds))
            .map(|(_, name)| name.to_string());
        StagesReport { stages: STAGES.iter().zip(s.stages).map(|(n, a)| (n.to_string(), a)).collect(), bottleneck }
    }

    /// (used, total) memory of each NVIDIA GPU.
    pub fn gpu_memory(&self) -> Vec<(u64, u64)> {
        let Some(nvml) = &self.gpu else { return Vec::new() };
        let count = nvml.device_count().unwrap_or(0);
        (0..count).filter_map(|i| nvml.device_by_index(i).ok()?.memory_info().ok().map(|m| (m.used, m.total))).collect()
    }

    /// Whether an NVIDIA GPU (NVML) was found.
    pub fn gpu_present(&self) -> bool {
        self.gpu.as_ref().is_some_and(|n| n.device_count().is_ok_and(|c| c > 0))
    }

    /// The exposition: events recorded so far, and the levels read now.
    pub fn render(&self, levels: &Levels) -> String {
        self.record(|| {
            self.set_levels(levels);
            self.process.collect();
        });
        let mut text = self.handle.render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        // Written here, not through the facade: float counters (its counters are integers) and
        // a histogram whose buckets the voice cache keeps itself.
        if let Some(s) = &levels.scheduler {
            float_counter(&mut text, "kokoro_audio_spoken_seconds_total", "Seconds of audio the workers have spoken", s.audio_seconds);
            float_counter(&mut text, "kokoro_worker_busy_seconds_total", "Wall seconds the workers spent in forward passes", s.busy.as_secs_f64());
        }
        if let Some(v) = &levels.voice_cache {
            voice_load_histogram(&mut text, &v.stats);
        }
        text
    }

    fn set_levels(&self, l: &Levels) {
        gauge!("kokoro_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        gauge!("kokoro_ready").set(f64::from(u8::from(l.ready)));
        gauge!("kokoro_draining").set(f64::from(u8::from(l.draining)));
        gauge!("kokoro_prewarm_voices", "state" => "done").set(l.prewarm_done as f64);
        gauge!("kokoro_prewarm_voices", "state" => "total").set(l.prewarm_total as f64);
        gauge!("kokoro_prewarm_voices", "state" => "failed").set(l.prewarm_failed as f64);
        if let Some(j) = &l.jobs {
            for (status, n) in [("queued", j.queued), ("running", j.running), ("completed", j.completed), ("cancelled", j.cancelled)] {
                gauge!("kokoro_jobs", "status" => status).set(n as f64);
            }
            gauge!("kokoro_job_items_pending").set(j.items_pending as f64);
        }
        if let Some(s) = &l.scheduler {
            for (p, depth) in Priority::ALL.iter().zip(s.queued) {
                gauge!("kokoro_queue_depth_chunks", "priority" => p.as_str()).set(depth as f64);
            }
            gauge!("kokoro_chunks_in_flight").set(s.in_flight as f64);
            gauge!("kokoro_open_requests").set(s.open_requests as f64);
            for (outcome, n) in [
                ("submitted", s.submitted),
                ("completed", s.completed),
                ("failed", s.failed),
                ("cancelled", s.cancelled),
                ("timed_out", s.timed_out),
                ("rejected", s.rejected),
                ("cache_hit", s.cache_hits),
            ] {
                counter!("kokoro_engine_requests_total", "event" => outcome).absolute(n);
            }
            counter!("kokoro_chunks_spoken_total").absolute(s.chunks);
            counter!("kokoro_batches_total").absolute(s.batches);
        }
        if let Some(v) = &l.voice_cache {
            counter!("kokoro_voice_cache_hits_total").absolute(v.stats.hits);
            counter!("kokoro_voice_cache_misses_total").absolute(v.stats.misses);
            counter!("kokoro_voice_cache_evictions_total").absolute(v.stats.evictions);
            counter!("kokoro_voice_cache_load_failures_total").absolute(v.stats.load_failures);
            gauge!("kokoro_voice_cache_bytes").set(v.bytes as f64);
            gauge!("kokoro_voice_cache_budget_bytes").set(v.budget as f64);
            gauge!("kokoro_voice_cache_entries").set(v.entries as f64);
        }
        if let Some(r) = &l.response_cache {
            counter!("kokoro_response_cache_hits_total").absolute(r.hits);
            counter!("kokoro_response_cache_misses_total").absolute(r.misses);
            counter!("kokoro_response_cache_evictions_total").absolute(r.evictions);
            counter!("kokoro_response_cache_inserts_total").absolute(r.inserts);
            gauge!("kokoro_response_cache_bytes").set(l.response_cache_bytes as f64);
            gauge!("kokoro_response_cache_entries").set(l.response_cache_entries as f64);
        }
        let m = &l.memory;
        for (component, bytes) in [
            ("process_rss", m.process_rss),
            ("weights", m.weights),
            ("voice_cache", m.voice_cache),
            ("response_cache", m.response_cache),
            ("queued_audio", m.queued_audio),
        ] {
            gauge!("kokoro_memory_bytes", "component" => component).set(bytes as f64);
        }
        gauge!("kokoro_memory_limit_bytes").set(l.memory_limit_bytes as f64);
        gauge!("kokoro_alerts_firing").set(l.alerts_firing.len() as f64);
        gauge!("kokoro_queue_capacity_chunks").set(l.queue_capacity as f64);
        self.set_gpu();
    }

    fn set_gpu(&self) {
        let count = self.gpu.as_ref().and_then(|n| n.device_count().ok()).unwrap_or(0);
        gauge!("kokoro_gpu_present").set(f64::from(u8::from(count > 0)));
        let Some(nvml) = &self.gpu else { return };
        for i in 0..count {
            let Ok(device) = nvml.device_by_index(i) else { continue };
            let gpu = i.to_string();
            if let Ok(u) = device.utilization_rates() {
                gauge!("kokoro_gpu_utilization_ratio", "gpu" => gpu.clone()).set(f64::from(u.gpu) / 100.0);
            }
            if let Ok(m) = device.memory_info() {
                gauge!("kokoro_gpu_memory_used_bytes", "gpu" => gpu.clone()).set(m.used as f64);
                gauge!("kokoro_gpu_memory_total_bytes", "gpu" => gpu).set(m.total as f64);
            }
        }
    }
}

impl Stages {
    /// Halves `recent_seconds` every minute.
    fn decay(&mut self) {
        let dt = self.decayed_at.elapsed().as_secs_f64();
        if dt < 0.5 {
            return;
        }
        let factor = 0.5f64.powf(dt / 60.0);
        for a in &mut self.stages {
            a.recent_seconds *= factor;
        }
        self.decayed_at = Instant::now();
    }
}

impl SchedulerObserver for Metrics {
    fn batch(&self, r: &BatchReport) {
        self.record(|| {
            histogram!("kokoro_batch_size_chunks").record(r.size as f64);
            histogram!("kokoro_batch_duration_seconds").record(r.wall.as_secs_f64());
            for (priority, wait) in &r.waits {
                histogram!("kokoro_queue_wait_seconds", "priority" => priority.as_str()).record(wait.as_secs_f64());
            }
            let s = &r.stages;
            for (stage, took) in [("bert", s.bert), ("predictor", s.predictor), ("text_encoder", s.text_encoder), ("decoder", s.decoder)] {
                histogram!("kokoro_stage_duration_seconds", "stage" => stage).record(took.as_secs_f64());
            }
        });
        for (_, wait) in &r.waits {
            self.stage(0, *wait);
        }
        for (i, took) in [r.stages.bert, r.stages.predictor, r.stages.text_encoder, r.stages.decoder].into_iter().enumerate() {
            self.stage(2 + i, took);
        }
    }

    fn text(&self, elapsed: Duration, _chunks: usize) {
        self.record(|| histogram!("kokoro_stage_duration_seconds", "stage" => "text").record(elapsed.as_secs_f64()));
        self.stage(1, elapsed);
    }
}

fn float_counter(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

/// The voice cache's load times as a Prometheus histogram (its buckets are the cache's own:
/// 1 ms, 10 ms, 100 ms, 1 s).
fn voice_load_histogram(out: &mut String, s: &kokoro_voice::CacheStats) {
    let name = "kokoro_voice_load_seconds";
    let _ = writeln!(out, "# HELP {name} Time to load a voice into the cache (read, decode, mix)");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (le, n) in ["0.001", "0.01", "0.1", "1"].iter().zip(s.load_time_histogram) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.loads);
    let _ = writeln!(out, "{name}_sum {}", s.load_time_total.as_secs_f64());
    let _ = writeln!(out, "{name}_count {}", s.loads);
}

/// What clients call, as opposed to probes and scrapes (the alert rules select the same routes).
pub fn is_api_route(route: &str) -> bool {
    route.starts_with("/v1/") || route.starts_with("/dev/")
}

/// The process's resident set size in bytes (Linux: `VmRSS` of /proc/self/status; 0 elsewhere).
pub fn process_rss() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
