//! What the server offers: `GET /v1/models`, `GET /v1/models/{model}`, `GET /v1/audio/voices`
//! and `POST /v1/audio/voices/combine`, in the shapes OpenAI and Kokoro-FastAPI clients read.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kokoro_voice::Manifest;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::speech::parse_json;
use crate::state::AppState;

/// When Kokoro-82M v1.0 was published (2025-01-27), as OpenAI's `created`.
const CREATED: u64 = 1_737_936_000;

#[derive(Serialize, schemars::JsonSchema)]
pub struct ModelInfo {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelInfo>,
}

fn model_info(id: &str) -> ModelInfo {
    ModelInfo { id: id.to_string(), object: "model", created: CREATED, owned_by: "kokoro" }
}

pub async fn models(State(app): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList { object: "list", data: app.config().models.iter().map(|m| model_info(m)).collect() })
}

pub async fn model(State(app): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<ModelInfo>, ApiError> {
    if app.config().models.contains(&id) {
        Ok(Json(model_info(&id)))
    } else {
        Err(ApiError::not_found(Some("model"), "model_not_found", format!("the model {id:?} does not exist")))
    }
}

/// A voice as `GET /v1/audio/voices` lists it: Kokoro-FastAPI's `id` and `name`, with the
/// language and gender from the voice manifest (absent for voices it does not know).
#[derive(Serialize, Debug, PartialEq, schemars::JsonSchema)]
pub struct VoiceInfo {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct VoicesQuery {
    /// Kokoro-FastAPI's old shape: a list of names.
    #[serde(default)]
    legacy: bool,
}

pub async fn voices(State(app): State<Arc<AppState>>, Query(q): Query<VoicesQuery>) -> Result<Response, ApiError> {
    let synth = app.synth()?;
    let names = tokio::task::spawn_blocking(move || synth.voice_names())
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))??;
    if q.legacy {
        return Ok(Json(serde_json::json!({ "voices": names })).into_response());
    }
    let manifest = Manifest::bundled();
    let voices: Vec<VoiceInfo> = names
        .into_iter()
        .map(|name| {
            let entry = manifest.get(&name);
            VoiceInfo {
                id: name.clone(),
                language: entry.map(|e| e.language.clone()),
                gender: entry.map(|e| e.gender.as_str()),
                name,
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "voices": voices })).into_response())
}

/// The body of `combine`: `"af_bella(2)+af_sky(1)"` or `["af_bella", "af_sky"]` (equal parts).
/// A mix as a spec (`"af_bella(2)+af_sky(1)"`) or a list of names mixed equally.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum CombineRequest {
    Spec(String),
    Names(Vec<String>),
}

/// The mixed voice as a raw pack (510 x 1 x 256 little-endian f32, the `.bin` format of the
/// ONNX exports and of `kokoro voices mix`). Kokoro-FastAPI sends a PyTorch `.pt`; this server
/// reads mixes by name, so the file is for use elsewhere.
pub async fn combine(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let spec = match parse_json::<CombineRequest>(&body)? {
        CombineRequest::Spec(s) => s,
        CombineRequest::Names(names) if !names.is_empty() => names.join("+"),
        CombineRequest::Names(_) => return Err(ApiError::invalid(None, "bad_voice", "no voices to combine")),
    };
    if spec.len() > 512 {
        return Err(ApiError::invalid(None, "bad_voice", "the mix is longer than 512 characters"));
    }
    let spec = app.config().resolve_voice(&spec);
    let synth = app.synth()?;
    let (bytes, spec) = tokio::task::spawn_blocking(move || synth.voice_bytes(&spec).map(|b| (b, spec)))
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))??;
    let file: String = spec.chars().map(|c| if c.is_ascii_alphanumeric() || "_+-().".contains(c) { c } else { '_' }).collect();
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&format!("attachment; filename=\"{file}.bin\"")).expect("ASCII"));
    Ok(response)
}
