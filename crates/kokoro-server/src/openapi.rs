//! `GET /openapi.json`: the server's OpenAPI 3.1 description. Every request and response body's
//! schema is generated from the Rust type the handler reads or writes (schemars, the same derive
//! as the configuration's schema); the operations are the table below, kept beside the router and
//! checked by a test that sends each one to the router (a documented route that does not exist
//! fails it).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::audio::AudioFormat;

/// What a successful answer carries.
pub(crate) enum Answer {
    /// JSON of this type.
    Json(fn(&mut SchemaGenerator) -> Schema),
    /// Encoded audio in the requested format (or SSE / NDJSON when asked).
    Audio,
    /// Bytes of one content type.
    Bytes(&'static str),
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Auth {
    Open,
    /// `security.api_keys`, when set.
    ApiKey,
    /// `security.admin_token`.
    Admin,
}

pub(crate) struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub body: Option<fn(&mut SchemaGenerator) -> Schema>,
    pub answer: Answer,
    pub errors: &'static [u16],
    pub auth: Auth,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn any_json(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "object" })
}

/// Errors every speech-making operation may answer.
const SPEECH_ERRORS: &[u16] = &[400, 401, 404, 413, 429, 503, 504];

/// Every route of [`crate::router`].
pub(crate) const OPERATIONS: &[Operation] = &[
    Operation { method: "post", path: "/v1/audio/speech", summary: "Speech from text (OpenAI's API): audio streamed as it is spoken, the whole file, or SSE deltas", tag: "Speech", body: Some(schema::<crate::speech::SpeechRequest>), answer: Answer::Audio, errors: SPEECH_ERRORS, auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/models", summary: "The accepted model names", tag: "Models", body: None, answer: Answer::Json(schema::<crate::catalog::ModelList>), errors: &[401, 429], auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/models/{model}", summary: "One model", tag: "Models", body: None, answer: Answer::Json(schema::<crate::catalog::ModelInfo>), errors: &[401, 404, 429], auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/audio/voices", summary: "The voices, with language and gender (`?legacy=true`: names only)", tag: "Voices", body: None, answer: Answer::Json(any_json), errors: &[401, 429], auth: Auth::ApiKey },
    Operation { method: "post", path: "/v1/audio/voices/combine", summary: "A mix of voices as a raw .bin voice pack", tag: "Voices", body: Some(schema::<crate::catalog::CombineRequest>), answer: Answer::Bytes("application/octet-stream"), errors: &[400, 401, 404, 429, 503], auth: Auth::ApiKey },
    Operation { method: "post", path: "/dev/captioned_speech", summary: "Speech with word timestamps (Kokoro-FastAPI's)", tag: "Kokoro-FastAPI", body: Some(schema::<crate::dev::CaptionedRequest>), answer: Answer::Json(schema::<crate::dev::Captioned>), errors: SPEECH_ERRORS, auth: Auth::ApiKey },
    Operation { method: "post", path: "/dev/phonemize", summary: "Text to Kokoro's phonemes (Kokoro-FastAPI's)", tag: "Kokoro-FastAPI", body: Some(schema::<crate::dev::PhonemizeRequest>), answer: Answer::Json(schema::<crate::dev::Phonemes>), errors: &[400, 401, 429, 503], auth: Auth::ApiKey },
    Operation { method: "post", path: "/dev/generate_from_phonemes", summary: "Speech from phonemes, as WAV (Kokoro-FastAPI's)", tag: "Kokoro-FastAPI", body: Some(schema::<crate::dev::FromPhonemesRequest>), answer: Answer::Bytes("audio/wav"), errors: SPEECH_ERRORS, auth: Auth::ApiKey },
    Operation { method: "post", path: "/v1/jobs", summary: "A batch job: items as JSON, or an upload of JSONL or text (one item per line, `Content-Type: application/jsonl` or `text/plain`) with the options in the query; spoken in the background at bulk priority", tag: "Jobs", body: Some(schema::<crate::jobs::JobRequest>), answer: Answer::Json(schema::<crate::jobs::JobView>), errors: &[400, 401, 404, 413, 429, 503], auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/jobs", summary: "Every job, newest first", tag: "Jobs", body: None, answer: Answer::Json(schema::<crate::jobs::JobList>), errors: &[401, 404, 429], auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/jobs/{id}", summary: "A job: status, done and total, percent, time left, failed items, webhook", tag: "Jobs", body: None, answer: Answer::Json(schema::<crate::jobs::JobView>), errors: &[401, 404, 429], auth: Auth::ApiKey },
    Operation { method: "delete", path: "/v1/jobs/{id}", summary: "Cancels an unfinished job (its finished items stay); deletes a finished one with its files", tag: "Jobs", body: None, answer: Answer::Json(schema::<crate::jobs::JobView>), errors: &[401, 404, 429], auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/jobs/{id}/items/{item}", summary: "One item's audio, in the job's format", tag: "Jobs", body: None, answer: Answer::Audio, errors: &[401, 404, 429], auth: Auth::ApiKey },
    Operation { method: "get", path: "/v1/jobs/{id}/archive", summary: "A finished job's results: a zip of every item's audio and manifest.jsonl", tag: "Jobs", body: None, answer: Answer::Bytes("application/zip"), errors: &[401, 404, 409, 429], auth: Auth::ApiKey },
    Operation { method: "get", path: "/health/live", summary: "200 while the process runs", tag: "Operations", body: None, answer: Answer::Json(any_json), errors: &[], auth: Auth::Open },
    Operation { method: "get", path: "/health/ready", summary: "200 when the weights are loaded and pre-warm is done; 503 before and while draining", tag: "Operations", body: None, answer: Answer::Json(any_json), errors: &[503], auth: Auth::Open },
    Operation { method: "get", path: "/metrics", summary: "Prometheus text format", tag: "Operations", body: None, answer: Answer::Bytes("text/plain; version=0.0.4"), errors: &[], auth: Auth::Open },
    Operation { method: "get", path: "/", summary: "The status page", tag: "Operations", body: None, answer: Answer::Bytes("text/html"), errors: &[], auth: Auth::Open },
    Operation { method: "get", path: "/status.json", summary: "What the status page shows", tag: "Operations", body: None, answer: Answer::Json(any_json), errors: &[], auth: Auth::Open },
    Operation { method: "get", path: "/openapi.json", summary: "This document", tag: "Operations", body: None, answer: Answer::Json(any_json), errors: &[], auth: Auth::Open },
    Operation { method: "post", path: "/admin/prewarm", summary: "Load and pin voices now", tag: "Admin", body: Some(schema::<crate::admin::PrewarmBody>), answer: Answer::Json(any_json), errors: &[400, 401, 403, 404], auth: Auth::Admin },
    Operation { method: "post", path: "/admin/evict", summary: "Drop a voice or mix from the voice cache", tag: "Admin", body: Some(schema::<crate::admin::EvictBody>), answer: Answer::Json(any_json), errors: &[400, 401, 403, 404], auth: Auth::Admin },
    Operation { method: "post", path: "/admin/clear-caches", summary: "Empty the response cache and the voice cache's unpinned entries", tag: "Admin", body: None, answer: Answer::Json(any_json), errors: &[401, 403, 404], auth: Auth::Admin },
    Operation { method: "post", path: "/admin/reload", summary: "Read the configuration again and apply what can change live", tag: "Admin", body: None, answer: Answer::Json(schema::<crate::state::Reloaded>), errors: &[400, 401, 403, 404], auth: Auth::Admin },
    Operation { method: "get", path: "/admin/log-level", summary: "The log level now", tag: "Admin", body: None, answer: Answer::Json(any_json), errors: &[400, 401, 403, 404], auth: Auth::Admin },
    Operation { method: "put", path: "/admin/log-level", summary: "Change the log level", tag: "Admin", body: Some(schema::<crate::admin::LevelBody>), answer: Answer::Json(any_json), errors: &[400, 401, 403, 404], auth: Auth::Admin },
    Operation { method: "get", path: "/debug/caches", summary: "Both caches: entries, bytes, hits", tag: "Debug", body: None, answer: Answer::Json(any_json), errors: &[404], auth: Auth::Open },
    Operation { method: "get", path: "/debug/memory", summary: "Bytes by component and the allocator's counts", tag: "Debug", body: None, answer: Answer::Json(any_json), errors: &[404], auth: Auth::Open },
    Operation { method: "get", path: "/debug/stages", summary: "Time per stage and the current bottleneck", tag: "Debug", body: None, answer: Answer::Json(any_json), errors: &[404], auth: Auth::Open },
    Operation { method: "get", path: "/debug/config", summary: "The effective configuration, secrets hidden", tag: "Debug", body: None, answer: Answer::Json(any_json), errors: &[404], auth: Auth::Open },
    Operation { method: "get", path: "/debug/alerts", summary: "Alerts firing and the recent changes", tag: "Debug", body: None, answer: Answer::Json(any_json), errors: &[404], auth: Auth::Open },
];

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad input: malformed JSON, a wrong field, an unsupported format",
        401 => "No API key, or an unknown one",
        403 => "A wrong admin token",
        404 => "Unknown voice, model, job or route (or a route that is off)",
        409 => "The job has not ended",
        413 => "Input or body over the limits",
        429 => "Over the client's rate limit (Retry-After)",
        503 => "Overloaded, over the memory limit, loading or draining (Retry-After)",
        504 => "Past the request timeout",
        _ => "Error",
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into());
    let mut g = SchemaGenerator::new(settings);
    let error = g.subschema_for::<crate::error::Body<'static>>();
    let mut paths = Map::new();
    for op in OPERATIONS {
        let mut o = json!({ "summary": op.summary, "operationId": operation_id(op), "tags": [op.tag] });
        if let Some(body) = op.body {
            o["requestBody"] = json!({ "required": op.path != "/admin/prewarm", "content": { "application/json": { "schema": body(&mut g) } } });
            if op.path == "/v1/jobs" {
                // The upload: kokoro batch's input as it is.
                for upload in ["application/jsonl", "text/plain"] {
                    o["requestBody"]["content"][upload] = json!({ "schema": { "type": "string", "description": "One item per line: JSONL ({\"id\", \"text\", \"voice\"?, \"speed\"?, \"lang\"?}) or plain text" } });
                }
                o["parameters"] = ["voice", "speed", "lang_code", "response_format", "webhook"]
                    .iter()
                    .map(|name| json!({ "name": name, "in": "query", "required": false, "description": "With an upload: as the JSON body's field", "schema": { "type": "string" } }))
                    .collect();
            }
        }
        let ok = match &op.answer {
            Answer::Json(schema) => json!({ "description": "OK", "content": { "application/json": { "schema": schema(&mut g) } } }),
            Answer::Bytes(content_type) => json!({ "description": "OK", "content": { *content_type: {} } }),
            Answer::Audio => {
                let mut content: Map<String, Value> = AudioFormat::ALL.iter().map(|f| (f.content_type().to_string(), json!({}))).collect();
                content.insert("text/event-stream".into(), json!({}));
                json!({ "description": "Audio in `response_format` (chunked while streaming), or server-sent events with `stream_format: sse`", "content": content })
            }
        };
        let mut responses = Map::new();
        responses.insert("200".into(), ok);
        for status in op.errors {
            responses.insert(status.to_string(), json!({ "description": status_text(*status), "content": { "application/json": { "schema": error.clone() } } }));
        }
        o["responses"] = Value::Object(responses);
        match op.auth {
            Auth::Open => {}
            Auth::ApiKey => o["security"] = json!([{ "apiKey": [] }, {}]),
            Auth::Admin => o["security"] = json!([{ "adminToken": [] }]),
        }
        let entry = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        entry[op.method] = o;
        let names: Vec<&str> = op.path.split('{').skip(1).filter_map(|p| p.split_once('}')).map(|(name, _)| name).collect();
        if !names.is_empty() {
            entry["parameters"] = names.iter().map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })).collect();
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kokoro serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kokoro-82M text to speech: OpenAI's speech API, Kokoro-FastAPI's extras, and the server's operations (docs/server.md).",
        },
        "paths": paths,
        "components": {
            "schemas": g.take_definitions(true),
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer", "description": "security.api_keys (none needed when it is empty)" },
                "adminToken": { "type": "http", "scheme": "bearer", "description": "security.admin_token" },
            },
        },
    })
}

fn operation_id(op: &Operation) -> String {
    let path: String = op.path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{}{}", op.method, path.trim_end_matches('_'))
}
