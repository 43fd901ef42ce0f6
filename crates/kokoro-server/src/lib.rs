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
//! `toml` (the configuration file).

pub mod audio;
mod catalog;
pub mod config;
mod dev;
pub mod error;
mod speech;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
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
    let body_limit = app.config().limits.max_body_bytes;
    let work = Router::new()
        .route("/v1/audio/speech", post(speech::speech))
        .route("/v1/audio/voices/combine", post(catalog::combine))
        .route("/dev/captioned_speech", post(dev::captioned_speech))
        .route("/dev/phonemize", post(dev::phonemize))
        .route("/dev/generate_from_phonemes", post(dev::generate_from_phonemes))
        .route_layer(middleware::from_fn_with_state(app.clone(), refuse_while_draining));
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID);
    Router::new()
        .merge(work)
        .route("/v1/models", get(catalog::models))
        .route("/v1/models/{model}", get(catalog::model))
        .route("/v1/audio/voices", get(catalog::voices))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(ready))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(openai_error_bodies))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|r: &Request| {
            let id = r.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %r.method(), path = %r.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(app)
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

/// Serves `router(app)` on `listener` until `shutdown` resolves, then drains: readiness and new
/// requests answer 503 while the requests in flight finish, for at most `grace`; then the
/// connections close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let drained = {
        let app = app.clone();
        async move {
            shutdown.await;
            app.start_draining();
            let open_requests = || app.stats().map_or(0, |s| s.open_requests);
            let open = open_requests();
            tracing::info!(open_requests = open, grace_seconds = grace.as_secs_f64(), "draining: refusing new requests");
            let until = Instant::now() + grace;
            while open_requests() > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::info!(open_requests = open_requests(), "drained; closing connections");
        }
    };
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(drained);
    server.await
}
