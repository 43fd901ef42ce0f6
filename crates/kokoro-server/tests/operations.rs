//! Operating the server, over the real engine without a socket: `/metrics` counting exactly the
//! requests sent (and accepted by Prometheus' own `promtool`), API keys, rate limits, CORS, the
//! admin and debug routes, a live reload (and an invalid one refused), the memory limit.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use kokoro_engine::Scheduler;
use kokoro_server::{AppState, ServerConfig, router};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::engine;


/// A ready server whose scheduler reports to the server's metrics, as `kokoro serve` wires it.
fn server(mut config: ServerConfig) -> Arc<AppState> {
    config.engine.response_cache_bytes = 0;
    let app = AppState::starting(config.clone());
    app.set_synthesizer(Arc::new(Scheduler::with_observer(engine(), config.engine, app.metrics.clone())));
    app.set_ready(true);
    app
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn with_bearer(mut r: Request<Body>, token: &str) -> Request<Body> {
    r.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    r
}

async fn call(app: &Arc<AppState>, request: Request<Body>) -> Response {
    router(app.clone()).oneshot(request).await.unwrap()
}

async fn text(response: Response) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Reads a body to its end (audio): its length.
async fn drain(response: Response) -> usize {
    response.into_body().collect().await.unwrap().to_bytes().len()
}

async fn json_of(response: Response) -> Value {
    serde_json::from_str(&text(response).await).unwrap()
}

fn speech(input: &str) -> Request<Body> {
    post("/v1/audio/speech", json!({"input": input, "voice": "af_heart", "response_format": "pcm", "stream": false}))
}

/// The samples of a Prometheus text exposition: `name{labels}` (labels sorted) to value.
fn samples(exposition: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_string(),
        };
        out.insert(key, value.parse().unwrap_or_else(|_| panic!("a number: {line}")));
    }
    out
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| panic!("no series {key} in:\n{}", samples.keys().cloned().collect::<Vec<_>>().join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_requests_sent_and_promtool_accepts_them() {
    // With jobs on, so that their gauges are in what promtool reads.
    let jobs = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::default();
    config.jobs.dir = Some(jobs.path().to_path_buf());
    let app = server(config);
    app.start_jobs().unwrap();
    for text in ["Hello there.", "One more sentence. And another one.", "Third."] {
        let r = call(&app, speech(text)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(drain(r).await > 0);
    }
    for _ in 0..2 {
        let r = call(&app, speech("   ")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        text(r).await;
    }
    let r = call(&app, post("/v1/audio/speech", json!({"input": "Hi.", "voice": "zz_nobody"}))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    text(r).await;

    let r = call(&app, get("/metrics")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let exposition = text(r).await;
    let s = samples(&exposition);
    let requests = |status: u16| sample(&s, &format!("kokoro_http_requests_total{{method=\"POST\",route=\"/v1/audio/speech\",status=\"{status}\"}}"));
    assert_eq!((requests(200), requests(400), requests(404)), (3.0, 2.0, 1.0));
    assert_eq!(sample(&s, "kokoro_http_request_duration_seconds_count{route=\"/v1/audio/speech\"}"), 6.0, "each body timed to its end");
    assert_eq!(sample(&s, "kokoro_time_to_first_audio_seconds_count{priority=\"default\"}"), 3.0);
    assert_eq!(sample(&s, "kokoro_speech_requests_total{format=\"pcm\",outcome=\"done\"}"), 3.0);
    assert_eq!(sample(&s, "kokoro_real_time_factor_count"), 3.0);
    // Every forward pass observed once; every chunk's wait once; four sentences, four chunks.
    let batches = sample(&s, "kokoro_batches_total");
    assert_eq!(batches, 4.0);
    assert_eq!(sample(&s, "kokoro_batch_size_chunks_count"), batches);
    assert_eq!(sample(&s, "kokoro_stage_duration_seconds_count{stage=\"decoder\"}"), batches);
    assert_eq!(sample(&s, "kokoro_queue_wait_seconds_count{priority=\"default\"}"), sample(&s, "kokoro_chunks_spoken_total"));
    assert!(sample(&s, "kokoro_stage_duration_seconds_sum{stage=\"decoder\"}") > 0.0);
    assert!(sample(&s, "kokoro_stage_duration_seconds_count{stage=\"text\"}") >= 4.0);
    assert_eq!(sample(&s, "kokoro_engine_requests_total{event=\"completed\"}"), 3.0);
    assert!(sample(&s, "kokoro_audio_spoken_seconds_total") > 2.0);
    let lookups = sample(&s, "kokoro_voice_cache_hits_total") + sample(&s, "kokoro_voice_cache_misses_total");
    assert!(lookups >= 3.0, "{lookups}");
    assert_eq!(sample(&s, "kokoro_memory_bytes{component=\"weights\"}"), engine().weight_bytes() as f64);
    assert!(sample(&s, "kokoro_memory_bytes{component=\"process_rss\"}") > 100e6);
    assert!(sample(&s, "process_resident_memory_bytes") > 100e6, "metrics-process");
    assert!([0.0, 1.0].contains(&sample(&s, "kokoro_gpu_present")));
    assert_eq!(sample(&s, "kokoro_ready"), 1.0);
    assert_eq!(sample(&s, "kokoro_queue_depth_chunks{priority=\"bulk\"}"), 0.0);
    assert_eq!(sample(&s, "kokoro_jobs{status=\"queued\"}"), 0.0);
    let le60 = sample(&s, "kokoro_time_to_first_audio_seconds_bucket{le=\"60\",priority=\"default\"}");
    assert_eq!(le60, 3.0, "buckets reach 60 s");

    // Prometheus' own linter (Debian's `prometheus` package; scripts/test.sh installs it).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed: scripts/test.sh installs it");
    promtool.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n--- exposition ---\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_rate_limits_per_client_and_cors() {
    let mut config = ServerConfig::default();
    config.security.api_keys = vec!["key-one-123".into(), "key-two-456".into()];
    config.security.cors_allow_origins = vec!["https://app.example".into()];
    config.rate_limit.requests_per_minute = 60;
    config.rate_limit.burst = 2;
    let app = server(config);

    // No key, a wrong key: 401 in OpenAI's shape. Health and metrics need none.
    let r = call(&app, get("/v1/models")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(r).await["error"]["code"], "invalid_api_key");
    let r = call(&app, with_bearer(get("/v1/models"), "key-three-789")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, get("/health/live")).await.status(), StatusCode::OK);
    assert_eq!(call(&app, get("/metrics")).await.status(), StatusCode::OK);

    // Two at once (the burst), the third refused with 429 and when to come back.
    for _ in 0..2 {
        assert_eq!(call(&app, with_bearer(get("/v1/models"), "key-one-123")).await.status(), StatusCode::OK);
    }
    let r = call(&app, with_bearer(get("/v1/models"), "key-one-123")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "one request a second comes back: {retry}");
    let body = json_of(r).await;
    assert_eq!((body["error"]["code"].as_str(), body["error"]["type"].as_str()), (Some("rate_limit_exceeded"), Some("rate_limit_error")));
    // Another client is not held back by the first; the first recovers once its time has come.
    assert_eq!(call(&app, with_bearer(get("/v1/models"), "key-two-456")).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(&app, with_bearer(get("/v1/models"), "key-one-123")).await.status(), StatusCode::OK);

    // CORS: a preflight from the allowed origin is answered; another origin gets no grant.
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/audio/speech")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
            .body(Body::empty())
            .unwrap()
    };
    let r = call(&app, preflight("https://app.example")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
    let r = call(&app, preflight("https://evil.example")).await;
    assert!(!r.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

const ADMIN: &str = "admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_debug_routes_and_a_live_reload() {
    // Off by default: 404 as if they did not exist.
    let off = server(ServerConfig::default());
    assert_eq!(call(&off, with_bearer(post("/admin/clear-caches", json!({})), ADMIN)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(call(&off, get("/debug/caches")).await.status(), StatusCode::NOT_FOUND);

    let dir = std::env::temp_dir().join(format!("kokoro-admin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    let base = format!("[security]\nadmin_token = \"{ADMIN}\"\ndebug_routes = true\napi_keys = [\"client-key-123\"]\n");
    std::fs::write(&file, &base).unwrap();
    let app = server(ServerConfig::from_file(&file).unwrap());
    let reload_from = file.clone();
    app.set_reloader(Box::new(move || ServerConfig::from_file(&reload_from)));
    let admin = |r: Request<Body>| with_bearer(r, ADMIN);

    assert_eq!(call(&app, post("/admin/clear-caches", json!({}))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, with_bearer(post("/admin/clear-caches", json!({})), "not-the-token-at-all")).await.status(), StatusCode::FORBIDDEN);

    // Pre-warm a voice: pinned in the cache; evict it: gone.
    let r = call(&app, admin(post("/admin/prewarm", json!({"voices": ["af_bella"]})))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["loaded"], json!(["af_bella"]));
    let caches = json_of(call(&app, get("/debug/caches")).await).await;
    let entry = caches["voice_cache"]["entries"].as_array().unwrap().iter().find(|e| e["key"] == "af_bella").cloned();
    assert_eq!(entry.as_ref().map(|e| e["pinned"].clone()), Some(json!(true)), "{caches}");
    let r = call(&app, admin(post("/admin/evict", json!({"voice": "af_bella"})))).await;
    assert_eq!(json_of(r).await["evicted"], true);
    let caches = json_of(call(&app, get("/debug/caches")).await).await;
    assert!(caches["voice_cache"]["entries"].as_array().unwrap().iter().all(|e| e["key"] != "af_bella"), "{caches}");
    let r = call(&app, admin(post("/admin/prewarm", json!({"voices": ["../etc/passwd"]})))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(call(&app, admin(post("/admin/clear-caches", json!({})))).await.status(), StatusCode::OK);

    // Stages after a request: the model's stages counted, a bottleneck named.
    let r = call(&app, with_bearer(speech("Where does the time go?"), "client-key-123")).await;
    assert_eq!(r.status(), StatusCode::OK);
    drain(r).await;
    let stages = json_of(call(&app, get("/debug/stages")).await).await;
    let decoder = stages["stages"].as_array().unwrap().iter().find(|s| s[0] == "decoder").unwrap()[1].clone();
    assert_eq!(decoder["count"], 1, "{stages}");
    assert!(stages["bottleneck"].is_string(), "{stages}");

    // Memory by component; the configuration with its secrets hidden.
    let memory = json_of(call(&app, get("/debug/memory")).await).await;
    assert_eq!(memory["bytes"]["weights"].as_u64(), Some(engine().weight_bytes() as u64));
    assert!(memory["bytes"]["process_rss"].as_u64().unwrap() > 100_000_000);
    assert!(memory["allocator"]["name"].is_string(), "{memory}");
    let shown = text(call(&app, get("/debug/config")).await).await;
    assert!(!shown.contains(ADMIN) && !shown.contains("client-key-123"), "{shown}");
    assert!(shown.contains("<redacted>"));

    // A live reload: a new input limit takes effect; the address would need a restart.
    std::fs::write(&file, format!("listen = \"127.0.0.1:9999\"\n{base}[limits]\nmax_input_chars = 20\n")).unwrap();
    let r = call(&app, admin(post("/admin/reload", json!({})))).await;
    let status = r.status();
    let done = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done["applied"].as_array().unwrap().contains(&json!("limits")), "{done}");
    assert_eq!(done["need_restart"], json!(["listen"]));
    let r = call(&app, with_bearer(speech("This sentence is longer than twenty characters."), "client-key-123")).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // An invalid file is refused and the configuration in force stays.
    std::fs::write(&file, format!("{base}[limits]\nmax_input_chars = 0\n")).unwrap();
    let r = call(&app, admin(post("/admin/reload", json!({})))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let message = json_of(r).await["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("limits.max_input_chars = 0"), "{message}");
    assert_eq!(app.config().limits.max_input_chars, 20);
    // Secrets reload too: the client key removed, the client is refused.
    std::fs::write(&file, format!("[security]\nadmin_token = \"{ADMIN}\"\napi_keys = [\"client-key-456\"]\n")).unwrap();
    assert_eq!(call(&app, admin(post("/admin/reload", json!({})))).await.status(), StatusCode::OK);
    assert_eq!(call(&app, with_bearer(get("/v1/models"), "client-key-123")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, get("/debug/caches")).await.status(), StatusCode::NOT_FOUND, "debug_routes now off");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_memory_limit_the_server_refuses_speech_and_recovers_below_it() {
    let rss = kokoro_server::metrics::process_rss();
    let limit = 256u64 << 20;
    let mut config = ServerConfig::default();
    config.limits.memory_limit_bytes = limit;
    let app = server(config);
    assert!(rss > limit || kokoro_server::metrics::process_rss() > limit, "the loaded model alone holds more than 256 MiB");
    let r = call(&app, speech("Hello.")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(json_of(r).await["error"]["code"], "memory_limit");
    let mut raised = (*app.config()).clone();
    raised.limits.memory_limit_bytes = 64 << 30;
    app.set_config(raised);
    assert_eq!(call(&app, speech("Hello.")).await.status(), StatusCode::OK);
}

/// The threshold numbers in an alert's expression in `deploy/prometheus/alerts.yml`, in order.
fn rule_thresholds(rules: &str, alert: &str) -> (Vec<f64>, String) {
    let block = rules.split("- alert: ").find(|b| b.starts_with(alert)).unwrap_or_else(|| panic!("{alert} in alerts.yml"));
    let expr = &block[block.find("expr:").unwrap()..block.find("for:").unwrap()];
    let numbers = expr
        .split(['>', '<'])
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.trim_end_matches(')').parse::<f64>().ok())
        .filter(|&n| n != 0.0)
        .collect();
    let for_ = block[block.find("for:").unwrap() + 4..].split_whitespace().next().unwrap().to_string();
    (numbers, for_)
}

#[test]
fn alert_rules_pass_promtool_and_use_the_servers_thresholds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    for args in [&["check", "rules", "alerts.yml"][..], &["test", "rules", "alerts.test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().expect("promtool (Debian package prometheus)");
        assert!(out.status.success(), "promtool {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let d = kokoro_server::config::AlertsConfig::default();
    for (alert, expected) in [
        ("KokoroQueueSaturated", vec![d.queue_saturation]),
        ("KokoroFirstAudioSlow", vec![d.first_audio_p99_secs]),
        ("KokoroErrorRate", vec![d.error_rate]),
        ("KokoroMemoryNearLimit", vec![d.memory_ratio]),
        ("KokoroVoiceCacheThrashing", vec![d.voice_cache_evictions_per_sec, d.voice_cache_hit_rate]),
        ("KokoroGpuMemoryHigh", vec![d.gpu_memory_ratio]),
    ] {
        let (numbers, for_) = rule_thresholds(&rules, alert);
        assert_eq!(numbers, expected, "{alert}: the rules file and the server's defaults differ");
        assert_eq!(for_, format!("{}m", d.for_secs / 60.0), "{alert}'s for");
    }
    assert_eq!(rules.matches("[5m]").count(), 7, "every rate over the server's window");
    assert_eq!(d.window_secs, 300.0);
}

/// A webhook receiver on loopback: each POST's JSON body, in order.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice(&body).unwrap());
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_fires_and_resolves_its_own_alert_with_a_webhook() {
    let (url, hooks) = webhook_receiver();
    let mut config = ServerConfig::default();
    config.security.debug_routes = true;
    // Any first audio is "slow"; the window forgets it after 2 s.
    config.alerts.interval_secs = 0.2;
    config.alerts.window_secs = 2.0;
    config.alerts.for_secs = 0.0;
    config.alerts.first_audio_p99_secs = 0.001;
    config.alerts.webhook_url = url;
    let app = server(config);
    let evaluator = tokio::spawn(kokoro_server::alerts::run(app.clone()));
    let r = call(&app, speech("Hello.")).await;
    assert_eq!(r.status(), StatusCode::OK);
    drain(r).await;

    let next_hook = || hooks.recv_timeout(Duration::from_secs(20)).expect("a webhook POST");
    let fired = tokio::task::block_in_place(next_hook);
    assert_eq!(fired["version"], "4", "Alertmanager's payload: {fired}");
    assert_eq!((fired["status"].as_str(), fired["alerts"][0]["labels"]["alertname"].as_str()), (Some("firing"), Some("KokoroFirstAudioSlow")));
    assert_eq!(fired["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let s = samples(&text(call(&app, get("/metrics")).await).await);
    assert_eq!(sample(&s, "kokoro_alerts_firing"), 1.0);
    let debug = json_of(call(&app, get("/debug/alerts")).await).await;
    assert_eq!(debug["firing"], json!(["KokoroFirstAudioSlow"]), "{debug}");

    // Nothing for longer than the window: resolved, with when it ended.
    let resolved = tokio::task::block_in_place(next_hook);
    assert_eq!((resolved["status"].as_str(), resolved["alerts"][0]["labels"]["alertname"].as_str()), (Some("resolved"), Some("KokoroFirstAudioSlow")));
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(resolved["alerts"][0]["startsAt"], fired["alerts"][0]["startsAt"]);
    assert!(app.alerts.firing().is_empty());
    evaluator.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_describes_every_route_and_every_documented_route_exists() {
    let mut config = ServerConfig::default();
    config.security.admin_token = ADMIN.into();
    config.security.debug_routes = true;
    let app = server(config);
    let r = call(&app, get("/openapi.json")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc = json_of(r).await;
    assert_eq!(doc["openapi"], "3.1.0");
    // Bodies from the handlers' own types.
    let speech = &doc["components"]["schemas"]["SpeechRequest"];
    let format = &doc["components"]["schemas"]["AudioFormat"];
    // An enum, `const`s (variants with doc comments), or a `oneOf` of both.
    fn values(schema: &Value) -> Vec<String> {
        let listed = schema.get("enum").and_then(Value::as_array).into_iter().flatten().chain(schema.get("const"));
        let mut out: Vec<String> = listed.filter_map(Value::as_str).map(String::from).collect();
        for option in schema.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
            out.extend(values(option));
        }
        out
    }
    let formats = values(format);
    assert_eq!(formats, ["mp3", "opus", "aac", "flac", "wav", "pcm"], "{format}");
    for field in ["model", "input", "voice", "response_format", "speed", "stream_format", "stream", "lang_code", "priority"] {
        assert!(speech["properties"].get(field).is_some(), "SpeechRequest.{field}: {speech}");
    }
    assert_eq!(speech["required"], json!(["input", "voice"]));
    assert!(doc["components"]["schemas"]["Error"]["properties"]["error"].is_object());
    // Every documented operation reaches a handler (no "no route", no 405).
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let uri = path.replace("{model}", "kokoro").replace("{id}", "job_none").replace("{item}", "a");
            let body = if method == "get" { Body::empty() } else { Body::from("{}") };
            let request = Request::builder().method(method.to_uppercase().as_str()).uri(&uri).header(header::CONTENT_TYPE, "application/json").body(body).unwrap();
            let r = call(&app, request).await;
            let status = r.status();
            let bytes = r.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(!text.contains("no route for"), "{method} {path} is documented but not routed: {text}");
        }
    }
    assert_eq!(operations, 31, "every operation of openapi::OPERATIONS");
}
