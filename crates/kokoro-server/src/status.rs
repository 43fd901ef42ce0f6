//! The status page at `/` (one HTML file built into the binary, no outside assets, so it works
//! offline and behind any proxy) and the JSON it polls, `/status.json`: health, queue depth per
//! priority, throughput and latency over the last minutes, the caches, pre-warm progress,
//! recent alerts, and a box to try a voice.
//!
//! The page shows no request text (the response cache's entries keep the start of each text:
//! only their counts and bytes are shown) and no secret.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::alerts::quantile;
use crate::state::AppState;

/// Seconds between two points of the charts.
pub const SAMPLE_SECS: f64 = 5.0;
/// Points kept: ten minutes.
const POINTS: usize = 120;

/// One point of the charts.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Point {
    /// Seconds since the server started.
    pub t: f64,
    pub requests_per_sec: f64,
    /// Seconds of audio spoken per wall second.
    pub audio_per_sec: f64,
    /// Time to first audio over the point's interval (None: no request).
    pub first_audio_p50: Option<f64>,
    pub first_audio_p99: Option<f64>,
    pub queued: usize,
}

/// The charts' points and the counters the next point is measured from.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<HistoryInner>,
}

#[derive(Debug, Default)]
struct HistoryInner {
    points: VecDeque<Point>,
    last: Option<(Instant, u64, f64)>,
}

impl History {
    /// Adds a point from the server's counters now.
    pub fn sample(&self, app: &AppState) {
        let now = Instant::now();
        let (requests, _) = app.metrics.answered();
        let stats = app.stats();
        let audio = stats.as_ref().map_or(0.0, |s| s.audio_seconds);
        let queued = stats.as_ref().map_or(0, |s| s.queued.iter().sum());
        let mut h = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (requests_per_sec, audio_per_sec, since) = match h.last {
            Some((at, r, a)) => {
                let dt = now.duration_since(at).as_secs_f64().max(1e-3);
                ((requests - r) as f64 / dt, (audio - a) / dt, now.duration_since(at))
            }
            None => (0.0, 0.0, Duration::from_secs_f64(SAMPLE_SECS)),
        };
        let recent = app.metrics.first_audio_within(since);
        let point = Point {
            t: app.started.elapsed().as_secs_f64(),
            requests_per_sec,
            audio_per_sec,
            first_audio_p50: quantile(&recent, 0.5),
            first_audio_p99: quantile(&recent, 0.99),
            queued,
        };
        if h.points.len() == POINTS {
            h.points.pop_front();
        }
        h.points.push_back(point);
        h.last = Some((now, requests, audio));
    }

    pub fn points(&self) -> Vec<Point> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).points.iter().copied().collect()
    }
}

/// Adds a chart point every [`SAMPLE_SECS`] (and tidies the rate limiter) until the process ends.
pub async fn run_sampler(app: Arc<AppState>) {
    loop {
        app.history.sample(&app);
        // The rate limiter keeps a cell per client; forget those whose limit has fully
        // recovered, so many one-off clients do not grow it without bound.
        if let Some(limiter) = app.rate_limiter() {
            limiter.retain_recent();
        }
        tokio::time::sleep(Duration::from_secs_f64(SAMPLE_SECS)).await;
    }
}

/// `GET /`.
pub async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(include_str!("status.html"))).into_response()
}

/// `GET /status.json`: what the page shows.
pub async fn status_json(State(app): State<Arc<AppState>>) -> Response {
    let config = app.config();
    let prewarm = app.prewarm();
    let stats = app.stats().unwrap_or_default();
    let health = if app.is_draining() {
        "draining"
    } else if app.is_ready() {
        "ready"
    } else {
        "starting"
    };
    let rate = |hits: u64, misses: u64| if hits + misses > 0 { Some(hits as f64 / (hits + misses) as f64) } else { None };
    let caches = match app.synth() {
        Ok(synth) => {
            let v = synth.voice_cache();
            let r = synth.response_cache();
            json!({
                "voice": {
                    "entries": v.entries.iter().map(|e| json!({ "key": e.key, "bytes": e.bytes, "pinned": e.pinned, "hits": e.hits })).collect::<Vec<_>>(),
                    "bytes": v.bytes, "budget": v.budget,
                    "hits": v.stats.hits, "misses": v.stats.misses, "evictions": v.stats.evictions,
                    "hit_rate": rate(v.stats.hits, v.stats.misses),
                },
                "response": {
                    "entries": r.entries.len(), "bytes": r.bytes, "budget": r.budget,
                    "hits": r.stats.hits, "misses": r.stats.misses, "evictions": r.stats.evictions,
                    "hit_rate": rate(r.stats.hits, r.stats.misses),
                },
            })
        }
        Err(_) => json!(null),
    };
    let voices = match app.synth() {
        Ok(synth) => tokio::task::spawn_blocking(move || synth.voice_names().unwrap_or_default()).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let body = json!({
        "health": health,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs_f64(),
        "prewarm": prewarm,
        "jobs": app.jobs().map(|j| j.counts()),
        "queue": {
            "interactive": stats.queued[0], "default": stats.queued[1], "bulk": stats.queued[2],
            "in_flight": stats.in_flight, "open_requests": stats.open_requests,
            "capacity": config.engine.max_queued_chunks,
        },
        "totals": {
            "completed": stats.completed, "failed": stats.failed, "cancelled": stats.cancelled,
            "rejected": stats.rejected, "audio_seconds": stats.audio_seconds,
            "requests": app.metrics.answered().0,
        },
        "history": app.history.points(),
        "sample_seconds": SAMPLE_SECS,
        "caches": caches,
        "memory": app.memory(),
        "alerts": { "firing": app.alerts.firing(), "recent": app.alerts.recent() },
        "auth_required": !config.security.api_keys.is_empty(),
        "voices": voices,
    });
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}
