//! End-to-end tests of the `kokoro` binary on the real weights (fetched by the README's test
//! command; `cargo run -p kokoro-cli -- fetch` does it by hand).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cache() -> PathBuf {
    std::env::var_os("KOKORO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/kokoro-burn")
    })
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kokoro-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn kokoro(args: &[&str]) -> Output {
    assert!(
        cache().join("kokoro-v1_0-int8.safetensors").is_file(),
        "run `cargo run --release -p kokoro-cli -- fetch` first"
    );
    Command::new(env!("CARGO_BIN_EXE_kokoro")).args(args).output().expect("kokoro runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wav_samples(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path).unwrap().samples::<i16>().map(Result::unwrap).collect()
}

#[test]
fn says_hello_world_with_the_reference_durations() {
    let (wav, report) = (tmp("hello.wav"), tmp("hello.json"));
    let o = kokoro(&[
        "say", "--phonemes", "həlˈO wˈɜɹld.", "--voice", "af_heart", "--deterministic", "--device", "cpu",
        "--out", wav.to_str().unwrap(), "--report", report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let spec = hound::WavReader::open(&wav).unwrap().spec();
    assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (24_000, 1, 16));
    assert_eq!(wav_samples(&wav).len(), 39_000);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // MODEL.md: durations of the PyTorch reference and both ONNX exports for this utterance.
    let expected = [17, 2, 2, 2, 3, 3, 2, 1, 2, 3, 4, 3, 13, 7, 1];
    let got: Vec<u64> = r["durations"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(got, expected);
    assert_eq!(r["samples"], 39_000);
    assert_eq!(r["sample_rate"], 24_000);
    for stage in ["load", "bert", "predictor", "text_encoder", "decoder", "total"] {
        assert!(r["seconds"][stage].as_f64().unwrap() > 0.0, "{stage}");
    }
    let rtf = r["rtf"].as_f64().unwrap();
    assert!((rtf - r["seconds"]["total"].as_f64().unwrap() / 1.625).abs() < 1e-9);
}

#[test]
fn says_text_through_the_front_end_with_the_reference_durations() {
    // "Hello world." phonemizes to exactly the phonemes above, so the model must give MODEL.md's
    // durations: text -> G2P -> model end to end.
    let (wav, report) = (tmp("text.wav"), tmp("text.json"));
    let o = kokoro(&["say", "Hello world.", "--voice", "af_heart", "--deterministic", "--device", "cpu",
        "--out", wav.to_str().unwrap(), "--report", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["phonemes"], "həlˈO wˈɜɹld.");
    let got: Vec<u64> = r["durations"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(got, [17, 2, 2, 2, 3, 3, 2, 1, 2, 3, 4, 3, 13, 7, 1]);
    assert_eq!(wav_samples(&wav).len(), 39_000);
}

#[test]
fn long_text_is_spoken_chunk_by_chunk() {
    let text = "It was 10:30 on Main St. when Dr. Smith arrived.\n\nShe paid $5.50 for coffee. Then she left!";
    let file = tmp("long.txt");
    std::fs::write(&file, text).unwrap();
    let (wav, report) = (tmp("long.wav"), tmp("long.json"));
    let o = kokoro(&["say", "--file", file.to_str().unwrap(), "--no-pack", "--voice", "bf_emma", "--deterministic",
        "--out", wav.to_str().unwrap(), "--report", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let chunks = r["chunks"].as_array().unwrap();
    let spoken: Vec<&str> = chunks.iter().map(|c| {
        let s = c["source"].as_array().unwrap();
        &text[s[0].as_u64().unwrap() as usize..s[1].as_u64().unwrap() as usize]
    }).collect();
    assert_eq!(spoken, ["It was 10:30 on Main St. when Dr. Smith arrived.", "She paid $5.50 for coffee.", "Then she left!"]);
    let samples: u64 = chunks.iter().map(|c| c["samples"].as_u64().unwrap()).sum();
    assert_eq!(wav_samples(&wav).len() as u64, samples);
    // bf_ voices speak British English: "paid ... coffee" with GB vowels (kˈɒfi).
    assert!(chunks[1]["phonemes"].as_str().unwrap().contains("kˈɒfi"), "{}", chunks[1]["phonemes"]);
}

#[test]
fn phonemize_prints_one_line_per_chunk() {
    let o = kokoro(&["phonemize", "--no-pack", "Hello world. The train leaves at 10:30!"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().collect::<Vec<_>>(), ["həlˈO wˈɜɹld.", "ðə tɹˈAn lˈivz æt tˈɛn θˈɜɹTi!"]);
    let o = kokoro(&["phonemize", "--lang", "en-gb", "--json", "Flimbertastic!"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["guessed"][0], "Flimbertastic");
    assert!(stderr(&o).contains("letter-to-sound: Flimbertastic"));
}

#[test]
fn deterministic_and_seeded_runs_repeat_exactly() {
    let run = |name: &str, extra: &[&str]| {
        let wav = tmp(name);
        let mut args = vec!["say", "--phonemes", "hˈI.", "--voice", "am_adam", "--out", wav.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = kokoro(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        wav_samples(&wav)
    };
    let d1 = run("d1.wav", &["--deterministic"]);
    let d2 = run("d2.wav", &["--deterministic"]);
    let s1 = run("s1.wav", &["--seed", "42"]);
    let s2 = run("s2.wav", &["--seed", "42"]);
    assert_eq!(d1, d2);
    assert_eq!(s1, s2);
    assert_ne!(d1, s1, "seeded noise must change the audio");
}

#[test]
fn unknown_characters_are_dropped_with_a_warning() {
    let wav = tmp("unknown.wav");
    let o = kokoro(&["say", "--phonemes", "hˈI #1", "--deterministic", "--out", wav.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("dropped 2 character(s)") && e.contains("'#'") && e.contains("'1'"), "{e}");
}

#[test]
fn bad_input_exits_2_with_a_specific_message() {
    let wav = tmp("bad.wav");
    let out = wav.to_str().unwrap();
    let not_utf8 = tmp("latin1.txt");
    std::fs::write(&not_utf8, b"Ca\xe7a va").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--phonemes".into(), "".into()], "no phonemes to speak"),
        (vec!["--phonemes".into(), "###".into()], "no phonemes to speak"),
        (vec!["--phonemes".into(), "a".repeat(511)], "511 phoneme ids exceed the model's limit of 510"),
        (vec!["--phonemes".into(), "hˈI".into(), "--voice".into(), "zz_nobody".into()], "unknown voice \"zz_nobody\""),
        (vec!["--phonemes".into(), "hˈI".into(), "--voice".into(), "../../etc/passwd".into()], "bad voice mix \"../../etc/passwd\" at character 1"),
        // Issue 12: OpenAI's range; 0.0001 ran towards an out-of-memory abort, 1000 spoke.
        (vec!["--phonemes".into(), "hˈI".into(), "--speed".into(), "0".into()], "speed must be a number from 0.25 to 4"),
        (vec!["--phonemes".into(), "hˈI".into(), "--speed".into(), "0.0001".into()], "speed must be a number from 0.25 to 4"),
        (vec!["--phonemes".into(), "hˈI".into(), "--speed".into(), "1000".into()], "speed must be a number from 0.25 to 4"),
        (vec!["--phonemes".into(), "hˈI".into(), "--speed".into(), "4.01".into()], "speed must be a number from 0.25 to 4"),
        (vec!["--phonemes".into(), "hˈI".into(), "--speed".into(), "nan".into()], "speed must be a number from 0.25 to 4"),
        (vec![], "no text to speak"),
        (vec!["   ".into()], "no text to speak"),
        (vec!["*** ~~~".into()], "nothing to say"),
        (vec!["Hello.".into(), "--lang".into(), "fr".into()], "unknown language \"fr\""),
        (vec!["--phonemes".into(), "hˈI".into(), "--precision".into(), "int7".into()], "unknown precision \"int7\": expected one of f32, int8"),
        (vec!["--file".into(), not_utf8.to_str().unwrap().into()], "is not UTF-8 text (invalid byte at offset 2)"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["say".to_string(), "--out".into(), out.into()];
        args.extend(extra);
        let o = kokoro(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{args:?}: expected {message:?} in {}", stderr(&o));
        // Issue 12: a failed run left an empty or 44-byte WAV behind.
        assert!(!wav.exists(), "{args:?} left {out}");
    }
}

#[test]
fn a_failed_say_leaves_the_previous_file_and_no_partial_one() {
    let dir = tmp("keep");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("kept.wav");
    std::fs::write(&wav, b"the previous take").unwrap();
    for extra in [["--phonemes", "###"], ["--voice", "zz_nobody"]] {
        let o = kokoro(&[&["say", "Hello.", "--out", wav.to_str().unwrap()][..], &extra[..]].concat());
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(std::fs::read(&wav).unwrap(), b"the previous take");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["kept.wav"], "no temporary file is left beside it");
    }
}

#[test]
fn corrupt_or_mismatched_weights_are_named() {
    let good = std::fs::read(cache().join("kokoro-v1_0-int8.safetensors")).unwrap();
    let truncated = tmp("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let garbage = tmp("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07 definitely not a model").unwrap();
    let unknown = tmp("weights.bin");
    std::fs::write(&unknown, b"x").unwrap();
    for (path, message) in [
        (&truncated, "is not a valid safetensors file"),
        (&garbage, "not a valid ONNX file"),
        (&unknown, "unknown weight format"),
    ] {
        let o = kokoro(&["say", "--phonemes", "hˈI", "--weights", path.to_str().unwrap(), "--out", tmp("w.wav").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(message), "expected {message:?} in {}", stderr(&o));
    }
}

#[test]
fn a_weight_set_missing_a_tensor_is_reported_by_name() {
    // Convert to f32 (checks the full set), then drop one tensor and convert again.
    let f32_file = tmp("f32.safetensors");
    let o = kokoro(&["convert", cache().join("kokoro-v1_0-int8.safetensors").to_str().unwrap(), "--precision", "f32", "--out", f32_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&f32_file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| n != "decoder.generator.conv_post.weight").collect();
    let partial = tmp("partial.safetensors");
    std::fs::write(&partial, safetensors::serialize(kept, header.metadata().clone()).unwrap()).unwrap();
    let o = kokoro(&["say", "--phonemes", "hˈI", "--weights", partial.to_str().unwrap(), "--out", tmp("p.wav").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("missing 1 tensor(s)") && e.contains("decoder.generator.conv_post.weight"), "{e}");
}

#[test]
fn fetch_refuses_a_tampered_download() {
    // A private cache whose voices tarball has been tampered with: fetch must stop on the sha256.
    let root = tmp("tampered-cache");
    let downloads = root.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    // Reuse the real weights so only the voices step runs.
    std::fs::copy(cache().join("kokoro-v1_0-int8.onnx"), root.join("kokoro-v1_0-int8.onnx")).unwrap();
    std::fs::write(downloads.join("kokoro-js-1.2.1.tgz"), b"not the real tarball").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kokoro")).args(["--cache", root.to_str().unwrap(), "fetch"]).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sha256 mismatch for"), "{}", stderr(&o));
    assert!(!downloads.join("kokoro-js-1.2.1.tgz").exists(), "the bad file is removed");
}

#[test]
fn voices_list_info_and_mix() {
    let o = kokoro(&["voices", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 54);
    assert!(out.lines().any(|l| l.starts_with("bf_emma") && l.contains("British English") && l.ends_with("female")));

    // The mix written by the CLI equals (2 bella + sky) / 3, element by element.
    let m = tmp("m.bin");
    let o = kokoro(&["voices", "mix", "af_bella(2)+af_sky(1)", "--out", m.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let floats = |p: &Path| -> Vec<f32> {
        std::fs::read(p).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    let (mix, bella, sky) = (floats(&m), floats(&cache().join("voices/af_bella.bin")), floats(&cache().join("voices/af_sky.bin")));
    assert_eq!(mix.len(), 510 * 256);
    for i in 0..mix.len() {
        let want = (2.0 * bella[i] as f64 + sky[i] as f64) / 3.0;
        assert!((mix[i] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "value {i}: {} vs {want}", mix[i]);
    }

    let o = kokoro(&["voices", "info", "af_sky + af_bella(2)"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8(o.stdout).unwrap().contains("key:       af_bella(0.666667)+af_sky(0.333333)"));

    // Issue 12: a mix whose terms cancel is the voice left over, in its key and in its values
    // (`single()` named af_heart but handed back af_sky's values).
    let o = kokoro(&["voices", "info", "af_sky-af_sky+af_heart"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8(o.stdout).unwrap().contains("key:       af_heart\n"));
    let cancelled = tmp("cancelled.bin");
    let o = kokoro(&["voices", "mix", "af_sky-af_sky+af_heart", "--out", cancelled.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(floats(&cancelled), floats(&cache().join("voices/af_heart.bin")));
    let (heart, cancelled) = (tmp("heart.wav"), tmp("cancelled.wav"));
    for (voice, wav) in [("af_heart", &heart), ("af_sky-af_sky+af_heart", &cancelled)] {
        let o = kokoro(&["say", "--phonemes", "hˈI.", "--voice", voice, "--deterministic", "--out", wav.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(wav_samples(&cancelled), wav_samples(&heart));

    // A mix speaks, too.
    let wav = tmp("mix.wav");
    let o = kokoro(&["say", "Hi.", "--voice", "af_bella(2)+af_sky(1)", "--deterministic", "--out", wav.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_voice_specs_exit_2_with_the_position() {
    for (spec, message) in [
        ("af_bella(2", "at character 11: expected ')' after the weight"),
        ("af_bella+../etc", "at character 10: expected a voice name, found '.'"),
        ("../../etc/passwd", "invalid voice name"),
        ("af_bella+zz_nobody", "unknown voice \"zz_nobody\""),
        ("af_bella(1)-af_bella(1)", "cannot be normalized"),
    ] {
        let o = kokoro(&["voices", "mix", spec, "--out", tmp("bad.bin").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{spec}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{spec}: expected {message:?} in {}", stderr(&o));
    }
}

#[test]
fn voices_bench_and_usage_stats() {
    let o = kokoro(&["voices", "bench"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    for needle in ["cache hit (200,000 lookups): p50", "| .npz bundle |", "| safetensors bundle |", "| 8 |"] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    // `say` records usage under the mix's canonical key; `voices stats` reports it.
    let root = tmp("usage-cache");
    std::fs::create_dir_all(root.join("voices")).unwrap();
    for f in ["kokoro-v1_0-int8.safetensors", "kokoro-v1_0-int8.onnx"] {
        std::os::unix::fs::symlink(cache().join(f), root.join(f)).unwrap();
    }
    for v in ["af_bella", "af_sky"] {
        std::fs::copy(cache().join(format!("voices/{v}.bin")), root.join(format!("voices/{v}.bin"))).unwrap();
    }
    let wav = tmp("usage.wav");
    let cache_arg = root.to_str().unwrap();
    for _ in 0..2 {
        let o = kokoro(&["--cache", cache_arg, "say", "Hi.", "--voice", "af_sky + af_bella(2)", "--out", wav.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = kokoro(&["--cache", cache_arg, "voices", "stats", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["voices"]["af_bella(0.666667)+af_sky(0.333333)"]["requests"], 2);
}

#[test]
fn voices_prewarm_reports_progress_and_pins() {
    let o = kokoro(&["voices", "prewarm", "af_heart, bf_emma, af_bella(2)+af_sky(1), af_sky + af_bella(2)", "--budget-mib", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().filter(|l| l.starts_with("event=prewarm")).count(), 4, "{e}");
    assert!(e.contains("done=4 total=4") && e.contains("status=ok"), "{e}");
    // The two spellings of one mix share one entry.
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("cache: 3 entries") && out.contains("af_bella(0.666667)+af_sky(0.333333)"), "{out}");
    assert_eq!(out.lines().filter(|l| l.ends_with("pinned")).count(), 3, "{out}");
    let o = kokoro(&["voices", "prewarm", "af_heart,../etc/passwd"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("1 voice(s) failed to pre-warm: ../etc/passwd"), "{}", stderr(&o));
}

/// Every manifest line of `dir`, by id.
fn manifest(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["id"].as_str().unwrap().to_string(), v))
        .collect()
}

#[test]
fn batch_fails_bad_items_alone_resumes_and_equals_say() {
    let dir = tmp("batch-out");
    let _ = std::fs::remove_dir_all(&dir);
    let input = tmp("batch.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"id": "hello", "text": "Hello there."}"#,
            r#"{"id": "emma", "text": "Good morning.", "voice": "bf_emma", "speed": 1.2}"#,
            r#"{"id": "nobody", "text": "Hi.", "voice": "zz_nobody"}"#,
            r#"{"id": "empty", "text": "   "}"#,
            r#"{"id": "../escape", "text": "Hi."}"#,
            r#"{"id": "hello", "text": "A repeated id."}"#,
            r#"{"id": "fast", "text": "Hi.", "speed": 9}"#,
            r#"not json"#,
            "",
        ]
        .join("\n"),
    )
    .unwrap();
    let args = ["batch", input.to_str().unwrap(), "--out-dir", dir.to_str().unwrap(), "--deterministic", "--workers", "1", "--max-batch", "4"];
    let o = kokoro(&args);
    assert_eq!(o.status.code(), Some(1), "some items failed: {}", stderr(&o));
    assert!(stderr(&o).contains("6 of 8 item(s) failed"), "{}", stderr(&o));
    let m = manifest(&dir);
    assert_eq!(m.len(), 8, "one line per item: {m:?}");
    assert_eq!(m["hello"]["status"], "ok");
    assert_eq!(m["emma"]["file"], "emma.wav");
    assert!(m["emma"]["seconds"].as_f64().unwrap() > 0.3);
    assert_eq!(m["nobody"]["code"], "unknown_voice");
    assert_eq!(m["empty"]["code"], "nothing_to_say");
    assert_eq!(m["line-5"]["code"], "bad_id", "an unsafe id is refused, not used as a path");
    assert_eq!(m["line-6"]["code"], "bad_id", "a repeated id");
    assert_eq!(m["fast"]["code"], "bad_speed");
    assert_eq!(m["line-8"]["code"], "bad_item");
    assert!(!tmp("escape.wav").exists() && !dir.join("../escape.wav").exists());
    let mut files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["emma.wav", "hello.wav", "manifest.jsonl"], "only whole files, no temporary ones");

    // Equal to `say` of the same item.
    let said = tmp("emma-say.wav");
    let o = kokoro(&["say", "Good morning.", "--voice", "bf_emma", "--speed", "1.2", "--deterministic", "--out", said.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(wav_samples(&dir.join("emma.wav")), wav_samples(&said));

    // Resume: done items are skipped (their files untouched), the rest tried again.
    let before = std::fs::metadata(dir.join("hello.wav")).unwrap().modified().unwrap();
    std::fs::remove_file(dir.join("emma.wav")).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = kokoro(&resume);
    assert_eq!(o.status.code(), Some(1));
    // emma (its file gone) and nobody (failed before) are tried again.
    assert!(stderr(&o).contains("resume: 1 item(s) already done, 2 to do"), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(dir.join("hello.wav")).unwrap().modified().unwrap(), before);
    assert_eq!(wav_samples(&dir.join("emma.wav")), wav_samples(&said));
    assert_eq!(manifest(&dir).len(), 8);

    // Plain text: one item per line, ids from line numbers.
    let plain = tmp("batch.txt");
    std::fs::write(&plain, "First line.\n\nThird line.\n").unwrap();
    let out = tmp("batch-plain");
    let o = kokoro(&["batch", plain.to_str().unwrap(), "--out-dir", out.to_str().unwrap(), "--deterministic"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["000001", "000003"]);
    assert!(stderr(&o).contains("tuning: too few items to measure"), "{}", stderr(&o));
}
