//! The router over the real engine (int8 weights, CPU), driven without a socket: speech in each
//! built format and both stream formats against the engine's own audio, OpenAI's error shapes and
//! statuses, health while starting, ready and draining, request ids, overload and recovery, and a
//! client that goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use http_body_util::BodyExt;
use kokoro_engine::{Request as EngineRequest, Scheduler, SourceNoise};
use kokoro_server::{AppState, ServerConfig, router};
use kokoro_voice::DirStore;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::{cache, engine};


/// A ready server with `config` (no response cache: each request is really spoken).
fn server(mut config: ServerConfig) -> (Arc<AppState>, Arc<Scheduler<DirStore>>) {
    config.engine.response_cache_bytes = 0;
    let scheduler = Arc::new(Scheduler::new(engine(), config.engine.clone()));
    let app = AppState::new(scheduler.clone(), config);
    app.set_ready(true);
    (app, scheduler)
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

async fn call(app: &Arc<AppState>, request: Request<Body>) -> Response {
    router(app.clone()).oneshot(request).await.unwrap()
}

async fn bytes(response: Response) -> Vec<u8> {
    response.into_body().collect().await.unwrap().to_bytes().to_vec()
}

async fn json_of(response: Response) -> Value {
    serde_json::from_slice(&bytes(response).await).unwrap()
}

/// The audio the engine makes for `text` in `voice`, as 16-bit samples.
fn engine_pcm(scheduler: &Scheduler<DirStore>, text: &str, voice: &str) -> Vec<i16> {
    let request = EngineRequest::text(text, voice).noise(SourceNoise::Deterministic).chunking(ServerConfig::default().text.chunk_options());
    let stream = scheduler.submit(request).unwrap();
    let audio: Vec<f32> = stream.collect_audio().unwrap().into_iter().flat_map(|c| c.audio).collect();
    audio.iter().map(|&s| kokoro_engine::wav::pcm16(s)).collect()
}

fn samples_of_pcm(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// The samples of a WAV, read by hound (a streamed WAV's sizes say "unknown": read its data).
fn samples_of_wav(bytes: &[u8]) -> Vec<i16> {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 24_000, "sample rate");
    assert_eq!(u16::from_le_bytes(bytes[22..24].try_into().unwrap()), 1, "mono");
    assert_eq!(&bytes[36..40], b"data");
    samples_of_pcm(&bytes[44..])
}

const TEXT: &str = "Hello world. This is Kokoro, speaking over HTTP.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_in_wav_and_pcm_streamed_or_whole_is_the_engines_audio() {
    let (app, scheduler) = server(ServerConfig::default());
    let expected = engine_pcm(&scheduler, TEXT, "af_heart");
    assert!(expected.len() > 24_000, "more than a second of audio: {}", expected.len());

    // The whole file: a WAV whose header carries its sizes, with its length.
    let r = call(&app, post("/v1/audio/speech", json!({"model": "tts-1", "input": TEXT, "voice": "af_heart", "response_format": "wav", "stream": false}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "audio/wav");
    assert!(r.headers().contains_key("x-request-id"));
    let wav = bytes(r).await;
    let reader = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
    assert_eq!(reader.spec(), kokoro_engine::wav::spec());
    assert_eq!(reader.into_samples::<i16>().map(Result::unwrap).collect::<Vec<_>>(), expected);

    // Streamed (the default): the same samples.
    let r = call(&app, post("/v1/audio/speech", json!({"model": "kokoro", "input": TEXT, "voice": "af_heart", "response_format": "wav"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(samples_of_wav(&bytes(r).await), expected);

    // Raw pcm, and an OpenAI voice name mapped by the configuration (alloy -> am_adam).
    let r = call(&app, post("/v1/audio/speech", json!({"model": "tts-1-hd", "input": TEXT, "voice": "af_heart", "response_format": "pcm"}))).await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "audio/pcm");
    assert_eq!(samples_of_pcm(&bytes(r).await), expected);
    let r = call(&app, post("/v1/audio/speech", json!({"model": "tts-1", "input": "Hello world.", "voice": "alloy", "response_format": "pcm"}))).await;
    assert_eq!(samples_of_pcm(&bytes(r).await), engine_pcm(&scheduler, "Hello world.", "am_adam"));
}

/// The events of an SSE body: (event name, data).
fn sse_events(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let (mut event, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (!event.is_empty()).then_some((event, data))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_sends_one_base64_delta_per_chunk_then_done_with_usage() {
    let (app, scheduler) = server(ServerConfig::default());
    let expected = engine_pcm(&scheduler, TEXT, "af_heart");
    let r = call(&app, post("/v1/audio/speech", json!({"model": "kokoro", "input": TEXT, "voice": "af_heart", "response_format": "pcm", "stream_format": "sse"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let events = sse_events(&bytes(r).await);
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(done.0, "speech.audio.done");
    // Two sentences, each its own chunk: one delta each.
    assert_eq!(deltas.len(), 2);
    let mut pcm = Vec::new();
    for (event, data) in deltas {
        assert_eq!(event, "speech.audio.delta");
        let delta: Value = serde_json::from_str(data).unwrap();
        assert_eq!(delta["type"], "speech.audio.delta");
        pcm.extend(base64::engine::general_purpose::STANDARD.decode(delta["audio"].as_str().unwrap()).unwrap());
    }
    assert_eq!(samples_of_pcm(&pcm), expected);
    let done: Value = serde_json::from_str(&done.1).unwrap();
    assert_eq!(done["type"], "speech.audio.done");
    let usage = &done["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 20, "{usage}");
    // Frames of 600 samples (25 ms at 24 kHz... the model's hop) cover the audio.
    assert_eq!(usage["output_tokens"].as_u64().unwrap() * 600, expected.len() as u64);
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap());
}

async fn error_of(app: &Arc<AppState>, request: Request<Body>) -> (StatusCode, Value) {
    let r = call(app, request).await;
    let status = r.status();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json", "{status}");
    (status, json_of(r).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors_with_the_right_status_and_param() {
    let mut config = ServerConfig::default();
    config.limits.max_input_chars = 100;
    config.limits.max_body_bytes = 4096;
    let (app, _) = server(config);
    let speech = |body: Value| post("/v1/audio/speech", body);
    let cases: Vec<(Request<Body>, StatusCode, Option<&str>, &str)> = vec![
        (speech(json!({"model": "kokoro", "input": "Hi.", "voice": "zz_nobody"})), StatusCode::NOT_FOUND, Some("voice"), "unknown_voice"),
        (speech(json!({"model": "kokoro", "input": "Hi.", "voice": "../../etc/passwd"})), StatusCode::BAD_REQUEST, Some("voice"), "bad_voice"),
        (speech(json!({"model": "whisper-1", "input": "Hi.", "voice": "af_heart"})), StatusCode::NOT_FOUND, Some("model"), "model_not_found"),
        (speech(json!({"model": "kokoro", "voice": "af_heart"})), StatusCode::BAD_REQUEST, None, "invalid_request"),
        (speech(json!({"model": "kokoro", "input": "Hi.", "voice": "af_heart", "speed": 5.0})), StatusCode::BAD_REQUEST, Some("speed"), "bad_speed"),
        (speech(json!({"model": "kokoro", "input": "Hi.", "voice": "af_heart", "speed": "fast"})), StatusCode::BAD_REQUEST, Some("speed"), "invalid_request"),
        (speech(json!({"model": "kokoro", "input": "Hi.", "voice": "af_heart", "response_format": "ogg"})), StatusCode::BAD_REQUEST, Some("response_format"), "invalid_request"),
        (speech(json!({"model": "kokoro", "input": "Hi.", "voice": "af_heart", "lang_code": "j"})), StatusCode::BAD_REQUEST, Some("lang_code"), "bad_language"),
        (speech(json!({"model": "kokoro", "input": "   ", "voice": "af_heart"})), StatusCode::BAD_REQUEST, Some("input"), "empty_input"),
        (speech(json!({"model": "kokoro", "input": "* * *", "voice": "af_heart"})), StatusCode::BAD_REQUEST, Some("input"), "nothing_to_say"),
        (speech(json!({"model": "kokoro", "input": "word ".repeat(30), "voice": "af_heart"})), StatusCode::PAYLOAD_TOO_LARGE, Some("input"), "too_large"),
        (speech(json!({"model": "kokoro", "input": "x".repeat(5000), "voice": "af_heart"})), StatusCode::PAYLOAD_TOO_LARGE, None, "too_large"),
        (
            Request::post("/v1/audio/speech").header("x-priority", "urgent").body(Body::from(json!({"input": "Hi.", "voice": "af_heart"}).to_string())).unwrap(),
            StatusCode::BAD_REQUEST,
            Some("X-Priority"),
            "bad_priority",
        ),
        (Request::post("/v1/audio/speech").body(Body::from("{not json")).unwrap(), StatusCode::BAD_REQUEST, None, "invalid_request"),
        (Request::get("/v1/nothing/here").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND, None, "not_found"),
        (Request::get("/v1/audio/speech").body(Body::empty()).unwrap(), StatusCode::METHOD_NOT_ALLOWED, None, "invalid_request"),
    ];
    for (request, status, param, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, body) = error_of(&app, request).await;
        assert_eq!(got, status, "{what}: {body}");
        let error = &body["error"];
        assert_eq!(error["code"], code, "{what}: {body}");
        assert_eq!(error["param"].as_str(), param, "{what}: {body}");
        let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
        assert_eq!(error["type"], kind, "{what}: {body}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_starting_then_ready_then_draining_and_draining_refuses_work() {
    let config = ServerConfig::default();
    let app = AppState::starting(config.clone());
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(call(&app, get("/health/live")).await.status(), StatusCode::OK);
    let r = call(&app, get("/health/ready")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(r).await["status"], "starting");
    // Work before the engine is loaded: 503 with Retry-After, not a hang.
    let r = call(&app, post("/v1/audio/speech", json!({"input": "Hi.", "voice": "af_heart"}))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key(header::RETRY_AFTER));

    // Loaded, then pre-warmed: ready.
    let mut config = config;
    config.voices.prewarm = vec!["af_heart".into(), "zz_missing".into()];
    app.set_config(config.clone());
    app.set_synthesizer(Arc::new(Scheduler::new(engine(), config.engine.clone())));
    assert_eq!(call(&app, get("/health/ready")).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let prewarm = app.clone();
    tokio::task::spawn_blocking(move || prewarm.run_prewarm()).await.unwrap();
    let r = call(&app, get("/health/ready")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["status"], "ready");
    assert_eq!((body["prewarm"]["done"].as_u64(), body["prewarm"]["total"].as_u64()), (Some(2), Some(2)));
    assert_eq!(body["prewarm"]["failed"][0]["voice"], "zz_missing");
    assert!(engine().voice_cache().contains("af_heart"));

    app.start_draining();
    let r = call(&app, get("/health/ready")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(r).await["status"], "draining");
    let r = call(&app, post("/v1/audio/speech", json!({"input": "Hi.", "voice": "af_heart"}))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    assert_eq!(json_of(r).await["error"]["code"], "draining");
    // Liveness is not readiness: still alive.
    assert_eq!(call(&app, get("/health/live")).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_returned_as_given_or_made() {
    let (app, _) = server(ServerConfig::default());
    let r = call(&app, Request::get("/v1/models").header("x-request-id", "abc-123").body(Body::empty()).unwrap()).await;
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = call(&app, Request::get("/v1/models").body(Body::empty()).unwrap()).await;
    let made = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let models = json_of(r).await;
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]);
    assert_eq!(json_of(call(&app, Request::get("/v1/models/tts-1").body(Body::empty()).unwrap()).await).await["owned_by"], "kokoro");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voices_list_with_language_and_gender_and_combine_mixes_them() {
    let (app, _) = server(ServerConfig::default());
    let voices = json_of(call(&app, Request::get("/v1/audio/voices").body(Body::empty()).unwrap()).await).await;
    let list = voices["voices"].as_array().unwrap();
    assert!(list.len() >= 20, "{}", list.len());
    let heart = list.iter().find(|v| v["id"] == "af_heart").unwrap();
    assert_eq!(heart, &json!({"id": "af_heart", "name": "af_heart", "language": "en-us", "gender": "female"}));
    let george = list.iter().find(|v| v["id"] == "bm_george").unwrap();
    assert_eq!((george["language"].as_str(), george["gender"].as_str()), (Some("en-gb"), Some("male")));
    let legacy = json_of(call(&app, Request::get("/v1/audio/voices?legacy=true").body(Body::empty()).unwrap()).await).await;
    assert!(legacy["voices"].as_array().unwrap().iter().any(|v| v == "af_heart"));

    // A mix of two voices: the weighted mean of their rows.
    let r = call(&app, post("/v1/audio/voices/combine", json!("af_bella(2)+af_sky(1)"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().contains("af_bella(2)+af_sky(1).bin"));
    let mixed = bytes(r).await;
    assert_eq!(mixed.len(), 510 * 256 * 4);
    let read = |bytes: &[u8]| -> Vec<f32> { bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect() };
    let part = |name: &str| read(&std::fs::read(cache().join("voices").join(format!("{name}.bin"))).unwrap());
    let (bella, sky, mixed) = (part("af_bella"), part("af_sky"), read(&mixed));
    for i in (0..mixed.len()).step_by(997) {
        let want = (2.0 * bella[i] + sky[i]) / 3.0;
        assert!((mixed[i] - want).abs() < 1e-5, "row value {i}: {} vs {want}", mixed[i]);
    }
    let r = call(&app, post("/v1/audio/voices/combine", json!(["af_bella", "zz_nobody"]))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captioned_speech_gives_each_word_its_time_and_phonemize_reads_text() {
    let (app, scheduler) = server(ServerConfig::default());
    let text = "The quick brown fox. It jumps over the lazy dog.";
    let r = call(&app, post("/dev/captioned_speech", json!({"input": text, "voice": "af_heart", "response_format": "pcm", "stream": false}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["audio_format"], "audio/pcm");
    let pcm = base64::engine::general_purpose::STANDARD.decode(body["audio"].as_str().unwrap()).unwrap();
    let seconds = pcm.len() as f64 / 2.0 / 24_000.0;
    assert_eq!(samples_of_pcm(&pcm), engine_pcm(&scheduler, text, "af_heart"));
    let words: Vec<(String, f64, f64)> = body["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["word"].as_str().unwrap().to_string(), w["start_time"].as_f64().unwrap(), w["end_time"].as_f64().unwrap()))
        .collect();
    let spoken: Vec<&str> = words.iter().map(|(w, ..)| w.as_str()).collect();
    assert_eq!(spoken, ["The", "quick", "brown", "fox", "It", "jumps", "over", "the", "lazy", "dog"]);
    let mut last_end = 0.0;
    for (word, start, end) in &words {
        assert!(*start >= last_end - 1e-9 && end > start && *end <= seconds, "{word}: {start}..{end} (audio {seconds} s)");
        last_end = *end;
    }

    // Streamed: one JSON line per chunk; together the same audio and words.
    let r = call(&app, post("/dev/captioned_speech", json!({"input": text, "voice": "af_heart", "response_format": "pcm"}))).await;
    let body = bytes(r).await;
    let lines: Vec<Value> = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    let streamed_pcm: Vec<u8> =
        lines.iter().flat_map(|l| base64::engine::general_purpose::STANDARD.decode(l["audio"].as_str().unwrap()).unwrap()).collect();
    assert_eq!(streamed_pcm, pcm);
    let streamed_words: Vec<String> =
        lines.iter().flat_map(|l| l["timestamps"].as_array().unwrap().iter().map(|w| w["word"].as_str().unwrap().to_string())).collect();
    assert_eq!(streamed_words, spoken);

    let r = call(&app, post("/dev/phonemize", json!({"text": "Hello world", "language": "a"}))).await;
    let body = json_of(r).await;
    assert_eq!(body["phonemes"], "həlˈO wˈɜɹld");
    let r = call(&app, post("/dev/generate_from_phonemes", json!({"phonemes": "həlˈO wˈɜɹld", "voice": "af_heart"}))).await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "audio/wav");
    let from_phonemes = samples_of_wav(&bytes(r).await);
    assert!(from_phonemes.len() > 12_000, "{}", from_phonemes.len());
}

/// A long text: a dozen sentences, a dozen chunks (the server speaks each sentence alone).
fn long_text() -> String {
    (1..=12).map(|i| format!("This is sentence number {i}.")).collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_request() {
    let mut config = ServerConfig::default();
    config.engine.max_batch = 1;
    config.engine.workers = 1;
    config.engine.lookahead = 12;
    let (app, scheduler) = server(config);
    let body = json!({"input": long_text(), "voice": "af_heart", "response_format": "pcm"});
    let r = call(&app, post("/v1/audio/speech", body)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Read the first chunk's bytes, then hang up.
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    let before = scheduler.stats();
    assert_eq!(before.open_requests, 1);
    assert!(before.queued.iter().sum::<usize>() > 0, "chunks still queued: {before:?}");
    drop(body);
    // Within a moment the request is cancelled and its chunks leave the queue.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = scheduler.stats();
        if stats.cancelled == 1 && stats.open_requests == 0 && stats.queued.iter().sum::<usize>() == 0 {
            assert!(stats.chunks < 12, "not every chunk was spoken: {stats:?}");
            break;
        }
        assert!(Instant::now() < until, "still running after the client left: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_503_with_retry_after_and_the_server_recovers() {
    let mut config = ServerConfig::default();
    config.engine.max_requests = 1;
    config.engine.max_batch = 1;
    let (app, scheduler) = server(config);
    // One long request holds the only slot.
    let r = call(&app, post("/v1/audio/speech", json!({"input": long_text(), "voice": "af_heart", "response_format": "pcm"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let busy = r.into_body();
    let r = call(&app, post("/v1/audio/speech", json!({"input": "Hi.", "voice": "af_heart", "response_format": "pcm"}))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = r.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(json_of(r).await["error"]["code"], "overloaded");
    assert_eq!(scheduler.stats().rejected, 1);
    // The long one read to its end: the slot is free again and the next request is served.
    let audio = busy.collect().await.unwrap().to_bytes();
    assert!(audio.len() > 24_000 * 2 * 10, "{} bytes", audio.len());
    let r = call(&app, post("/v1/audio/speech", json!({"input": "Hi.", "voice": "af_heart", "response_format": "pcm"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!bytes(r).await.is_empty());
}

/// A ready server whose jobs live in a fresh folder.
fn jobs_server(mut config: ServerConfig) -> (Arc<AppState>, Arc<Scheduler<DirStore>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    config.jobs.dir = Some(dir.path().to_path_buf());
    let (app, scheduler) = server(config);
    app.start_jobs().unwrap();
    (app, scheduler, dir)
}

async fn get_json(app: &Arc<AppState>, path: &str) -> (StatusCode, Value) {
    let r = call(app, Request::get(path).body(Body::empty()).unwrap()).await;
    let status = r.status();
    (status, json_of(r).await)
}

/// Polls a job until its status is `want`.
async fn wait_for_job(app: &Arc<AppState>, id: &str, want: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(240);
    loop {
        let (status, job) = get_json(app, &format!("/v1/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["status"] == want {
            return job;
        }
        assert!(Instant::now() < until, "job not {want} in 240 s: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_speaks_each_item_as_speech_would_fails_bad_items_alone_and_gives_an_archive() {
    let mut config = ServerConfig::default();
    config.limits.max_input_chars = 120;
    let (app, scheduler, dir) = jobs_server(config);
    let items = json!([
        {"id": "a", "text": TEXT},
        {"id": "b", "text": "Nobody speaks this.", "voice": "xx_nobody"},
        {"id": "../c", "text": "Hi."},
        {"id": "d", "text": "word ".repeat(40)},
        {"id": "e", "text": "A British voice.", "voice": "bf_emma", "lang": "en-gb"},
    ]);
    let r = call(&app, post("/v1/jobs", json!({"items": items}))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.headers()[header::LOCATION].to_str().unwrap().trim_start_matches("/v1/jobs/").to_string();
    let created = json_of(r).await;
    assert_eq!((created["id"].as_str(), created["total"].as_u64()), (Some(id.as_str()), Some(5)));
    let job = wait_for_job(&app, &id, "completed").await;
    assert_eq!((job["done"].as_u64(), job["succeeded"].as_u64(), job["failed"].as_u64()), (Some(5), Some(2), Some(3)), "{job}");
    assert_eq!((job["percent"].as_f64(), job["eta_seconds"].as_f64()), (Some(100.0), Some(0.0)));
    let errors: Vec<(String, String)> = job["errors"].as_array().unwrap().iter().map(|e| (e["id"].as_str().unwrap().into(), e["code"].as_str().unwrap().into())).collect();
    let want = [("b", "unknown_voice"), ("line-3", "bad_id"), ("d", "too_large")];
    assert_eq!(errors, want.map(|(a, b)| (a.to_string(), b.to_string())), "{job}");

    // Each good item's audio is what the engine makes of it (deterministic, as speech is).
    for (item, text, voice) in [("a", TEXT, "af_heart"), ("e", "A British voice.", "bf_emma")] {
        let r = call(&app, Request::get(format!("/v1/jobs/{id}/items/{item}")).body(Body::empty()).unwrap()).await;
        assert_eq!((r.status(), r.headers()[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "audio/wav"));
        let wav = bytes(r).await;
        assert_eq!(samples_of_wav(&wav), engine_pcm(&scheduler, text, voice), "item {item}");
    }
    let (status, body) = get_json(&app, &format!("/v1/jobs/{id}/items/b")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("item_failed")), "{body}");
    let (status, body) = get_json(&app, &format!("/v1/jobs/{id}/items/zz")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("item_not_found")), "{body}");

    // The archive holds each good item's file, byte for byte, and the manifest in input order.
    let r = call(&app, Request::get(format!("/v1/jobs/{id}/archive")).body(Body::empty()).unwrap()).await;
    assert_eq!((r.status(), r.headers()[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "application/zip"));
    let zip_bytes = bytes(r).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["audio/a.wav", "audio/e.wav", "manifest.jsonl"]);
    let mut read = |name: &str| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut out).unwrap();
        out
    };
    assert_eq!(read("audio/a.wav"), std::fs::read(dir.path().join(&id).join("audio/a.wav")).unwrap());
    let manifest = String::from_utf8(read("manifest.jsonl")).unwrap();
    let ids: Vec<String> = manifest.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["a", "b", "line-3", "d", "e"]);

    // Counted in the metrics.
    let metrics = String::from_utf8(bytes(call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await).await).unwrap();
    for line in ["kokoro_jobs{status=\"completed\"} 1", "kokoro_jobs{status=\"running\"} 0", "kokoro_job_items_pending 0"] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in:\n{metrics}");
    }

    // Listed; then deleted with its folder.
    let (_, list) = get_json(&app, "/v1/jobs").await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    let r = call(&app, Request::delete(format!("/v1/jobs/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(json_of(r).await["deleted"], true);
    assert_eq!(get_json(&app, &format!("/v1/jobs/{id}")).await.0, StatusCode::NOT_FOUND);
    assert!(!dir.path().join(&id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_uploaded_as_text_takes_its_options_from_the_query_and_bad_jobs_are_refused() {
    let mut config = ServerConfig::default();
    config.jobs.max_items = 3;
    config.jobs.max_upload_bytes = 4096;
    let (app, _scheduler, _dir) = jobs_server(config.clone());
    let upload = |path: &str, body: String| Request::post(path).header(header::CONTENT_TYPE, "text/plain").body(Body::from(body)).unwrap();
    let r = call(&app, upload("/v1/jobs?voice=bf_emma&response_format=mp3&speed=1.25", "First line.\n\nThird line.\n".into())).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = json_of(r).await["id"].as_str().unwrap().to_string();
    let job = wait_for_job(&app, &id, "completed").await;
    assert_eq!((job["succeeded"].as_u64(), job["response_format"].as_str()), (Some(2), Some("mp3")), "{job}");
    let r = call(&app, Request::get(format!("/v1/jobs/{id}/items/000003")).body(Body::empty()).unwrap()).await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "audio/mpeg");
    assert!(bytes(r).await.len() > 1000);

    for (request, status, code) in [
        (post("/v1/jobs", json!({"items": []})), StatusCode::BAD_REQUEST, "no_items"),
        (post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}, {"id": "b", "text": "x"}, {"id": "c", "text": "x"}, {"id": "d", "text": "x"}]})), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        (post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}], "webhook": "http://127.0.0.1:9/hook"})), StatusCode::BAD_REQUEST, "webhooks_off"),
        (post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}], "speed": 9})), StatusCode::BAD_REQUEST, "bad_speed"),
        (post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}], "response_format": "ogg"})), StatusCode::BAD_REQUEST, "invalid_request"),
        (post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}], "surprise": 1})), StatusCode::BAD_REQUEST, "invalid_request"),
        (post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}, "just text"]})), StatusCode::BAD_REQUEST, "invalid_request"),
        (upload("/v1/jobs", "x".repeat(5000)), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        (Request::get("/v1/jobs/job_nope").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND, "job_not_found"),
    ] {
        let (got, body) = error_of(&app, request).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{body}");
    }
    config.jobs.webhook_secret = "s".repeat(16);
    app.set_config(config.clone());
    let (got, body) = error_of(&app, post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}], "webhook": "https://example.com/hook"}))).await;
    assert_eq!((got, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_webhook")), "{body}");
    // Without jobs.dir there are no jobs.
    let (plain, _) = server(ServerConfig::default());
    let (got, body) = error_of(&plain, post("/v1/jobs", json!({"items": [{"id": "a", "text": "x"}]}))).await;
    assert_eq!((got, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("jobs_off")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_and_takes_its_items_out_of_the_queue() {
    let mut config = ServerConfig::default();
    config.engine.max_batch = 1;
    config.engine.workers = 1;
    config.jobs.window = 2;
    let (app, scheduler, _dir) = jobs_server(config);
    let items: Vec<Value> = (1..=8).map(|i| json!({"id": format!("i{i}"), "text": long_text()})).collect();
    let r = call(&app, post("/v1/jobs", json!({"items": items}))).await;
    let id = json_of(r).await["id"].as_str().unwrap().to_string();
    // Running, with chunks in the engine's queue.
    let until = Instant::now() + Duration::from_secs(120);
    while scheduler.stats().queued.iter().sum::<usize>() == 0 {
        assert!(Instant::now() < until, "the job never reached the engine");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, running) = get_json(&app, &format!("/v1/jobs/{id}")).await;
    assert_eq!(running["status"], "running");
    let r = call(&app, Request::delete(format!("/v1/jobs/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["status"], "cancelled");
    // Its requests leave the engine and nothing more is spoken for it.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = scheduler.stats();
        if stats.open_requests == 0 && stats.queued.iter().sum::<usize>() == 0 {
            break;
        }
        assert!(Instant::now() < until, "the cancelled job's items are still queued: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = get_json(&app, &format!("/v1/jobs/{id}")).await.1["done"].as_u64().unwrap();
    assert!(done < 8, "{done}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, after) = get_json(&app, &format!("/v1/jobs/{id}")).await;
    assert_eq!((after["status"].as_str(), after["done"].as_u64()), (Some("cancelled"), Some(done)), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_private_to_the_api_key_that_made_them_and_webhooks_go_only_to_allowed_hosts() {
    let mut config = ServerConfig::default();
    config.security.api_keys = vec!["key-one-0123".into(), "key-two-0123".into()];
    config.jobs.webhook_secret = "w".repeat(16);
    config.jobs.webhook_hosts = vec!["receiver.internal:9000".into()];
    let (app, _scheduler, _dir) = jobs_server(config);
    let with_key = |mut r: Request<Body>, key: &str| {
        r.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
        r
    };
    let r = call(&app, with_key(post("/v1/jobs", json!({"items": [{"id": "a", "text": "Hi."}]})), "key-one-0123")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = json_of(r).await["id"].as_str().unwrap().to_string();
    let get = |key: &'static str, path: String| with_key(Request::get(path).body(Body::empty()).unwrap(), key);
    // Its maker sees it; the other key gets 404 and an empty list, and cannot cancel it.
    assert_eq!(call(&app, get("key-one-0123", format!("/v1/jobs/{id}"))).await.status(), StatusCode::OK);
    let (status, body) = error_of(&app, get("key-two-0123", format!("/v1/jobs/{id}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("job_not_found")));
    assert_eq!(json_of(call(&app, get("key-two-0123", "/v1/jobs".into())).await).await["data"], json!([]));
    assert_eq!(json_of(call(&app, get("key-one-0123", "/v1/jobs".into())).await).await["data"][0]["id"], id.as_str());
    let delete = with_key(Request::delete(format!("/v1/jobs/{id}")).body(Body::empty()).unwrap(), "key-two-0123");
    assert_eq!(call(&app, delete).await.status(), StatusCode::NOT_FOUND);
    // Webhooks only to the listed receiver.
    for (url, status, code) in [
        ("http://169.254.169.254/latest", StatusCode::BAD_REQUEST, Some("webhook_host_refused")),
        ("http://receiver.internal:9001/hook", StatusCode::BAD_REQUEST, Some("webhook_host_refused")),
        ("http://receiver.internal:9000/hook", StatusCode::ACCEPTED, None),
    ] {
        let r = call(&app, with_key(post("/v1/jobs", json!({"items": [{"id": "a", "text": "Hi."}], "webhook": url})), "key-one-0123")).await;
        let got = r.status();
        let body = json_of(r).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, code), "{url}: {body}");
    }
}
