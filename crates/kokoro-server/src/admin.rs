//! `/admin/*` (behind `security.admin_token`) and `/debug/*` (when `security.debug_routes`).
//!
//! Both are checked at each request against the configuration of the moment, so a live reload
//! turns them on or off. With no admin token configured, `/admin` answers 404 as if it did not
//! exist.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::speech::parse_json;
use crate::state::AppState;

pub fn routes(app: Arc<AppState>) -> Router<Arc<AppState>> {
    let admin = Router::new()
        .route("/admin/prewarm", post(prewarm))
        .route("/admin/evict", post(evict))
        .route("/admin/clear-caches", post(clear_caches))
        .route("/admin/reload", post(reload))
        .route("/admin/log-level", get(log_level).put(set_log_level).post(set_log_level))
        .route_layer(middleware::from_fn_with_state(app.clone(), admin_token));
    let debug = Router::new()
        .route("/debug/caches", get(caches))
        .route("/debug/memory", get(memory))
        .route("/debug/stages", get(stages))
        .route("/debug/config", get(config))
        .route("/debug/alerts", get(alerts))
        .route_layer(middleware::from_fn_with_state(app, debug_on));
    admin.merge(debug)
}

async fn admin_token(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let token = app.config().security.admin_token.clone();
    if token.is_empty() {
        return ApiError::not_found(None, "not_found", "the admin routes are off: set security.admin_token to use them").into_response();
    }
    match crate::bearer(request.headers()) {
        None => ApiError::unauthorized("the admin routes need Authorization: Bearer ADMIN_TOKEN").into_response(),
        Some(given) if crate::constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::forbidden("bad_admin_token", "the admin token is wrong").into_response(),
    }
}

async fn debug_on(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if !app.config().security.debug_routes {
        return ApiError::not_found(None, "not_found", "the debug routes are off: set security.debug_routes = true to use them").into_response();
    }
    next.run(request).await
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrewarmBody {
    /// Voices to load and pin now (default: the configured pre-warm list).
    #[serde(default)]
    voices: Option<Vec<String>>,
}

/// Loads and pins voices (the configured list, or the body's); answers when done.
async fn prewarm(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let body: PrewarmBody = if body.is_empty() { PrewarmBody::default() } else { parse_json(&body)? };
    let synth = app.synth()?;
    let voices = body.voices.unwrap_or_else(|| app.config().voices.prewarm.clone());
    for v in &voices {
        if !kokoro_voice::is_valid_voice_name(v) {
            return Err(ApiError::invalid(Some("voices"), "bad_voice", format!("{v:?} is not a voice name (letters, digits and _)")));
        }
    }
    let results = tokio::task::spawn_blocking(move || voices.into_iter().map(|v| (synth.pin(&v).err().map(|e| e.to_string()), v)).collect::<Vec<_>>())
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))?;
    let loaded: Vec<_> = results.iter().filter(|(e, _)| e.is_none()).map(|(_, v)| v.clone()).collect();
    let failed: Vec<_> = results.iter().filter_map(|(e, v)| e.as_ref().map(|e| json!({ "voice": v, "error": e }))).collect();
    tracing::info!(loaded = ?loaded, failed = failed.len(), "admin pre-warm");
    Ok(axum::Json(json!({ "loaded": loaded, "failed": failed })).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvictBody {
    voice: String,
}

/// Drops a voice (or mix) from the voice cache, pinned or not.
async fn evict(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let body: EvictBody = parse_json(&body)?;
    let synth = app.synth()?;
    let voice = app.config().resolve_voice(&body.voice);
    let evicted = tokio::task::spawn_blocking(move || synth.evict_voice(&voice)).await.map_err(|e| ApiError::internal("internal", e.to_string()))??;
    tracing::info!(voice = %body.voice, evicted, "admin evict");
    Ok(axum::Json(json!({ "voice": body.voice, "evicted": evicted })).into_response())
}

/// Empties the response cache and the voice cache's unpinned entries.
async fn clear_caches(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let synth = app.synth()?;
    synth.clear_caches();
    tracing::info!("admin cleared the caches");
    Ok(axum::Json(json!({ "cleared": ["response_cache", "voice_cache (unpinned)"] })).into_response())
}

/// Reads the configuration again; 400 (and the old one stays) when the new one is invalid.
async fn reload(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let app2 = app.clone();
    let done = tokio::task::spawn_blocking(move || app2.reload()).await.map_err(|e| ApiError::internal("internal", e.to_string()))??;
    Ok(axum::Json(done).into_response())
}

async fn log_level(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let log = app.log_handle().ok_or_else(|| ApiError::invalid(None, "no_log_control", "this server's logger cannot change level"))?;
    Ok(axum::Json(json!({ "level": log.level() })).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LevelBody {
    level: String,
}

/// `{"level": "debug"}` or directives (`info,kokoro_engine=debug`): takes effect at once.
async fn set_log_level(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let body: LevelBody = parse_json(&body)?;
    let log = app.log_handle().ok_or_else(|| ApiError::invalid(None, "no_log_control", "this server's logger cannot change level"))?;
    log.set_level(&body.level).map_err(|e| ApiError::invalid(Some("level"), "bad_level", e))?;
    tracing::warn!(level = %body.level, "log level changed");
    Ok(axum::Json(json!({ "level": log.level() })).into_response())
}

/// Both caches: entries (most recently used first), bytes, budgets, counters.
async fn caches(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let synth = app.synth()?;
    let v = synth.voice_cache();
    let r = synth.response_cache();
    let voice_entries: Vec<_> = v
        .entries
        .iter()
        .map(|e| json!({ "key": e.key, "bytes": e.bytes, "pinned": e.pinned, "hits": e.hits, "load_seconds": e.load_time.as_secs_f64() }))
        .collect();
    let s = &v.stats;
    let lookups = s.hits + s.misses;
    Ok(axum::Json(json!({
        "voice_cache": {
            "budget": v.budget, "bytes": v.bytes, "entries": voice_entries,
            "stats": { "hits": s.hits, "misses": s.misses, "loads": s.loads, "load_failures": s.load_failures, "evictions": s.evictions,
                       "hit_rate": if lookups > 0 { s.hits as f64 / lookups as f64 } else { 0.0 } },
        },
        "response_cache": r,
    }))
    .into_response())
}

/// Bytes by component, and the limit.
async fn memory(State(app): State<Arc<AppState>>) -> Response {
    let m = app.memory();
    axum::Json(json!({
        "bytes": m,
        "limit_bytes": app.config().limits.memory_limit_bytes,
        "allocator": allocator(),
    }))
    .into_response()
}

/// Per-stage time and the current bottleneck.
async fn stages(State(app): State<Arc<AppState>>) -> Response {
    axum::Json(app.metrics.stages()).into_response()
}

/// The effective configuration, secrets replaced.
async fn config(State(app): State<Arc<AppState>>) -> Response {
    axum::Json(app.config().redacted()).into_response()
}

/// The system allocator's own counts (glibc's `mallinfo2`), where there is one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn allocator() -> serde_json::Value {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    json!({
        "name": "glibc malloc",
        "heap_bytes": m.arena,
        "mmap_bytes": m.hblkhd,
        "in_use_bytes": m.uordblks + m.hblkhd,
        "free_bytes": m.fordblks,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn allocator() -> serde_json::Value {
    json!({ "name": "system", "note": "no allocator statistics on this platform" })
}

/// Alerts firing now and the recent changes (newest last).
async fn alerts(State(app): State<Arc<AppState>>) -> Response {
    axum::Json(json!({ "firing": app.alerts.firing(), "recent": app.alerts.recent() })).into_response()
}
