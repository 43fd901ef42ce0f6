//! Kokoro-FastAPI's `/dev` extras in its shapes: `captioned_speech` (audio with word
//! timestamps), `phonemize`, `generate_from_phonemes`. Errors are in OpenAI's shape, like every
//! other route here (Kokoro-FastAPI wraps its own in `detail`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::StreamExt;
use kokoro_engine::{Priority, Request, SourceNoise, WordTime};
use serde::{Deserialize, Serialize};

use crate::audio::AudioFormat;
use crate::error::ApiError;
use crate::speech::{Piece, default_model, dialect_of, engine_request, one, parse_json, priority_of, start, tokio_stream, yes};
use crate::state::AppState;

/// Kokoro-FastAPI's captioned speech: the speech request's fields, and whether to return word times.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct CaptionedRequest {
    #[serde(default = "default_model")]
    model: String,
    input: String,
    voice: String,
    #[serde(default)]
    response_format: AudioFormat,
    #[serde(default = "one")]
    speed: f32,
    #[serde(default = "yes")]
    stream: bool,
    #[serde(default = "yes")]
    return_timestamps: bool,
    #[serde(default)]
    lang_code: Option<String>,
    #[serde(default)]
    priority: Option<Priority>,
}

/// A word and when it is spoken, in seconds from the start of the whole audio.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct WordTimestamp {
    word: String,
    start_time: f64,
    end_time: f64,
}

/// One JSON object of the answer (of each line, when streamed).
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Captioned {
    /// The encoded audio, base64.
    audio: String,
    /// Its MIME type.
    audio_format: &'static str,
    timestamps: Option<Vec<WordTimestamp>>,
}

fn captioned(bytes: &[u8], format: AudioFormat, words: Vec<WordTime>, with_timestamps: bool) -> Captioned {
    Captioned {
        audio: base64::engine::general_purpose::STANDARD.encode(bytes),
        audio_format: format.content_type(),
        timestamps: with_timestamps
            .then(|| words.into_iter().map(|w| WordTimestamp { word: w.text, start_time: w.start, end_time: w.end }).collect()),
    }
}

/// `POST /dev/captioned_speech`: one JSON object with the whole audio and every word's times,
/// or (`stream`, the default) newline-delimited JSON, one object per spoken chunk.
pub async fn captioned_speech(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let config = app.config();
    let req: CaptionedRequest = parse_json(&body)?;
    let priority = priority_of(&headers, req.priority)?;
    let request = engine_request(&config, &req.model, &req.input, &req.voice, req.speed, req.lang_code.as_deref(), priority)?;
    let (format, timestamps) = (req.response_format, req.return_timestamps);
    let (first, rx) = start(&app, request, format, !req.stream).await?;
    let line = move |piece: Piece| match piece {
        Piece::Audio { bytes, words, .. } => {
            let mut line = serde_json::to_vec(&captioned(&bytes, format, words, timestamps)).expect("serializes");
            line.push(b'\n');
            Ok(Bytes::from(line))
        }
        Piece::Failed(e) => Err(std::io::Error::other(e.message)),
    };
    let mut response = if req.stream {
        let lines = futures_util::stream::once(std::future::ready(first)).chain(tokio_stream(rx)).map(line);
        Response::new(Body::from_stream(lines))
    } else {
        let Piece::Audio { bytes, words, .. } = first else { unreachable!("start returns audio first") };
        Json(captioned(&bytes, format, words, timestamps)).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PhonemizeRequest {
    text: String,
    /// `a` (en-us, the default) or `b` (en-gb).
    #[serde(default)]
    language: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Phonemes {
    /// The phonemes of every chunk, joined by a space.
    phonemes: String,
    /// Kept for Kokoro-FastAPI's shape; always empty there too.
    tokens: Vec<u32>,
}

/// `POST /dev/phonemize`: text to Kokoro's phonemes (misaki's alphabet).
pub async fn phonemize(State(app): State<Arc<AppState>>, body: Bytes) -> Result<Json<Phonemes>, ApiError> {
    let config = app.config();
    let req: PhonemizeRequest = parse_json(&body)?;
    if req.text.trim().is_empty() {
        return Err(ApiError::invalid(Some("text"), "empty_input", "text is empty"));
    }
    let chars = req.text.chars().count();
    if chars > config.limits.max_input_chars {
        return Err(ApiError::too_large(Some("text"), format!("text is {chars} characters; the limit is {}", config.limits.max_input_chars)));
    }
    let lang = dialect_of(Some(req.language.as_deref().unwrap_or("a")))?;
    let synth = app.synth()?;
    let chunks = tokio::task::spawn_blocking(move || synth.phonemize(&req.text, lang.as_deref(), "af_heart"))
        .await
        .map_err(|e| ApiError::internal("internal", e.to_string()))??;
    Ok(Json(Phonemes { phonemes: chunks.join(" "), tokens: Vec::new() }))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct FromPhonemesRequest {
    phonemes: String,
    voice: String,
    #[serde(default = "one")]
    speed: f32,
}

/// `POST /dev/generate_from_phonemes`: phonemes as given (one chunk) to a streamed WAV.
pub async fn generate_from_phonemes(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let config = app.config();
    let req: FromPhonemesRequest = parse_json(&body)?;
    if req.phonemes.trim().is_empty() {
        return Err(ApiError::invalid(Some("phonemes"), "empty_input", "phonemes is empty"));
    }
    if req.phonemes.chars().count() > config.limits.max_input_chars {
        return Err(ApiError::too_large(Some("phonemes"), format!("phonemes are longer than {} characters", config.limits.max_input_chars)));
    }
    if !(kokoro_engine::MIN_SPEED..=kokoro_engine::MAX_SPEED).contains(&req.speed) {
        return Err(ApiError::invalid(Some("speed"), "bad_speed", format!("speed {} is out of range: use 0.25 to 4", req.speed)));
    }
    let request = Request::phonemes(req.phonemes, config.resolve_voice(&req.voice))
        .speed(req.speed)
        .priority(priority_of(&headers, None)?)
        .noise(SourceNoise::Deterministic)
        .deadline(std::time::Instant::now() + config.request_timeout());
    let (first, rx) = start(&app, request, AudioFormat::Wav, false).await?;
    let body = futures_util::stream::once(std::future::ready(first)).chain(tokio_stream(rx)).map(|piece| match piece {
        Piece::Audio { bytes, .. } => Ok(Bytes::from(bytes)),
        Piece::Failed(e) => Err(std::io::Error::other(e.message)),
    });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"speech.wav\""));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
