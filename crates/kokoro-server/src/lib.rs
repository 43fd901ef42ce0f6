//! `kokoro serve`: an OpenAI-compatible speech server over the engine's scheduler.
//!
//! [`router`] is the whole HTTP surface as an axum `Router`, so tests drive it without a socket
//! (`tower::ServiceExt::oneshot`); [`serve`] runs it on a listener with graceful shutdown.
//!
//! ```text
//! HTTP ── router (request id, body limit, draining) ── handler: check the request (400/404/413)
//!      ── spawn_blocking: Scheduler::submit (voice, first chunk's G2P; 503 when full)
//!      ── pump thread: each SpokenChunk ── encoder ── response body (chunked, SSE or NDJSON)
//! ```
//! Inference runs on the engine's worker threads, fed by its priority queue; the async runtime's
//! threads only move bytes. A client that disconnects drops the response body; the pump sees it
//! within 50 ms and drops the engine's stream, which takes the request's chunks out of the queue.
//!
//! Crates chosen: `axum` (the router, testable as a tower `Service`), `tower-http` (request ids,
//! tracing spans), `tokio` (the runtime axum runs on), `tracing` (structured logs),
//! `serde_path_to_error` (a bad field is named in the 400), `base64` (SSE deltas, captions),
//! `toml` (the configuration file), `metrics` with `metrics-exporter-prometheus` (the `/metrics`
//! exposition; see [`metrics`]), `metrics-process` (process CPU and memory), `nvml-wrapper`
//! (NVIDIA GPU use, when a driver is there), `tracing-subscriber` and `tracing-logfmt` (text,
//! JSON and logfmt lines; see [`logging`]), `governor` (per-client rate limits).

mod admin;
pub mod alerts;
pub mod audio;
mod catalog;
pub mod config;
mod dev;
pub mod error;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod openapi;
mod speech;
pub mod state;
pub mod status;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use audio::AudioFormat;
pub use config::{ConfigError, PROFILES, ServerConfig};
pub use error::ApiError;
pub use state::{AppState, PrewarmState, Synthesizer};

/// The header that carries a request's id: taken from the client when it sends one, made
/// otherwise, and returned on the response.
pub const REQUEST_ID: &str = "x-request-id";

/// The whole HTTP surface.
pub fn router(app: Arc<AppState>) -> Router {
    let config = app.config();
    let work = Router::new()
        .route("/v1/audio/speech", post(speech::speech))
        .route("/v1/audio/voices/combine", post(catalog::combine))
        .route("/dev/captioned_speech", post(dev::captioned_speech))
        .route("/dev/phonemize", post(dev::phonemize))
        .route("/dev/generate_from_phonemes", post(dev::generate_from_phonemes))
        .route_layer(middleware::from_fn_with_state(app.clone(), refuse_while_draining));
    // What clients call: behind the API keys and the rate limits.
    let api = Router::new()
        .merge(work)
        .route("/v1/models", get(catalog::models))
        .route("/v1/models/{model}", get(catalog::model))
        .route("/v1/audio/voices", get(catalog::voices))
        .route("/v1/jobs", post(jobs::create).layer(DefaultBodyLimit::max(config.jobs.max_upload_bytes)).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/v1/jobs/{id}/items/{item}", get(jobs::item))
        .route("/v1/jobs/{id}/archive", get(jobs::archive))
        .route_layer(middleware::from_fn_with_state(app.clone(), guard));
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID);
    let mut router = Router::new()
        .merge(api)
        .merge(admin::routes(app.clone()))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/", get(status::page))
        .route("/status.json", get(status::status_json))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
        .layer(middleware::from_fn(openai_error_bodies));
    if let Some(cors) = cors_layer(&config.security.cors_allow_origins) {
        router = router.layer(cors);
    }
    router
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|r: &Request| {
                    let id = r.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %r.method(), path = %r.uri().path(), request_id = %id)
                })
                // A 503 while starting, draining or overloaded is the server working as meant,
                // not an error line per probe: the handlers log what matters.
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(app)
}

/// CORS for browser pages on other origins, when configured.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST, axum::http::Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, axum::http::HeaderName::from_static("x-priority"), axum::http::HeaderName::from_static(REQUEST_ID)])
            .expose_headers([axum::http::HeaderName::from_static(REQUEST_ID), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// `Authorization: Bearer KEY` against the configured API keys (when there are any), then the
/// client's rate limit (keyed by its API key, else its address).
async fn guard(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let config = app.config();
    let key = bearer(request.headers());
    if !config.security.api_keys.is_empty() {
        let Some(key) = key else {
            return ApiError::unauthorized("no API key: send Authorization: Bearer YOUR_KEY").into_response();
        };
        if !config.security.api_keys.iter().any(|k| constant_time_eq(k.as_bytes(), key.as_bytes())) {
            return ApiError::unauthorized("the API key is not one this server knows").into_response();
        }
    }
    if let Some(limiter) = app.rate_limiter() {
        let client = match key {
            Some(k) => format!("key:{}", short_hash(k)),
            None => request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "address:unknown".to_string(), |c| format!("address:{}", c.0.ip())),
        };
        if let Err(not_until) = limiter.check_key(&client) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            let per_minute = config.rate_limit.requests_per_minute;
            return ApiError::rate_limited(format!("rate limit reached ({per_minute} requests per minute): retry after the Retry-After seconds"), wait).into_response();
        }
    }
    next.run(request).await
}

/// The token of `Authorization: Bearer TOKEN`.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Compares secrets in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A hash of the key (SipHash): the limiter keys on it rather than on the secret itself.
pub(crate) fn short_hash(key: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Counts each answered request by route, method and status, and times it to its last byte.
async fn observe(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics.http_request(&route, &method, response.status().as_u16());
    let metrics = app.metrics.clone();
    let (parts, body) = response.into_parts();
    let body = ObservedBody { inner: body, done: Some(Box::new(move || metrics.http_duration(&route, started.elapsed().as_secs_f64()))) };
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// A response body that calls `done` once, at its end or when dropped (a client that left).
struct ObservedBody {
    inner: axum::body::Body,
    done: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done();
        }
    }
}

impl axum::body::HttpBody for ObservedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            if let Some(done) = self.done.take() {
                done();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The OpenAPI description (built once).
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(openapi::document).clone()).into_response()
}

/// Prometheus' text format.
async fn metrics_text(State(app): State<Arc<AppState>>) -> Response {
    let text = app.metrics.render(&app.levels());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "live" }))
}

/// 200 once the weights are loaded and pre-warm is done; 503 before, and while draining.
async fn ready(State(app): State<Arc<AppState>>) -> Response {
    let prewarm = app.prewarm();
    let (status, word) = if app.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if app.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    };
    let failed: Vec<_> = prewarm.failed.iter().map(|(v, e)| serde_json::json!({ "voice": v, "error": e })).collect();
    let body = serde_json::json!({
        "status": word,
        "prewarm": { "done": prewarm.done, "total": prewarm.total, "failed": failed },
        "uptime_seconds": app.started.elapsed().as_secs_f64(),
    });
    (status, axum::Json(body)).into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(None, "not_found", format!("no route for {} {}", request.method(), request.uri().path()))
}

/// New work is refused with 503 while the server drains before it stops.
async fn refuse_while_draining(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if app.is_draining() {
        return ApiError::unavailable("draining", "the server is shutting down: retry on another replica", Duration::from_secs(5)).into_response();
    }
    next.run(request).await
}

/// axum's own rejections (body too large, wrong method, bad content type) are plain text; an
/// OpenAI client expects its error shape with the status.
async fn openai_error_bodies(request: Request, next: Next) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        // axum's 405 has no body: say what was refused.
        message = format!("{}: {what}", status.canonical_reason().unwrap_or("refused").to_lowercase());
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(None, format!("the request body is too large: {message} (limits.max_body_bytes)")),
        s if s.is_client_error() => ApiError { status: s, ..ApiError::invalid(None, "invalid_request", message) },
        s => ApiError { status: s, ..ApiError::internal("internal", message) },
    };
    let mut out = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Reloads the configuration when the file at `path` changes, checked every
/// `watch_config_secs` (read live; 0 turns it off). Polled rather than watched through inotify:
/// a Kubernetes ConfigMap changes by swapping a symbolic link, which file watches miss, and a
/// small file read every few seconds costs nothing. An invalid new file is refused and logged
/// by the reload, and the old configuration stays.
pub async fn watch_config(app: Arc<AppState>, path: std::path::PathBuf) {
    let read = |path: &std::path::Path| std::fs::read(path).ok();
    let mut last = read(&path);
    loop {
        let every = app.config().watch_config_secs;
        tokio::time::sleep(Duration::from_secs_f64(if every > 0.0 { every } else { 1.0 })).await;
        let now = read(&path);
        // While off, follow the file silently, so that turning it on does not replay old edits.
        if now.is_none() || now == last || every <= 0.0 {
            if every <= 0.0 {
                last = now;
            }
            continue;
        }
        last = now;
        tracing::info!(file = %path.display(), "the configuration file changed: reloading");
        let app = app.clone();
        // Errors are logged by reload itself.
        let _ = tokio::task::spawn_blocking(move || app.reload()).await;
    }
}

/// Serves `router(app)` on `listener` until `shutdown` resolves, then drains: readiness and new
/// requests answer 503 while the requests in flight finish, for at most `grace`; then the
/// connections close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let app_for_alerts = app.clone();
    let drained = {
        let app = app.clone();
        async move {
            shutdown.await;
            app.start_draining();
            // Requests in flight, and the jobs' runner until it has saved its place.
            let open_requests = || app.stats().map_or(0, |s| s.open_requests) + app.jobs().is_some_and(|j| j.is_running()) as usize;
            let open = open_requests();
            tracing::info!(open_requests = open, grace_seconds = grace.as_secs_f64(), "draining: refusing new requests");
            let until = Instant::now() + grace;
            while open_requests() > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::info!(open_requests = open_requests(), "drained; closing connections");
        }
    };
    // The peer's address reaches handlers (the rate limit keys on it).
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(drained);
    // The server's own alert evaluation, for as long as it serves.
    let alerts = tokio::spawn(alerts::run(app_for_alerts.clone()));
    // The status page's chart points.
    let sampler = tokio::spawn(status::run_sampler(app_for_alerts));
    let served = server.await;
    alerts.abort();
    sampler.abort();
    served
}
