//! `POST /v1/audio/speech`, OpenAI's speech endpoint with Kokoro-FastAPI's extras (`stream`,
//! `lang_code`, voice mixes), and the pipeline `/dev/captioned_speech` shares with it.
//!
//! A request is checked here, queued on the engine's scheduler (from a blocking thread: queueing
//! resolves the voice and phonemizes the first chunk), then a pump thread moves each spoken chunk
//! through the encoder into the response. The pump notices a client that has gone (the response
//! body dropped) within 50 ms and drops the engine's stream, which takes the rest of the request
//! out of the queue.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use kokoro_engine::{Priority, Request, SourceNoise, Stream, Timeline, WordTime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audio::{AudioFormat, Encoder};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The body of `POST /v1/audio/speech`. Fields OpenAI or Kokoro-FastAPI define that do not change
/// Kokoro's audio (`instructions`, `volume_multiplier`, `normalization_options`, ...) are accepted
/// and ignored, so their clients keep working.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SpeechRequest {
    #[serde(default = "default_model")]
    pub model: String,
    pub input: String,
    pub voice: String,
    #[serde(default)]
    pub response_format: AudioFormat,
    #[serde(default = "one")]
    pub speed: f32,
    /// OpenAI's: `audio` (the file's bytes) or `sse` (base64 deltas as server-sent events).
    #[serde(default)]
    pub stream_format: StreamFormat,
    /// Kokoro-FastAPI's: send each chunk's audio as soon as it is spoken (default), or the whole
    /// file at once with its length.
    #[serde(default = "yes")]
    pub stream: bool,
    /// `a`/`en-us` or `b`/`en-gb`; default: the voice's own.
    #[serde(default)]
    pub lang_code: Option<String>,
    /// `interactive`, `default` or `bulk` (the `X-Priority` header wins).
    #[serde(default)]
    pub priority: Option<Priority>,
}

pub(crate) fn default_model() -> String {
    "kokoro".into()
}

pub(crate) fn one() -> f32 {
    1.0
}

pub(crate) fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamFormat {
    #[default]
    Audio,
    Sse,
}

/// A JSON body into `T`, or a 400 naming the field at fault.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let syntax = inner.is_syntax() || inner.is_eof();
        // The field at fault, when there is one (not for broken JSON, nor for the body as a whole).
        let param = (!syntax && path != "." && path != "?").then_some(path.as_str());
        let message = if syntax { format!("the body is not valid JSON: {inner}") } else { inner.to_string() };
        ApiError::invalid(param, "invalid_request", message)
    })
}

/// `lang_code` as the engine's dialect names: Kokoro's one-letter codes or the dialect's name.
pub(crate) fn dialect_of(lang_code: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(code) = lang_code.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
    match code.to_ascii_lowercase().replace('_', "-").as_str() {
        "a" | "en-us" | "us" => Ok(Some("en-us".into())),
        "b" | "en-gb" | "gb" | "uk" => Ok(Some("en-gb".into())),
        _ => Err(ApiError::invalid(
            Some("lang_code"),
            "bad_language",
            format!("lang_code {code:?} is not supported: this server speaks English (a or en-us, b or en-gb)"),
        )),
    }
}

/// `X-Priority` over the body's `priority`, over the default.
pub(crate) fn priority_of(headers: &HeaderMap, body: Option<Priority>) -> Result<Priority, ApiError> {
    match headers.get("x-priority") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::invalid(Some("X-Priority"), "bad_priority", "X-Priority must be interactive, default or bulk")),
        None => Ok(body.unwrap_or_default()),
    }
}

/// The checks every speech request passes before it is queued; returns the engine's request.
pub(crate) fn engine_request(
    config: &ServerConfig,
    model: &str,
    input: &str,
    voice: &str,
    speed: f32,
    lang_code: Option<&str>,
    priority: Priority,
) -> Result<Request, ApiError> {
    if !config.models.iter().any(|m| m == model) {
        return Err(ApiError::not_found(
            Some("model"),
            "model_not_found",
            format!("the model {model:?} does not exist: use one of {}", config.models.join(", ")),
        ));
    }
    if input.trim().is_empty() {
        return Err(ApiError::invalid(Some("input"), "empty_input", "input is empty: give the text to speak"));
    }
    let chars = input.chars().count();
    if chars > config.limits.max_input_chars {
        return Err(ApiError::too_large(
            Some("input"),
            format!("input is {chars} characters; the limit is {} (limits.max_input_chars)", config.limits.max_input_chars),
        ));
    }
    if !(kokoro_engine::MIN_SPEED..=kokoro_engine::MAX_SPEED).contains(&speed) {
        return Err(ApiError::invalid(
            Some("speed"),
            "bad_speed",
            format!("speed {speed} is out of range: use {} to {}", kokoro_engine::MIN_SPEED, kokoro_engine::MAX_SPEED),
        ));
    }
    if voice.trim().is_empty() || voice.len() > 512 {
        return Err(ApiError::invalid(Some("voice"), "bad_voice", "voice must be a voice name or a mix such as af_bella(2)+af_sky(1)"));
    }
    let mut request = Request::text(input, config.resolve_voice(voice))
        .speed(speed)
        .priority(priority)
        .noise(SourceNoise::Deterministic)
        .chunking(config.text.chunk_options())
        .deadline(Instant::now() + config.request_timeout());
    if let Some(lang) = dialect_of(lang_code)? {
        request = request.lang(lang);
    }
    Ok(request)
}

/// What the pump hands the response, in order.
pub(crate) enum Piece {
    /// Encoded audio, and what it holds.
    Audio { bytes: Vec<u8>, words: Vec<WordTime>, phoneme_ids: usize, frames: usize },
    /// The request failed; nothing follows.
    Failed(ApiError),
}

/// Queues `request` (off the async threads) and starts its pump. The first piece is awaited
/// here, so an error before any audio (unknown voice, overload, nothing to say) is a proper
/// status code rather than a broken stream.
pub(crate) async fn start(
    app: &AppState,
    request: Request,
    format: AudioFormat,
    whole: bool,
) -> Result<(Piece, mpsc::Receiver<Piece>), ApiError> {
    let arrived = Instant::now();
    let synth = app.synth()?;
    let limit = app.config().limits.memory_limit_bytes;
    if limit > 0 {
        let rss = crate::metrics::process_rss();
        if rss > limit {
            tracing::warn!(rss, limit, "memory above its limit: refusing new speech");
            return Err(ApiError::unavailable(
                "memory_limit",
                format!("the server holds {} MiB, above its limit of {} MiB (limits.memory_limit_bytes): retry shortly", rss >> 20, limit >> 20),
                Duration::from_secs(2),
            ));
        }
    }
    let priority = request.priority;
    // One encoder per request, made before any synthesis (a format this build lacks fails here).
    let encoder = format.encoder().map_err(|e| ApiError::invalid(Some("response_format"), "bad_format", e.to_string()))?;
    let stream = tokio::task::spawn_blocking(move || synth.submit(request))
        .await
        .map_err(|e| ApiError::internal("internal", format!("queueing failed: {e}")))??;
    let (tx, mut rx) = mpsc::channel(2);
    // The pump logs in the request's span (its id on every line).
    let span = tracing::Span::current();
    let metrics = app.metrics.clone();
    tokio::task::spawn_blocking(move || span.in_scope(|| pump(stream, format, encoder, whole, tx, &metrics)));
    match rx.recv().await {
        Some(Piece::Failed(e)) => Err(e),
        Some(first) => {
            app.metrics.first_audio(priority, arrived.elapsed().as_secs_f64());
            Ok((first, rx))
        }
        None => Err(ApiError::internal("internal", "the synthesis ended without audio")),
    }
}

/// What one request cost, for its performance line and the metrics.
#[derive(Debug, Default)]
struct Cost {
    queue_wait: Duration,
    stages: kokoro_engine::StageTimings,
    encode: Duration,
    bytes: u64,
    cached_chunks: usize,
    first_audio: Option<Duration>,
}

impl Cost {
    fn chunk(&mut self, chunk: &kokoro_engine::SpokenChunk) {
        self.queue_wait += chunk.queue_wait;
        self.cached_chunks += usize::from(chunk.from_cache);
        let (s, t) = (&mut self.stages, &chunk.timings);
        s.bert += t.bert;
        s.predictor += t.predictor;
        s.text_encoder += t.text_encoder;
        s.decoder += t.decoder;
        s.total += t.total;
    }
}

/// Moves spoken chunks through the encoder into `tx` until the end, an error, or the receiver
/// going away (the client disconnected): then the stream is dropped, which cancels the request.
fn pump(mut stream: Stream, format: AudioFormat, encoder: Box<dyn Encoder>, whole: bool, tx: mpsc::Sender<Piece>, metrics: &crate::metrics::Metrics) {
    let mut cost = Cost::default();
    let outcome = pump_chunks(&mut stream, format, encoder, whole, &tx, &mut cost);
    // One performance line per request.
    let p = stream.progress();
    let seconds = p.elapsed.as_secs_f64();
    let rtf = (p.audio_seconds > 0.0).then(|| seconds / p.audio_seconds);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    tracing::info!(
        outcome = outcome,
        format = format.as_str(),
        chunks = p.chunks_done,
        audio_seconds = p.audio_seconds,
        seconds,
        rtf = rtf.unwrap_or(0.0),
        first_audio_ms = cost.first_audio.map_or(0.0, ms),
        queue_wait_ms = ms(cost.queue_wait),
        bert_ms = ms(cost.stages.bert),
        predictor_ms = ms(cost.stages.predictor),
        text_encoder_ms = ms(cost.stages.text_encoder),
        decoder_ms = ms(cost.stages.decoder),
        encode_ms = ms(cost.encode),
        bytes = cost.bytes,
        cache_hit = cost.cached_chunks > 0 && cost.cached_chunks == p.chunks_done,
        "speech"
    );
    metrics.speech_done(outcome, format.as_str(), rtf, cost.encode, cost.bytes);
}

/// How the request ended: `done`, `failed` or `client_gone`.
/// A whole answer (`whole`) is gathered and encoded at the end; otherwise each chunk is encoded as it comes.
fn pump_chunks(stream: &mut Stream, format: AudioFormat, mut encoder: Box<dyn Encoder>, whole: bool, tx: &mpsc::Sender<Piece>, cost: &mut Cost) -> &'static str {
    let started = Instant::now();
    let mut timeline = Timeline::new();
    let mut whole_audio = Vec::new();
    let (mut whole_words, mut ids, mut frames) = (Vec::new(), 0, 0);
    let encode_failed = |e: crate::audio::EncodeError| Piece::Failed(ApiError::internal("encoder", e.to_string()));
    loop {
        match stream.next_timeout(Duration::from_millis(50)) {
            Ok(Some(chunk)) => {
                cost.chunk(&chunk);
                let words = timeline.place(&chunk);
                let chunk_frames: usize = chunk.durations.iter().map(|&d| d as usize).sum();
                match (!whole).then_some(&mut encoder) {
                    Some(encoder) => {
                        let encoding = Instant::now();
                        let piece = match encoder.push(&chunk.audio) {
                            Ok(bytes) => {
                                cost.bytes += bytes.len() as u64;
                                Piece::Audio { bytes, words, phoneme_ids: chunk.phoneme_ids, frames: chunk_frames }
                            }
                            Err(e) => encode_failed(e),
                        };
                        cost.encode += encoding.elapsed();
                        cost.first_audio.get_or_insert_with(|| started.elapsed());
                        let failed = matches!(piece, Piece::Failed(_));
                        if tx.blocking_send(piece).is_err() {
                            return "client_gone";
                        }
                        if failed {
                            return "failed";
                        }
                    }
                    None => {
                        whole_audio.extend_from_slice(&chunk.audio);
                        whole_words.extend(words);
                        ids += chunk.phoneme_ids;
                        frames += chunk_frames;
                    }
                }
            }
            Ok(None) if tx.is_closed() => return "client_gone",
            Ok(None) => {}
            Err(None) => break,
            Err(Some(e)) => {
                tracing::warn!(code = e.code(), error = %e, "synthesis failed");
                let _ = tx.blocking_send(Piece::Failed(e.into()));
                return "failed";
            }
        }
    }
    let encoding = Instant::now();
    let last = match (!whole).then_some(&mut encoder) {
        Some(encoder) => encoder.finish().map(|bytes| Piece::Audio { bytes, words: Vec::new(), phoneme_ids: 0, frames: 0 }),
        None => format
            .encode_whole(encoder, &whole_audio)
            .map(|bytes| Piece::Audio { bytes, words: whole_words, phoneme_ids: ids, frames }),
    };
    cost.encode += encoding.elapsed();
    if let Ok(Piece::Audio { bytes, .. }) = &last {
        cost.bytes += bytes.len() as u64;
    }
    cost.first_audio.get_or_insert_with(|| started.elapsed());
    let failed = last.is_err();
    if tx.blocking_send(last.unwrap_or_else(encode_failed)).is_err() {
        return "client_gone";
    }
    if failed { "failed" } else { "done" }
}

/// The handler.
pub async fn speech(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let config = app.config();
    let req: SpeechRequest = parse_json(&body)?;
    let priority = priority_of(&headers, req.priority)?;
    let request = engine_request(&config, &req.model, &req.input, &req.voice, req.speed, req.lang_code.as_deref(), priority)?;
    let format = req.response_format;
    let sse = req.stream_format == StreamFormat::Sse;
    let whole = !req.stream && !sse;
    let (first, rx) = start(&app, request, format, whole).await?;
    if sse {
        return Ok(sse_response(first, rx).into_response());
    }
    let mut response = if whole {
        let Piece::Audio { bytes, .. } = first else { unreachable!("start returns audio first") };
        Response::new(Body::from(bytes))
    } else {
        Response::new(Body::from_stream(audio_stream(first, rx)))
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"speech.{}\"", format.as_str())).expect("an ASCII header"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must pass each chunk on as it comes.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The pieces as body bytes; a failure after the first bytes aborts the response, so the client
/// sees a broken transfer rather than audio that silently stops short.
fn audio_stream(first: Piece, rx: mpsc::Receiver<Piece>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::once(std::future::ready(first)).chain(tokio_stream(rx)).map(|piece| match piece {
        Piece::Audio { bytes, .. } => Ok(Bytes::from(bytes)),
        Piece::Failed(e) => Err(std::io::Error::other(e.message)),
    })
}

/// A receiver as a stream (what `tokio_stream::wrappers::ReceiverStream` does, without the crate).
pub(crate) fn tokio_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    audio: &'a str,
}

#[derive(Serialize)]
struct Done {
    #[serde(rename = "type")]
    kind: &'static str,
    usage: Usage,
}

/// OpenAI's usage block: here input tokens are the phoneme ids read, output tokens the frames
/// spoken (600 samples, 25 ms, each).
#[derive(Serialize, Default)]
struct Usage {
    input_tokens: usize,
    output_tokens: usize,
    total_tokens: usize,
}

/// `stream_format: sse`: one `speech.audio.delta` event per chunk (base64 audio), then
/// `speech.audio.done` with the usage; an `error` event in OpenAI's error shape if it fails.
fn sse_response(first: Piece, rx: mpsc::Receiver<Piece>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>> + Send> {
    let pieces = futures_util::stream::once(std::future::ready(first)).chain(tokio_stream(rx));
    let events = futures_util::stream::unfold((Box::pin(pieces), Usage::default(), false), |(mut pieces, mut usage, ended)| async move {
        if ended {
            return None;
        }
        let event = match pieces.next().await {
            Some(Piece::Audio { bytes, phoneme_ids, frames, .. }) => {
                usage.input_tokens += phoneme_ids;
                usage.output_tokens += frames;
                if bytes.is_empty() {
                    // An encoder's empty tail: no delta to send.
                    Event::default().comment("")
                } else {
                    let audio = base64::engine::general_purpose::STANDARD.encode(&bytes);
                    let delta = Delta { kind: "speech.audio.delta", audio: &audio };
                    Event::default().event("speech.audio.delta").data(serde_json::to_string(&delta).expect("serializes"))
                }
            }
            Some(Piece::Failed(e)) => return Some((Ok(Event::default().event("error").data(e.to_json())), (pieces, usage, true))),
            None => {
                usage.total_tokens = usage.input_tokens + usage.output_tokens;
                let done = Done { kind: "speech.audio.done", usage: std::mem::take(&mut usage) };
                return Some((Ok(Event::default().event("speech.audio.done").data(serde_json::to_string(&done).expect("serializes"))), (pieces, usage, true)));
            }
        };
        Some((Ok(event), (pieces, usage, false)))
    });
    Sse::new(events)
}
