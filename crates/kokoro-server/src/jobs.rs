//! Batch jobs: many items spoken in the background at bulk priority, kept on disk so that a
//! restart loses nothing.
//!
//! ```text
//! POST   /v1/jobs                       items as JSON ({"items": [...]}) or a JSONL / text upload
//! GET    /v1/jobs                       every job, newest first (no items)
//! GET    /v1/jobs/{id}                  status, done/total, percent, time left, per-item errors
//! DELETE /v1/jobs/{id}                  cancels an unfinished job; deletes a finished one
//! GET    /v1/jobs/{id}/items/{item}     one item's audio
//! GET    /v1/jobs/{id}/archive          a zip: every item's audio and manifest.jsonl
//! ```
//!
//! Items are `kokoro batch`'s (kokoro_engine::batch: one parser, one manifest format): each is
//! checked on its own and a bad one fails alone. One runner thread speaks the jobs in the order
//! they came, a few items of a job in the engine's queue at once (`jobs.window`), at bulk
//! priority, so interactive speech overtakes them.
//!
//! On disk, `jobs.dir/<job id>/`:
//! - `job.json`: the job as asked (its items' lines, defaults, format, webhook), written once.
//! - `manifest.jsonl`: a line per finished item, appended as it ends (one write each).
//! - `audio/<item id>.<format>`: written whole or not at all (kokoro_engine::files).
//! - `state.json`: written when the job ends (completed or cancelled), then as its webhook is
//!   delivered. A job without one is unfinished: the next start resumes it, skipping the items
//!   the manifest has.
//!
//! SIGTERM: the runner stops queueing items as draining starts and drops the ones in flight
//! (their files were not written); everything else is already on disk.
//!
//! The webhook (optional, per job) gets the job's final status as a POST signed with
//! `jobs.webhook_secret` (see [`crate::webhook`]), retried with backoff; a delivery still owed
//! at a restart is made after it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kokoro_engine::batch::{Item, ItemDefaults, ManifestLine, ManifestWriter, is_safe_id, parse_items, read_manifest};
use kokoro_engine::files::{AtomicFile, remove_stale_partials, write_atomic};
use kokoro_engine::{EngineError, Priority, SAMPLE_RATE};
use serde::{Deserialize, Serialize};

use crate::audio::AudioFormat;
use crate::error::ApiError;
use crate::state::AppState;

/// Batch jobs: where they are kept and what one may hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Folder that keeps the jobs, one sub-folder each (unset: `/v1/jobs` answers 404;
    /// `kokoro serve` sets it to the `jobs` folder of its cache).
    pub dir: Option<PathBuf>,
    /// Most items in one job.
    pub max_items: usize,
    /// Largest job body (JSON or upload), in bytes.
    pub max_upload_bytes: usize,
    /// Items of a job in the engine's queue at once.
    pub window: usize,
    /// Key of the webhooks' HMAC-SHA256 signatures (at least 16 characters); a job that asks for
    /// a webhook is refused while this is empty.
    pub webhook_secret: String,
    /// Tries of each webhook delivery (waits of 1 s, 2 s, 4 s, ... up to 60 s between).
    pub webhook_attempts: u32,
    /// Finished jobs and their audio are deleted this many hours after they end (0: kept).
    pub keep_hours: f64,
    /// Hosts (`host` or `host:port`) webhooks may be sent to; empty: any. Where clients are
    /// not trusted, list the receivers: otherwise a client can make the server POST to any
    /// address it reaches.
    pub webhook_hosts: Vec<String>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { dir: None, max_items: 10_000, max_upload_bytes: 32 << 20, window: 4, webhook_secret: String::new(), webhook_attempts: 6, keep_hours: 168.0, webhook_hosts: Vec::new() }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for the jobs before it.
    Queued,
    Running,
    /// Every item ended (each succeeded or failed: see `failed` and `errors`).
    Completed,
    Cancelled,
}

/// `job.json`: the job as it was asked. Items are kept as their input lines, so that a resumed
/// job reads them through the same parser.
#[derive(Debug, Serialize, Deserialize)]
struct JobFile {
    id: String,
    created_at: u64,
    response_format: AudioFormat,
    webhook: Option<String>,
    voice: String,
    speed: f32,
    lang: Option<String>,
    lines: Vec<String>,
    /// A hash of the API key that made it, when the server has keys: only that key sees it.
    #[serde(default)]
    owner: Option<String>,
}

/// `state.json`: how a finished job ended and where its webhook stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EndFile {
    status: JobStatus,
    finished_at: u64,
    webhook: Option<WebhookState>,
}

/// A job's webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookState {
    pub url: String,
    pub delivered: bool,
    pub attempts: u32,
    pub error: Option<String>,
}

struct Job {
    file: JobFile,
    items: Vec<Item>,
    dir: PathBuf,
    cancel: AtomicBool,
    state: Mutex<JobState>,
}

struct JobState {
    status: JobStatus,
    finished_at: Option<u64>,
    /// Ended items by id.
    results: HashMap<String, ManifestLine>,
    /// When this process started running the job, and how many items had ended then.
    running_since: Option<(Instant, usize)>,
    webhook: Option<WebhookState>,
}

/// How many jobs stand where (`kokoro_jobs`, the status page).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JobCounts {
    pub queued: usize,
    pub running: usize,
    pub completed: usize,
    pub cancelled: usize,
    pub items_pending: usize,
}

/// One failed item, as `GET /v1/jobs/{id}` lists it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ItemFailure {
    pub id: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// A job as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobView {
    pub id: String,
    /// Always `job`.
    pub object: &'static str,
    pub status: JobStatus,
    /// Unix seconds.
    pub created_at: u64,
    pub finished_at: Option<u64>,
    pub response_format: AudioFormat,
    pub total: usize,
    /// Items ended (succeeded or failed).
    pub done: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub percent: f64,
    /// Estimated seconds until the job ends (from this run's pace; absent before the first item).
    pub eta_seconds: Option<f64>,
    /// Seconds of audio spoken so far.
    pub audio_seconds: f64,
    /// Failed items (absent from the job list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ItemFailure>>,
    pub webhook: Option<WebhookState>,
    /// One item's audio: this path with `{item}` replaced by its id.
    pub item_url: String,
    pub archive_url: String,
}

/// What `DELETE` of a finished job answers.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deleted {
    pub id: String,
    /// Always `job.deleted`.
    pub object: &'static str,
    pub deleted: bool,
}

/// Every job, newest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<JobView>,
}

/// The JSON body of `POST /v1/jobs`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Items as `kokoro batch` reads them: `{"id", "text", "voice"?, "speed"?, "lang"?}`.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub items: Vec<serde_json::Value>,
    #[serde(flatten)]
    pub options: JobOptions,
}

/// A job's defaults and delivery; in the JSON body, or the query of an upload.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct JobOptions {
    /// Voice of items that name none (default `af_heart`).
    pub voice: Option<String>,
    /// Speed of items that give none (default 1).
    pub speed: Option<f32>,
    /// Dialect of items that give none (`a`/`en-us`, `b`/`en-gb`; default: each item's voice's).
    pub lang_code: Option<String>,
    /// Format of each item's audio (default wav).
    pub response_format: Option<AudioFormat>,
    /// `http://` URL that gets a signed POST when the job ends.
    pub webhook: Option<String>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A new job's id: `job_`, the time and 64 random bits (std's per-process hash keys).
fn new_job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("job_{:x}{:016x}", now_unix(), h.finish())
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn audio_dir(&self) -> PathBuf {
        self.dir.join("audio")
    }

    fn item_path(&self, item: &str) -> PathBuf {
        self.audio_dir().join(format!("{item}.{}", self.file.response_format.as_str()))
    }

    fn view(&self, with_errors: bool) -> JobView {
        let state = self.lock();
        let total = self.items.len();
        let done = state.results.len();
        let failed = state.results.values().filter(|l| l.status != "ok").count();
        let audio_seconds = state.results.values().filter_map(|l| l.seconds).sum();
        let eta_seconds = match (state.status, state.running_since) {
            (JobStatus::Running, Some((since, at_start))) if done > at_start => {
                let per_item = since.elapsed().as_secs_f64() / (done - at_start) as f64;
                Some(per_item * (total - done) as f64)
            }
            (JobStatus::Completed | JobStatus::Cancelled, _) => Some(0.0),
            _ => None,
        };
        let errors = with_errors.then(|| {
            self.items
                .iter()
                .filter_map(|i| state.results.get(&i.id))
                .filter(|l| l.status != "ok")
                .map(|l| ItemFailure { id: l.id.clone(), code: l.code.clone(), message: l.error.clone() })
                .collect()
        });
        let id = &self.file.id;
        JobView {
            id: id.clone(),
            object: "job",
            status: state.status,
            created_at: self.file.created_at,
            finished_at: state.finished_at,
            response_format: self.file.response_format,
            total,
            done,
            succeeded: done - failed,
            failed,
            percent: if total == 0 { 100.0 } else { (1000.0 * done as f64 / total as f64).round() / 10.0 },
            eta_seconds,
            audio_seconds,
            errors,
            webhook: state.webhook.clone(),
            item_url: format!("/v1/jobs/{id}/items/{{item}}"),
            archive_url: format!("/v1/jobs/{id}/archive"),
        }
    }

    /// Writes `state.json` (the job has ended).
    fn save_end(&self) -> std::io::Result<()> {
        let state = self.lock();
        let end = EndFile { status: state.status, finished_at: state.finished_at.unwrap_or_else(now_unix), webhook: state.webhook.clone() };
        drop(state);
        write_atomic(&self.dir.join("state.json"), &serde_json::to_vec_pretty(&end).expect("plain JSON"))
    }

    fn is_finished(&self) -> bool {
        matches!(self.lock().status, JobStatus::Completed | JobStatus::Cancelled)
    }
}

/// The jobs of one server.
pub struct Jobs {
    dir: PathBuf,
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    /// Whether [`run`] is running (a drain waits for it to save its work and stop).
    pub(crate) running: AtomicBool,
}

impl Jobs {
    /// Opens `dir` (made if missing): finished jobs are listed, unfinished ones queued in the
    /// order they came, webhooks still owed noted for [`run`]. A folder that cannot be read as a
    /// job is skipped with a warning (and left alone).
    pub fn open(dir: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let mut loaded = Vec::new();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            match load_job(&path) {
                Ok(job) => loaded.push(job),
                Err(e) => tracing::warn!(folder = %path.display(), error = %e, "not a job: skipped"),
            }
        }
        loaded.sort_by(|a, b| (a.file.created_at, &a.file.id).cmp(&(b.file.created_at, &b.file.id)));
        let queue: VecDeque<String> = loaded.iter().filter(|j| !j.is_finished()).map(|j| j.file.id.clone()).collect();
        if !queue.is_empty() {
            tracing::info!(jobs = queue.len(), "unfinished jobs found: they resume");
        }
        let jobs = loaded.into_iter().map(|j| (j.file.id.clone(), Arc::new(j))).collect();
        Ok(Arc::new(Self { dir: dir.to_path_buf(), jobs: Mutex::new(jobs), queue: Mutex::new(queue), wake: Condvar::new(), running: AtomicBool::new(false) }))
    }

    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    fn all(&self) -> Vec<Arc<Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// Whether the runner is still at work (a drain waits for it).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Jobs by status (queued, running, completed, cancelled), and the items of unfinished
    /// jobs not yet ended.
    pub fn counts(&self) -> JobCounts {
        let mut counts = JobCounts::default();
        for job in self.all() {
            let state = job.lock();
            let slot = match state.status {
                JobStatus::Queued => &mut counts.queued,
                JobStatus::Running => &mut counts.running,
                JobStatus::Completed => &mut counts.completed,
                JobStatus::Cancelled => &mut counts.cancelled,
            };
            *slot += 1;
            if matches!(state.status, JobStatus::Queued | JobStatus::Running) {
                counts.items_pending += job.items.len() - state.results.len();
            }
        }
        counts
    }

    /// Unfinished jobs.
    pub fn unfinished(&self) -> usize {
        self.all().iter().filter(|j| !j.is_finished()).count()
    }

    /// Saves a new job and queues it.
    fn create(&self, file: JobFile, items: Vec<Item>) -> std::io::Result<Arc<Job>> {
        let dir = self.dir.join(&file.id);
        std::fs::create_dir_all(dir.join("audio"))?;
        // job.json last: a folder without it (a crash in between) is not a job.
        ManifestWriter::start(&dir.join("manifest.jsonl"), std::iter::empty())?;
        write_atomic(&dir.join("job.json"), &serde_json::to_vec(&file).expect("plain JSON"))?;
        let job = Arc::new(Job {
            file,
            items,
            dir,
            cancel: AtomicBool::new(false),
            state: Mutex::new(JobState { status: JobStatus::Queued, finished_at: None, results: HashMap::new(), running_since: None, webhook: None }),
        });
        job.lock().webhook = job.file.webhook.clone().map(|url| WebhookState { url, delivered: false, attempts: 0, error: None });
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).insert(job.file.id.clone(), job.clone());
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(job.file.id.clone());
        self.wake.notify_all();
        Ok(job)
    }

    /// The next queued job, waiting up to `timeout` for one.
    fn next(&self, timeout: Duration) -> Option<Arc<Job>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.is_empty() {
            queue = self.wake.wait_timeout(queue, timeout).unwrap_or_else(PoisonError::into_inner).0;
        }
        while let Some(id) = queue.pop_front() {
            if let Some(job) = self.get(&id).filter(|j| !j.is_finished()) {
                return Some(job);
            }
        }
        None
    }

    /// Deletes finished jobs older than `keep_hours` (0: none).
    fn sweep(&self, keep_hours: f64) {
        if keep_hours <= 0.0 {
            return;
        }
        let cutoff = now_unix().saturating_sub((keep_hours * 3600.0) as u64);
        for job in self.all() {
            let old = job.lock().finished_at.is_some_and(|t| t < cutoff);
            if old && job.is_finished() && !webhook_owed(&job) {
                self.delete(&job);
                tracing::info!(job = %job.file.id, "finished job deleted (jobs.keep_hours)");
            }
        }
    }

    fn delete(&self, job: &Job) {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).remove(&job.file.id);
        if let Err(e) = std::fs::remove_dir_all(&job.dir) {
            tracing::warn!(job = %job.file.id, error = %e, "could not delete the job's folder");
        }
    }
}

fn webhook_owed(job: &Job) -> bool {
    job.lock().webhook.as_ref().is_some_and(|w| !w.delivered && w.error.is_none())
}

/// Reads a job's folder back.
fn load_job(dir: &Path) -> Result<Job, String> {
    let text = std::fs::read(dir.join("job.json")).map_err(|e| format!("job.json: {e}"))?;
    let file: JobFile = serde_json::from_slice(&text).map_err(|e| format!("job.json: {e}"))?;
    if !is_safe_id(&file.id) || dir.file_name().is_none_or(|n| n != file.id.as_str()) {
        return Err(format!("job.json names job {:?}, not its folder", file.id));
    }
    let items = parse_lines(&file);
    let end: Option<EndFile> = std::fs::read(dir.join("state.json")).ok().and_then(|t| serde_json::from_slice(&t).ok());
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).map_err(|e| format!("{}: {e}", audio.display()))?;
    remove_stale_partials(&audio);
    let job = Job {
        items,
        dir: dir.to_path_buf(),
        cancel: AtomicBool::new(false),
        state: Mutex::new(JobState {
            status: end.as_ref().map_or(JobStatus::Queued, |e| e.status),
            finished_at: end.as_ref().map(|e| e.finished_at),
            results: HashMap::new(),
            running_since: None,
            webhook: end.and_then(|e| e.webhook).or_else(|| file.webhook.clone().map(|url| WebhookState { url, delivered: false, attempts: 0, error: None })),
        }),
        file,
    };
    // An item counts as ended when the manifest says so and, if it succeeded, its file is there.
    let mut results = read_manifest(&dir.join("manifest.jsonl"));
    results.retain(|id, line| line.status != "ok" || job.item_path(id).metadata().is_ok_and(|m| m.is_file() && m.len() > 0));
    results.retain(|id, _| job.items.iter().any(|i| &i.id == id));
    job.lock().results = results;
    Ok(job)
}

/// A job's items, from its stored lines.
fn parse_lines(file: &JobFile) -> Vec<Item> {
    let defaults = ItemDefaults { voice: file.voice.clone(), speed: file.speed, lang: file.lang.clone() };
    parse_items(file.lines.iter().enumerate().map(|(n, l)| (n + 1, Ok(l.clone()))).collect(), &defaults)
}

/// Speaks the queued jobs, one after another, until the server drains; delivers webhooks owed
/// from before. Blocking: runs on its own thread.
pub fn run(app: Arc<AppState>, jobs: Arc<Jobs>) {
    jobs.running.store(true, Ordering::SeqCst);
    for job in jobs.all() {
        if job.is_finished() && webhook_owed(&job) {
            spawn_webhook(app.clone(), job);
        }
    }
    let mut last_sweep = Instant::now() - Duration::from_secs(3600);
    while !app.is_draining() {
        if last_sweep.elapsed() > Duration::from_secs(60) {
            jobs.sweep(app.config().jobs.keep_hours);
            last_sweep = Instant::now();
        }
        // The engine first: jobs wait while the weights load.
        if app.synth().is_err() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let Some(job) = jobs.next(Duration::from_millis(500)) else { continue };
        run_job(&app, &job);
        if app.is_draining() {
            // Back to the queue in memory too (the disk already says unfinished).
            let mut state = job.lock();
            if state.status == JobStatus::Running {
                state.status = JobStatus::Queued;
                jobs.queue.lock().unwrap_or_else(PoisonError::into_inner).push_front(job.file.id.clone());
            }
        }
    }
    let left = jobs.unfinished();
    if left > 0 {
        tracing::info!(jobs = left, "draining: unfinished jobs are saved and resume at the next start");
    }
    jobs.running.store(false, Ordering::SeqCst);
}

/// Speaks one job's remaining items; ends it unless the server drains or it is cancelled.
fn run_job(app: &Arc<AppState>, job: &Arc<Job>) {
    let todo: Vec<&Item> = {
        let mut state = job.lock();
        if matches!(state.status, JobStatus::Completed | JobStatus::Cancelled) {
            return; // cancelled between the queue and here
        }
        state.status = JobStatus::Running;
        state.running_since = Some((Instant::now(), state.results.len()));
        job.items.iter().filter(|i| !state.results.contains_key(&i.id)).collect()
    };
    tracing::info!(job = %job.file.id, items = todo.len(), total = job.items.len(), "job running");
    let manifest_path = job.dir.join("manifest.jsonl");
    let kept: Vec<ManifestLine> = {
        let state = job.lock();
        job.items.iter().filter_map(|i| state.results.get(&i.id).cloned()).collect()
    };
    let mut manifest = match ManifestWriter::start(&manifest_path, kept.iter()) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(job = %job.file.id, error = %e, "cannot write the job's manifest: the job waits for the next start");
            return;
        }
    };
    let stop = || job.cancel.load(Ordering::Relaxed) || app.is_draining();
    let window = app.config().jobs.window.max(1);
    let mut open: VecDeque<(&Item, Result<kokoro_engine::Stream, ApiError>)> = VecDeque::new();
    let mut todo = todo.into_iter();
    loop {
        while open.len() < window && !stop() {
            let Some(item) = todo.next() else { break };
            open.push_back((item, submit(app, item, &stop)));
        }
        if stop() {
            break; // the open streams drop: their chunks leave the engine's queue
        }
        let Some((item, stream)) = open.pop_front() else { break };
        let line = match stream.and_then(|s| speak(job, item, s, &stop)) {
            Ok(Some(line)) => line,
            Ok(None) => break, // stopped midway
            // The engine stopping is not the item's fault: it is spoken after the restart.
            Err(e) if e.code == "shutting_down" => break,
            Err(e) => ManifestLine::failed(&item.id, e.message, e.code),
        };
        if job.is_finished() {
            break; // cancelled while it was spoken: the job's record is closed
        }
        if let Err(e) = manifest.append(&line) {
            tracing::error!(job = %job.file.id, error = %e, "cannot append to the job's manifest: the job waits for the next start");
            return;
        }
        if line.status != "ok" {
            tracing::info!(job = %job.file.id, item = %item.id, code = line.code.as_deref().unwrap_or(""), "job item failed");
        }
        job.lock().results.insert(item.id.clone(), line);
    }
    if job.cancel.load(Ordering::Relaxed) || app.is_draining() {
        return;
    }
    finish(app, job, JobStatus::Completed);
}

/// Queues one item on the engine (waiting while the queue is full).
fn submit(app: &AppState, item: &Item, stop: &dyn Fn() -> bool) -> Result<kokoro_engine::Stream, ApiError> {
    let spec = item.what.as_ref().map_err(|e| ApiError::invalid(None, e.code, format!("line {}: {}", item.line, e.message)))?;
    let config = app.config();
    let model = config.models.first().map_or("kokoro", String::as_str);
    let mut request = crate::speech::engine_request(&config, model, &spec.text, &spec.voice, spec.speed, spec.lang.as_deref(), Priority::Bulk)?;
    // Bulk work is meant to wait while other speech overtakes it: no request timeout, which
    // would turn a busy hour into failed items.
    request.deadline = None;
    let synth = app.synth()?;
    loop {
        match synth.submit(request.clone()) {
            Err(EngineError::Overloaded { retry_after }) if !stop() => std::thread::sleep(retry_after.min(Duration::from_millis(200))),
            other => return other.map_err(ApiError::from),
        }
    }
}

/// Collects an item's audio and writes its file; `None` when stopped first.
fn speak(job: &Job, item: &Item, mut stream: kokoro_engine::Stream, stop: &dyn Fn() -> bool) -> Result<Option<ManifestLine>, ApiError> {
    let mut audio = Vec::new();
    loop {
        match stream.next_timeout(Duration::from_millis(100)) {
            Ok(Some(chunk)) => audio.extend_from_slice(&chunk.audio),
            Ok(None) if stop() => return Ok(None),
            Ok(None) => {}
            Err(None) => break,
            Err(Some(e)) => return Err(e.into()),
        }
    }
    let format = job.file.response_format;
    let bytes = format.encode_all(&audio).map_err(|e| ApiError::internal("encode_failed", e.to_string()))?;
    let path = job.item_path(&item.id);
    write_atomic(&path, &bytes).map_err(|e| ApiError::internal("io", e.to_string()))?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Some(ManifestLine::ok(&item.id, format!("audio/{file}"), audio.len() as f64 / SAMPLE_RATE as f64)))
}

/// Ends a job: its status on disk, then its webhook.
fn finish(app: &Arc<AppState>, job: &Arc<Job>, status: JobStatus) {
    {
        let mut state = job.lock();
        // A cancel and the last item can cross: the first end stands, and one webhook goes.
        if matches!(state.status, JobStatus::Completed | JobStatus::Cancelled) {
            return;
        }
        state.status = status;
        state.finished_at = Some(now_unix());
    }
    if let Err(e) = job.save_end() {
        tracing::error!(job = %job.file.id, error = %e, "cannot save the job's end");
    }
    let view = job.view(false);
    tracing::info!(job = %job.file.id, status = ?status, succeeded = view.succeeded, failed = view.failed, audio_seconds = view.audio_seconds, "job ended");
    if job.file.webhook.is_some() {
        spawn_webhook(app.clone(), job.clone());
    }
}

/// Delivers a job's webhook on a thread of its own (retries wait; the runner goes on).
fn spawn_webhook(app: Arc<AppState>, job: Arc<Job>) {
    std::thread::Builder::new()
        .name("kokoro-job-webhook".into())
        .spawn(move || {
            let Some(url) = job.file.webhook.clone() else { return };
            let config = app.config();
            let secret = config.jobs.webhook_secret.clone();
            let mut payload = serde_json::to_value(job.view(true)).expect("plain JSON");
            payload["event"] = serde_json::Value::from(match job.view(false).status {
                JobStatus::Cancelled => "job.cancelled",
                _ => "job.completed",
            });
            payload["timestamp"] = serde_json::Value::from(time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
            let body = payload.to_string();
            let headers = [(crate::webhook::SIGNATURE_HEADER, crate::webhook::sign(secret.as_bytes(), body.as_bytes())), ("x-kokoro-job", job.file.id.clone())];
            let app_for_stop = app.clone();
            let delivery = crate::webhook::post(&url, &body, &headers, config.jobs.webhook_attempts, "job", &move || app_for_stop.is_draining());
            let delivered = delivery.error.is_none();
            let gave_up = !delivered && !app.is_draining();
            if delivered || gave_up {
                job.lock().webhook = Some(WebhookState { url, delivered, attempts: delivery.attempts, error: delivery.error });
                if let Err(e) = job.save_end() {
                    tracing::error!(job = %job.file.id, error = %e, "cannot save the webhook's delivery");
                }
            }
            tracing::info!(job = %job.file.id, delivered, attempts = delivery.attempts, "job webhook");
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the webhook's thread"));
}

// ---- HTTP ----

fn jobs_of(app: &AppState) -> Result<Arc<Jobs>, ApiError> {
    app.jobs().ok_or_else(|| ApiError::not_found(None, "jobs_off", "jobs are off on this server: set jobs.dir"))
}

/// Who is asking: a hash of their API key when the server has keys (the guard has checked it).
fn caller(app: &AppState, headers: &HeaderMap) -> Option<String> {
    let keys = !app.config().security.api_keys.is_empty();
    keys.then(|| crate::bearer(headers).map(crate::short_hash)).flatten()
}

/// Whether `job` is the caller's to see: every job when the server has no keys; else the jobs
/// its key made (and those made before keys were set).
fn visible(job: &Job, caller: &Option<String>) -> bool {
    job.file.owner.is_none() || &job.file.owner == caller
}

fn job_of(app: &AppState, id: &str, headers: &HeaderMap) -> Result<Arc<Job>, ApiError> {
    let jobs = jobs_of(app)?;
    let caller = caller(app, headers);
    // Another key's job answers as a missing one: its existence is not the caller's business.
    jobs.get(id).filter(|j| visible(j, &caller)).ok_or_else(|| ApiError::not_found(None, "job_not_found", format!("no job {id:?}")))
}

/// `POST /v1/jobs`: a JSON body, or an upload (JSONL or text, one item per line) with the
/// options in the query.
pub(crate) async fn create(State(app): State<Arc<AppState>>, Query(query): Query<JobOptions>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let jobs = jobs_of(&app)?;
    if app.is_draining() {
        return Err(ApiError::unavailable("draining", "the server is shutting down: retry on another replica", Duration::from_secs(5)));
    }
    let config = app.config();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (lines, options) = if content_type.starts_with("application/json") {
        let request: JobRequest = crate::speech::parse_json(&body)?;
        // Each item an object, as a JSONL line; anything else is a malformed body, not an item.
        if let Some(n) = request.items.iter().position(|i| !i.is_object()) {
            return Err(ApiError::invalid(Some(&format!("items[{n}]")), "invalid_request", format!("items[{n}] is not an object: give {{\"id\", \"text\", \"voice\"?, \"speed\"?, \"lang\"?}}")));
        }
        let lines = request.items.iter().map(|i| i.to_string()).collect();
        (lines, request.options)
    } else {
        let text = std::str::from_utf8(&body).map_err(|e| ApiError::invalid(None, "bad_text", format!("the upload is not UTF-8 (invalid byte at {})", e.valid_up_to())))?;
        (text.lines().map(str::to_string).collect::<Vec<_>>(), query)
    };
    let lines: Vec<String> = lines;
    let count = lines.iter().filter(|l| !l.trim().is_empty()).count();
    if count == 0 {
        return Err(ApiError::invalid(Some("items"), "no_items", "the job has no items: give {\"items\": [{\"id\", \"text\"}, ...]} or upload JSONL"));
    }
    if count > config.jobs.max_items {
        return Err(ApiError::too_large(Some("items"), format!("the job has {count} items; the limit is {} (jobs.max_items)", config.jobs.max_items)));
    }
    let speed = options.speed.unwrap_or(1.0);
    if !(kokoro_engine::MIN_SPEED..=kokoro_engine::MAX_SPEED).contains(&speed) {
        return Err(ApiError::invalid(Some("speed"), "bad_speed", format!("speed {speed} is out of range: use {} to {}", kokoro_engine::MIN_SPEED, kokoro_engine::MAX_SPEED)));
    }
    let lang = crate::speech::dialect_of(options.lang_code.as_deref())?;
    let format = options.response_format.unwrap_or(AudioFormat::Wav);
    format.encoder().map_err(|e| ApiError::invalid(Some("response_format"), "format_unavailable", e.to_string()))?;
    if let Some(url) = &options.webhook {
        if !url.starts_with("http://") || url.len() > 2048 || axum::http::Uri::try_from(url.as_str()).is_err() {
            return Err(ApiError::invalid(Some("webhook"), "bad_webhook", "webhook must be an http:// URL (plain HTTP: put TLS in front of a receiver across a network)"));
        }
        let uri = axum::http::Uri::try_from(url.as_str()).map_err(|e| ApiError::invalid(Some("webhook"), "bad_webhook", e.to_string()))?;
        let (host, port) = (uri.host().unwrap_or(""), uri.port_u16().unwrap_or(80));
        let allowed = &config.jobs.webhook_hosts;
        if !allowed.is_empty() && !allowed.iter().any(|a| a == host || *a == format!("{host}:{port}")) {
            return Err(ApiError::invalid(Some("webhook"), "webhook_host_refused", format!("webhooks may not go to {host}:{port}: allowed are {} (jobs.webhook_hosts)", allowed.join(", "))));
        }
        if config.jobs.webhook_secret.is_empty() {
            return Err(ApiError::invalid(Some("webhook"), "webhooks_off", "this server signs no webhooks: set jobs.webhook_secret to use them"));
        }
    }
    let file = JobFile {
        id: new_job_id(),
        created_at: now_unix(),
        response_format: format,
        webhook: options.webhook,
        voice: options.voice.map_or_else(|| "af_heart".to_string(), |v| v.trim().to_string()),
        speed,
        lang,
        lines,
        owner: caller(&app, &headers),
    };
    let items = parse_lines(&file);
    let job = tokio::task::spawn_blocking(move || jobs.create(file, items))
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))?
        .map_err(|e| ApiError::internal("io", format!("cannot save the job: {e}")))?;
    let view = job.view(true);
    tracing::info!(job = %view.id, items = view.total, "job queued");
    let location = format!("/v1/jobs/{}", view.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(view)).into_response())
}

/// `GET /v1/jobs`.
pub(crate) async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Result<axum::Json<JobList>, ApiError> {
    let jobs = jobs_of(&app)?;
    let caller = caller(&app, &headers);
    let mut data: Vec<JobView> = jobs.all().iter().filter(|j| visible(j, &caller)).map(|j| j.view(false)).collect();
    data.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    Ok(axum::Json(JobList { object: "list", data }))
}

/// `GET /v1/jobs/{id}`.
pub(crate) async fn get(State(app): State<Arc<AppState>>, UrlPath(id): UrlPath<String>, headers: HeaderMap) -> Result<axum::Json<JobView>, ApiError> {
    Ok(axum::Json(job_of(&app, &id, &headers)?.view(true)))
}

/// `DELETE /v1/jobs/{id}`: cancels an unfinished job (its finished items stay); deletes a
/// finished one with its files.
pub(crate) async fn delete(State(app): State<Arc<AppState>>, UrlPath(id): UrlPath<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let jobs = jobs_of(&app)?;
    let job = job_of(&app, &id, &headers)?;
    if job.is_finished() {
        tokio::task::spawn_blocking(move || jobs.delete(&job)).await.map_err(|e| ApiError::internal("internal", e.to_string()))?;
        tracing::info!(job = %id, "job deleted");
        return Ok(axum::Json(Deleted { id, object: "job.deleted", deleted: true }).into_response());
    }
    job.cancel.store(true, Ordering::Relaxed);
    jobs.queue.lock().unwrap_or_else(PoisonError::into_inner).retain(|q| q != &id);
    let app2 = app.clone();
    let job2 = job.clone();
    tokio::task::spawn_blocking(move || finish(&app2, &job2, JobStatus::Cancelled)).await.map_err(|e| ApiError::internal("internal", e.to_string()))?;
    tracing::info!(job = %id, "job cancelled");
    Ok(axum::Json(job.view(true)).into_response())
}

/// `GET /v1/jobs/{id}/items/{item}`: the item's audio.
pub(crate) async fn item(State(app): State<Arc<AppState>>, UrlPath((id, item)): UrlPath<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let job = job_of(&app, &id, &headers)?;
    let line = job.lock().results.get(&item).cloned();
    let Some(line) = line.filter(|_| is_safe_id(&item)) else {
        let known = job.items.iter().any(|i| i.id == item);
        let why = if known { format!("item {item:?} of job {id} has not been spoken yet") } else { format!("job {id} has no item {item:?}") };
        return Err(ApiError::not_found(None, "item_not_found", why));
    };
    if line.status != "ok" {
        return Err(ApiError::not_found(None, "item_failed", format!("item {item:?} failed: {}", line.error.unwrap_or_default())));
    }
    let path = job.item_path(&item);
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))?
        .map_err(|e| ApiError::internal("io", format!("reading the item's audio: {e}")))?;
    let format = job.file.response_format;
    let disposition = format!("attachment; filename=\"{item}.{}\"", format.as_str());
    Ok(([(header::CONTENT_TYPE, format.content_type().to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response())
}

/// `GET /v1/jobs/{id}/archive`: a zip of a finished job (each item's audio, stored as is, and
/// `manifest.jsonl` in input order), made once and kept beside the job, sent in pieces.
pub(crate) async fn archive(State(app): State<Arc<AppState>>, UrlPath(id): UrlPath<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let job = job_of(&app, &id, &headers)?;
    if !job.is_finished() {
        return Err(ApiError { status: StatusCode::CONFLICT, ..ApiError::invalid(None, "job_not_finished", format!("job {id} has not ended: its archive is made when it has")) });
    }
    let path = tokio::task::spawn_blocking(move || make_archive(&job))
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))?
        .map_err(|e| ApiError::internal("io", format!("making the archive: {e}")))?;
    let size = std::fs::metadata(&path).map_err(|e| ApiError::internal("io", e.to_string()))?.len();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return drop(tx.blocking_send(Err(e))),
        };
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return,
                // A send fails when the client has gone: stop reading.
                Ok(n) => {
                    if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return;
                    }
                }
                Err(e) => return drop(tx.blocking_send(Err(e))),
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|piece| (piece, rx)) }));
    let disposition = format!("attachment; filename=\"{id}.zip\"");
    Ok(([(header::CONTENT_TYPE, "application/zip".to_string()), (header::CONTENT_DISPOSITION, disposition), (header::CONTENT_LENGTH, size.to_string())], body).into_response())
}

/// The job's `archive.zip`, made if missing.
fn make_archive(job: &Job) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let path = job.dir.join("archive.zip");
    if path.is_file() {
        return Ok(path);
    }
    let lines: Vec<ManifestLine> = {
        let state = job.lock();
        job.items.iter().filter_map(|i| state.results.get(&i.id).cloned()).collect()
    };
    let (file, writer) = AtomicFile::create(&path)?;
    let mut zip = zip::ZipWriter::new(writer);
    // Stored: the audio formats are compressed already, or WAV that deflate barely shrinks.
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    let io = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
    let mut manifest = String::new();
    for line in &lines {
        manifest.push_str(&serde_json::to_string(line).expect("plain JSON"));
        manifest.push('\n');
        if let Some(name) = line.file.as_deref().filter(|_| line.status == "ok") {
            zip.start_file(name, options).map_err(io)?;
            let mut audio = std::fs::File::open(job.dir.join(name))?;
            std::io::copy(&mut audio, &mut zip)?;
        }
    }
    zip.start_file("manifest.jsonl", options).map_err(io)?;
    zip.write_all(manifest.as_bytes())?;
    let mut writer = zip.finish().map_err(io)?;
    writer.flush()?;
    drop(writer);
    file.commit()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_safe_and_distinct() {
        let a = new_job_id();
        let b = new_job_id();
        assert!(is_safe_id(&a) && is_safe_id(&b), "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_folder_that_is_not_a_job_is_skipped_and_a_job_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("junk")).unwrap();
        std::fs::write(dir.path().join("junk/job.json"), b"{not json").unwrap();
        let jobs = Jobs::open(dir.path()).unwrap();
        assert!(jobs.all().is_empty());
        let file = JobFile {
            id: new_job_id(),
            created_at: 1,
            response_format: AudioFormat::Wav,
            webhook: None,
            voice: "af_heart".into(),
            speed: 1.0,
            lang: None,
            lines: vec![r#"{"id": "a", "text": "Hi."}"#.into(), r#"{"id": "../b", "text": "Hi."}"#.into()],
            owner: None,
        };
        let id = file.id.clone();
        let items = parse_lines(&file);
        let job = jobs.create(file, items).unwrap();
        // An item the manifest says is done but whose file is missing is done again.
        let mut manifest = ManifestWriter::start(&job.dir.join("manifest.jsonl"), std::iter::empty()).unwrap();
        manifest.append(&ManifestLine::ok("a", "audio/a.wav".into(), 1.0)).unwrap();
        manifest.append(&ManifestLine::failed("line-2", "bad".into(), "bad_id")).unwrap();
        let reopened = Jobs::open(dir.path()).unwrap();
        let back = reopened.get(&id).unwrap();
        assert_eq!(back.items.len(), 2);
        assert_eq!(back.lock().status, JobStatus::Queued);
        assert_eq!(back.lock().results.keys().collect::<Vec<_>>(), ["line-2"]);
        assert_eq!(reopened.queue.lock().unwrap().iter().collect::<Vec<_>>(), [&id]);
    }
}
