//! `kokoro serve` as a user runs it: the real binary on loopback, real HTTP clients (the official
//! `openai` Python package from the suite's venv, and ureq), pre-warm then ready, and a graceful
//! shutdown with a request in flight.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn cache() -> PathBuf {
    std::env::var_os("KOKORO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/kokoro-burn")
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `kokoro serve`, killed when dropped; its log is kept in a file.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    /// Starts it on a free loopback port with `config` (TOML) and waits until it is ready.
    fn start(name: &str, config: &str) -> Server {
        assert!(cache().join("kokoro-v1_0-int8.safetensors").is_file(), "run `kokoro fetch` first (scripts/test.sh does)");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("kokoro-serve-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_kokoro"))
            .args(["serve", "--device", "cpu", "--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kokoro serve starts");
        let server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
        let until = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok((200, _)) = server.get("/health/ready") {
                return server;
            }
            assert!(Instant::now() < until, "not ready after 180 s: {}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut r = Self::agent().get(&format!("{}{path}", self.base)).call()?;
        Ok((r.status().as_u16(), r.body_mut().read_to_string()?))
    }

    fn post(&self, path: &str, body: &Value) -> Result<(u16, Vec<u8>), ureq::Error> {
        let mut r = Self::agent().post(&format!("{}{path}", self.base)).header("content-type", "application/json").send(body.to_string())?;
        Ok((r.status().as_u16(), r.body_mut().read_to_vec()?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_openai_package_speaks_through_kokoro_serve_and_32_clients_are_all_served() {
    // No response cache: a repeated text is spoken again, so streaming is really measured.
    let server = Server::start("openai", "[voices]\nprewarm = [\"af_heart\"]\n[engine]\nresponse_cache_bytes = 0\n");
    let files = server.log.parent().unwrap().join("speech");
    std::fs::create_dir_all(&files).unwrap();
    let out = Command::new(repo().join("scripts/py"))
        .arg(repo().join("tests/http/openai_client.py"))
        .arg(format!("{}/v1", server.base))
        .arg(&files)
        .output()
        .expect("scripts/py runs");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), server.log());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let formats = &report["formats"];
    let pcm = formats["pcm"]["samples"].as_u64().unwrap();
    assert!(pcm > 24_000 * 2, "more than two seconds: {report}");
    assert_eq!(formats["wav"]["samples"].as_u64(), Some(pcm), "{report}");
    assert_eq!(formats["wav"]["content_type"], "audio/wav");
    assert_eq!(formats["pcm"]["content_type"], "audio/pcm");
    // The compressed formats, decoded here: each the same audio.
    let read = |fmt: &str| std::fs::read(files.join(format!("speech.{fmt}"))).unwrap();
    assert_eq!(formats["flac"]["content_type"], "audio/flac");
    let flac: Vec<i32> = claxon::FlacReader::new(std::io::Cursor::new(read("flac"))).unwrap().samples().map(Result::unwrap).collect();
    let pcm_samples: Vec<i32> = read("pcm").chunks_exact(2).map(|b| i32::from(i16::from_le_bytes([b[0], b[1]]))).collect();
    assert_eq!(flac, pcm_samples, "flac is lossless");
    assert_eq!(formats["opus"]["content_type"], "audio/opus");
    assert_eq!(decode_opus(&read("opus")) as u64, pcm, "opus is trimmed to the exact length");
    assert_eq!(formats["mp3"]["content_type"], "audio/mpeg");
    let mp3 = decode(&read("mp3"), "mp3").len() as u64;
    assert!((pcm..=pcm + 1105 + 2 * 1152).contains(&mp3), "mp3: {mp3} samples for {pcm} (LAME's delay and padding)");
    // AAC (ADTS) by ffmpeg: 1024 samples of priming and the last frame's padding.
    assert_eq!(formats["aac"]["content_type"], "audio/aac", "{report}");
    let aac = decode(&read("aac"), "aac").len() as u64;
    assert!((pcm..=pcm + 3 * 1024).contains(&aac), "aac: {aac} samples for {pcm}");
    // Streamed: the same audio twice over, the first bytes well before the end.
    for fmt in ["pcm", "wav"] {
        let s = &report["streamed"][fmt];
        assert_eq!(s["samples"].as_u64(), Some(2 * pcm), "{fmt}: {report}");
        let (first, total) = (s["first_bytes_s"].as_f64().unwrap(), s["total_s"].as_f64().unwrap());
        assert!(first < total * 0.6, "{fmt}: first bytes after {first} s of {total} s");
    }
    let sse = &report["sse"]["pcm"];
    assert_eq!(sse["samples"].as_u64(), Some(pcm), "{report}");
    let types: Vec<&str> = sse["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(types, ["speech.audio.delta", "speech.audio.delta", "speech.audio.done"]);
    assert!(sse["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(report["unknown_voice"], json!({"status": 404, "code": "unknown_voice"}));
    let concurrent = &report["concurrent"];
    assert_eq!(concurrent["served"], 32, "{report}");
    assert!(concurrent["samples"].as_array().unwrap().iter().all(|s| s.as_u64().unwrap() > 24_000), "{report}");

    // curl, as a shell user streams it: the same pcm twice over, first bytes well before the end.
    let text = "This is the first sentence, spoken on its own. And here is the second one, after it.";
    let out_pcm = files.join("curl.pcm");
    let out = Command::new("curl")
        .args(["-sSN", "--fail-with-body", "-o"])
        .arg(&out_pcm)
        .args(["-w", "%{http_code} %{time_starttransfer} %{time_total} %{content_type}", "-H", "content-type: application/json", "-d"])
        .arg(json!({"input": text, "voice": "af_heart", "response_format": "pcm"}).to_string())
        .arg(format!("{}/v1/audio/speech", server.base))
        .output()
        .expect("curl (scripts/test.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = String::from_utf8_lossy(&out.stdout).to_string();
    let parts: Vec<&str> = written.split_whitespace().collect();
    assert_eq!((parts[0], parts[3]), ("200", "audio/pcm"), "{written}");
    let (first, total): (f64, f64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
    assert!(first < total * 0.75, "curl's first bytes after {first} s of {total} s");
    let (status, whole) = server.post("/v1/audio/speech", &json!({"input": text, "voice": "af_heart", "response_format": "pcm", "stream": false})).unwrap();
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(&out_pcm).unwrap(), whole, "streamed through curl = the whole answer");
}

#[cfg(unix)]
#[test]
fn sigterm_drains_finishing_the_request_in_flight_and_refusing_new_ones() {
    let mut server = Server::start("drain", "");
    let base = server.base.clone();
    // A request of several sentences, in flight when the signal comes.
    let text: String = (1..=6).map(|i| format!("This is sentence number {i}.")).collect::<Vec<_>>().join(" ");
    let in_flight = std::thread::spawn(move || {
        let mut r = Server::agent()
            .post(&format!("{base}/v1/audio/speech"))
            .send(json!({"input": text, "voice": "af_heart", "response_format": "pcm"}).to_string())
            .unwrap();
        let status = r.status().as_u16();
        let mut body = Vec::new();
        r.body_mut().as_reader().read_to_end(&mut body).map(|_| (status, body.len()))
    });
    // Wait until the engine has it (the first bytes of a streamed answer come after its first chunk).
    std::thread::sleep(Duration::from_millis(1500));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    // Draining: not ready, new work refused with 503 (or the socket already closed).
    match server.get("/health/ready") {
        Ok((status, body)) => assert_eq!((status, body.contains("draining")), (503, true), "{body}"),
        Err(e) => panic!("readiness unreachable while a request is in flight: {e}"),
    }
    let (status, body) = server.post("/v1/audio/speech", &json!({"input": "Hi.", "voice": "af_heart"})).unwrap();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    // The request in flight finishes whole: six sentences of audio.
    let (status, bytes) = in_flight.join().unwrap().expect("the request in flight completes");
    assert_eq!(status, 200);
    assert!(bytes > 6 * 24_000, "{bytes} bytes");
    // Then the process exits by itself, successfully.
    let until = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < until, "still running 30 s after SIGTERM: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code}: {}", server.log());
    let log = server.log();
    assert!(log.contains("draining") && log.contains("stopped"), "{log}");
}

#[cfg(unix)]
#[test]
fn json_logs_rotate_carry_request_ids_change_level_live_and_sighup_or_a_changed_file_reloads() {
    let dir = std::env::temp_dir().join(format!("kokoro-serve-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log_file = dir.join("logs/kokoro.log");
    let admin = "admin-token-0123456789";
    let config_watching = |max_input_chars: i64, watch: f64| {
        format!(
            "watch_config_secs = {watch:?}\n[log]\nformat = \"json\"\nfile = \"{}\"\nrotate_bytes = 4096\nkeep_files = 2\n[security]\nadmin_token = \"{admin}\"\n[limits]\nmax_input_chars = {max_input_chars}\n",
            log_file.display()
        )
    };
    // Watching the file is off at first, so that the SIGHUP steps below prove SIGHUP.
    let config = |max_input_chars: i64| config_watching(max_input_chars, 0.0);
    let server = Server::start("logs", &config(4096));
    let config_path = server.log.parent().unwrap().join("config.toml");
    let speak = |id: &str, text: &str| {
        let mut r = Server::agent()
            .post(&format!("{}/v1/audio/speech", server.base))
            .header("x-request-id", id)
            .send(json!({"input": text, "voice": "af_heart", "response_format": "pcm", "stream": false}).to_string())
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], id, "the id comes back");
        let status = r.status().as_u16();
        r.body_mut().read_to_vec().unwrap();
        status
    };
    // Enough requests to pass 4 KiB a few times over.
    for i in 0..24 {
        assert_eq!(speak(&format!("req-{i}"), "Hello."), 200);
    }
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    // The performance line is written as the response ends, which can be just after the client
    // has read it all: wait for the last one.
    let until = Instant::now() + Duration::from_secs(10);
    while !read(&log_file).lines().any(|l| l.contains("\"req-23\"") && l.contains("\"message\":\"speech\"")) {
        assert!(Instant::now() < until, "no performance line for req-23: {}", read(&log_file));
        std::thread::sleep(Duration::from_millis(50));
    }
    let rotated = |n: usize| PathBuf::from(format!("{}.{n}", log_file.display()));
    assert!(rotated(1).is_file() && rotated(2).is_file(), "rotated twice at least");
    assert!(!rotated(3).exists(), "only keep_files = 2 are kept");
    let lines: Vec<Value> = [read(&rotated(2)), read(&rotated(1)), read(&log_file)]
        .iter()
        .flat_map(|t| t.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect::<Vec<_>>())
        .collect();
    assert!(std::fs::metadata(&log_file).unwrap().len() <= 4096);
    // The last request's performance line, with its id and its costs.
    let perf = lines.iter().rev().find(|l| l["message"] == "speech").expect("a performance line");
    assert_eq!(perf["span"]["request_id"], "req-23", "{perf}");
    for field in ["rtf", "queue_wait_ms", "decoder_ms", "encode_ms", "bytes", "cache_hit"] {
        assert!(!perf[field].is_null(), "{field} in {perf}");
    }

    // The level, changed while running: at warn, no more info lines.
    let admin_call = |method: &str, path: &str, body: Option<Value>| {
        let url = format!("{}{path}", server.base);
        let auth = format!("Bearer {admin}");
        let mut r = match method {
            "GET" => Server::agent().get(&url).header("authorization", &auth).call().unwrap(),
            _ => Server::agent().put(&url).header("authorization", &auth).send(body.unwrap().to_string()).unwrap(),
        };
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    assert_eq!(admin_call("PUT", "/admin/log-level", Some(json!({"level": "warn"}))).0, 200);
    assert!(admin_call("GET", "/admin/log-level", None).1.contains("warn"));
    let (status, body) = admin_call("PUT", "/admin/log-level", Some(json!({"level": "loud"})));
    assert_eq!(status, 400, "{body}");
    assert_eq!(speak("after-warn", "Hello."), 200);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!read(&log_file).contains("after-warn"), "no info line at warn");

    // SIGHUP: a new limit applies; an invalid file is refused and the old configuration stays.
    let pid = server.child.id().to_string();
    std::fs::write(&config_path, config(20)).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let until = Instant::now() + Duration::from_secs(10);
    while speak("probe", "This sentence is longer than twenty characters.") != 413 {
        assert!(Instant::now() < until, "the reload did not take effect");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&config_path, config(0)).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let until = Instant::now() + Duration::from_secs(10);
    while !read(&log_file).contains("reload refused") {
        assert!(Instant::now() < until, "no refusal logged: {}", read(&log_file));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(speak("still-20", "Short one."), 200);
    assert_eq!(speak("still-20b", "This sentence is longer than twenty characters."), 413);

    // A changed file applies by itself once watching is on (turned on by one more SIGHUP).
    std::fs::write(&config_path, config_watching(20, 0.3)).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&config_path, config_watching(100, 0.3)).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while speak("watched", "This sentence is longer than twenty characters.") != 200 {
        assert!(Instant::now() < until, "the changed file was not applied: {}", read(&log_file));
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Samples of an MP3 or ADTS AAC file (symphonia, pure Rust).
fn decode(bytes: &[u8], extension: &str) -> Vec<f32> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::io::MediaSourceStream;
    let source = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = symphonia::core::probe::Hint::new();
    hint.with_extension(extension);
    let probed = symphonia::default::get_probe().format(&hint, source, &Default::default(), &Default::default()).unwrap();
    let mut format = probed.format;
    let track = format.default_track().unwrap().clone();
    assert_eq!(track.codec_params.sample_rate, Some(24_000));
    let mut decoder = symphonia::default::get_codecs().make(&track.codec_params, &Default::default()).unwrap();
    let mut out = Vec::new();
    while let Ok(packet) = format.next_packet() {
        let decoded = decoder.decode(&packet).unwrap();
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
        buffer.copy_interleaved_ref(decoded);
        out.extend_from_slice(buffer.samples());
    }
    out
}

/// Samples of an Ogg Opus file after pre-skip and end trim (opus-pure).
fn decode_opus(bytes: &[u8]) -> usize {
    let mut reader = opus_pure::OggOpusReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let head = reader.head().clone();
    let mut decoder = head.decoder(24_000).unwrap();
    let mut trim = opus_pure::Trim::new(&head, 24_000, 1).unwrap();
    let mut block = vec![0.0f32; opus_pure::MAX_PACKET_SAMPLES];
    let mut samples = 0;
    for packet in reader.packets() {
        let packet = packet.unwrap();
        let n = decoder.decode(&packet.data, opus_pure::MAX_PACKET_SAMPLES, &mut block).unwrap();
        samples += trim.keep(&packet, &block[..n]).len();
    }
    samples
}

#[test]
fn config_check_names_the_bad_key_and_print_shows_every_layer() {
    let dir = std::env::temp_dir().join(format!("kokoro-config-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_input_chars = 0\n").unwrap();
    let kokoro = || Command::new(env!("CARGO_BIN_EXE_kokoro"));
    let o = kokoro().args(["config", "check", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("limits.max_input_chars = 0: must be 1 to 1000000"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kokoro().args(["config", "check", "--profile", "gpu"]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    let o = kokoro().args(["config", "print", "--profile", "edge"]).env("KOKORO_LIMITS__MAX_INPUT_CHARS", "99").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed: toml::Table = String::from_utf8_lossy(&o.stdout).parse().unwrap();
    assert_eq!(printed["limits"]["max_input_chars"].as_integer(), Some(99));
    assert_eq!(printed["engine"]["max_queued_chunks"].as_integer(), Some(64), "from the edge profile");
}

/// A webhook receiver on loopback: answers its first request 500 (so the sender must retry),
/// the rest 200; hands each request's headers and body to the test.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            let (head, body) = loop {
                let Ok(got) = stream.read(&mut buf) else { break (String::new(), Vec::new()) };
                if got == 0 {
                    break (String::new(), Vec::new());
                }
                data.extend_from_slice(&buf[..got]);
                if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..end]).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                        .unwrap_or(0);
                    let mut body = data[end + 4..].to_vec();
                    while body.len() < length {
                        let got = stream.read(&mut buf).unwrap();
                        body.extend_from_slice(&buf[..got]);
                    }
                    break (head, body);
                }
            };
            let status = if n == 0 { "500 Internal Server Error" } else { "200 OK" };
            let _ = std::io::Write::write_all(&mut stream, format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            let _ = tx.send((head, body));
        }
    });
    (url, rx)
}

#[test]
fn a_job_survives_a_restart_losing_nothing_and_its_signed_webhook_arrives_after_a_retry() {
    let secret = "job-webhook-secret-0123456789";
    let (hook, received) = webhook_receiver();
    let jobs_dir = std::env::temp_dir().join(format!("kokoro-serve-test-{}-jobs-folder", std::process::id()));
    let _ = std::fs::remove_dir_all(&jobs_dir);
    let config = format!("[jobs]\ndir = {:?}\nwindow = 1\nwebhook_secret = {secret:?}\n", jobs_dir.display().to_string());
    let mut server = Server::start("jobs", &config);
    // Six items of four sentences; one with a voice nobody has.
    let sentences = |i: usize| (1..=4).map(|s| format!("Item {i}, sentence {s}.")).collect::<Vec<_>>().join(" ");
    let mut items: Vec<Value> = (1..=6).map(|i| json!({"id": format!("item-{i}"), "text": sentences(i)})).collect();
    items[4]["voice"] = json!("xx_nobody");
    let (status, body) = server.post("/v1/jobs", &json!({"items": items, "webhook": hook})).unwrap();
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    let job = |server: &Server| serde_json::from_str::<Value>(&server.get(&format!("/v1/jobs/{id}")).unwrap().1).unwrap();

    // Stop it (SIGTERM) once two items are done, while the third is being spoken.
    let until = Instant::now() + Duration::from_secs(240);
    while job(&server)["done"].as_u64() < Some(2) {
        assert!(Instant::now() < until, "two items not done in 240 s: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = job(&server);
    let done_before = before["done"].as_u64().unwrap();
    assert!(done_before < 6, "{before}");
    let first_file = jobs_dir.join(&id).join("audio/item-1.wav");
    let first_written = std::fs::metadata(&first_file).unwrap().modified().unwrap();
    assert!(Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap().success());
    let until = Instant::now() + Duration::from_secs(30);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < until, "still running 30 s after SIGTERM: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("unfinished jobs are saved"), "{}", server.log());
    // No file is half-written.
    let leftovers: Vec<_> = std::fs::read_dir(jobs_dir.join(&id).join("audio")).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".partial")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(server);

    // The next start resumes it: the items done before are not spoken again.
    let server = Server::start("jobs", &config);
    let until = Instant::now() + Duration::from_secs(300);
    let end = loop {
        let j = job(&server);
        if j["status"] == "completed" {
            break j;
        }
        assert!(Instant::now() < until, "the resumed job did not complete: {j}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(server.log().contains("unfinished jobs found"), "{}", server.log());
    assert_eq!((end["succeeded"].as_u64(), end["failed"].as_u64()), (Some(5), Some(1)), "{end}");
    assert_eq!(end["errors"][0]["id"], "item-5");
    assert_eq!(std::fs::metadata(&first_file).unwrap().modified().unwrap(), first_written, "item 1 was spoken again");
    // Every item's audio is whole: a WAV of its four sentences.
    for i in [1, 2, 3, 4, 6] {
        let mut r = Server::agent().get(&format!("{}/v1/jobs/{id}/items/item-{i}", server.base)).call().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let wav = r.body_mut().read_to_vec().unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
        let seconds = reader.duration() as f64 / 24_000.0;
        assert!((3.0..20.0).contains(&seconds), "item {i}: {seconds} s");
    }

    // The webhook: refused once, then delivered, signed with the secret over the exact body.
    let (first_head, first_body) = received.recv_timeout(Duration::from_secs(30)).expect("the webhook's first try");
    let (head, body) = received.recv_timeout(Duration::from_secs(30)).expect("the webhook's retry");
    assert_eq!(first_body, body, "a retry sends the same body");
    assert!(first_head.starts_with("POST /hook "), "{first_head}");
    let signature = head.lines().find_map(|l| l.to_ascii_lowercase().starts_with("x-kokoro-signature-256:").then(|| l.split_once(':').unwrap().1.trim().to_string())).expect("signed");
    assert!(kokoro_server::webhook::verify(secret.as_bytes(), &body, &signature), "{head}");
    assert!(!kokoro_server::webhook::verify(b"another-secret-0123456789", &body, &signature));
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((payload["event"].as_str(), payload["id"].as_str(), payload["succeeded"].as_u64()), (Some("job.completed"), Some(id.as_str()), Some(5)), "{payload}");
    // The delivery is recorded (two tries) and survives in the job's state.
    let until = Instant::now() + Duration::from_secs(10);
    while job(&server)["webhook"]["delivered"] != true {
        assert!(Instant::now() < until, "{}", job(&server));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(job(&server)["webhook"]["attempts"], 2);
    let _ = std::fs::remove_dir_all(&jobs_dir);
}

/// The value of a sample line of Prometheus text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[test]
fn on_loopback_overload_is_503_with_retry_after_a_client_that_hangs_up_stops_its_chunks_and_the_server_recovers() {
    // One request at a time, one chunk per pass: a long request holds the only slot.
    let server = Server::start("overload", "[engine]\nmax_requests = 1\nmax_batch = 1\nworkers = 1\nlookahead = 2\nresponse_cache_bytes = 0\n");
    let long: String = (1..=12).map(|i| format!("This is sentence number {i}.")).collect::<Vec<_>>().join(" ");
    let mut busy = Server::agent()
        .post(&format!("{}/v1/audio/speech", server.base))
        .send(json!({"input": long, "voice": "af_heart", "response_format": "pcm"}).to_string())
        .unwrap();
    assert_eq!(busy.status().as_u16(), 200);
    let mut reader = busy.body_mut().as_reader();
    let mut first = [0u8; 4096];
    assert!(reader.read(&mut first).unwrap() > 0, "the first chunk's bytes");

    // Overloaded: 503 in OpenAI's shape with Retry-After.
    let mut r = Server::agent().post(&format!("{}/v1/audio/speech", server.base)).send(json!({"input": "Hi.", "voice": "af_heart"}).to_string()).unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let error: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "overloaded", "{error}");

    // The client hangs up after its first chunk: its request is cancelled and its chunks leave
    // the queue, far short of twelve.
    drop(reader);
    drop(busy);
    let until = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let text = server.get("/metrics").unwrap().1;
        if metric(&text, "kokoro_engine_requests_total{event=\"cancelled\"}") == 1.0 && metric(&text, "kokoro_open_requests") == 0.0 {
            break text;
        }
        assert!(Instant::now() < until, "the request was not cancelled:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let spoken = metric(&metrics, "kokoro_chunks_spoken_total");
    assert!((1.0..12.0).contains(&spoken), "{spoken} chunks spoken");
    let queued: f64 = ["interactive", "default", "bulk"].iter().map(|p| metric(&metrics, &format!("kokoro_queue_depth_chunks{{priority=\"{p}\"}}"))).sum();
    assert_eq!(queued, 0.0);

    // Recovered: the next request is served whole.
    let mut r = Server::agent()
        .post(&format!("{}/v1/audio/speech", server.base))
        .send(json!({"input": "Hi again.", "voice": "af_heart", "response_format": "pcm"}).to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.body_mut().read_to_vec().unwrap().len() > 24_000);
}
