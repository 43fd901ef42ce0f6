//! Shared by the golden tests: the tolerances, the golden files and the stage-by-stage check.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::Device;
use kokoro_model::eval::{log_mel_distance, max_abs_diff, relative_error};
use kokoro_model::{ForwardInput, HostTensor, Kokoro, SourceNoise, StyleVector};
use safetensors::SafeTensors;

/// Tolerances on the relative L2 error (docs/validation.md): f32 against f32 math with identical
/// weights and a different operation order. Every stage up to the generator input measures 1e-7 to
/// 4e-6; 1e-4 leaves room for other CPU kernels and GPUs. The spectrum measures 0.9e-3 to 5.2e-3:
/// the generator reads the harmonic source, whose phase is a running sum reaching ~1e4 rad, where an
/// f32 ulp is ~1e-3 rad in both implementations. The spectrum bound was first set at 2e-3 before
/// any measurement and raised to 1e-2 after measuring that cause; the audio bound is the issue's.
pub const TOL_D_EN: f64 = 1e-4;
pub const TOL_D: f64 = 1e-4;
pub const TOL_DURATION_SUMS: f64 = 1e-4;
pub const TOL_F0: f64 = 1e-4;
pub const TOL_N: f64 = 1e-4;
pub const TOL_T_EN: f64 = 1e-4;
pub const TOL_GENERATOR_INPUT: f64 = 1e-4;
pub const TOL_SPECTRUM: f64 = 1e-2;
/// Log-mel distance of our audio to the float reference (the int8 export sits at 0.170).
pub const TOL_LOG_MEL: f64 = 0.05;

/// A voice pack from a `.bin` file (the model takes one row of it).
pub fn read_voice(path: &std::path::Path) -> kokoro_voice::Voice {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    kokoro_voice::Voice::from_bin_bytes(&bytes, &path.display().to_string()).unwrap()
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("KOKORO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/kokoro-burn")
    })
}

/// Loads the cached weights onto `device`.
pub fn load(device: &Device) -> Kokoro {
    let path = std::env::var_os("KOKORO_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("kokoro-v1_0-int8.safetensors"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo run --release -p kokoro-cli -- fetch` first (or set KOKORO_WEIGHTS)",
        path.display()
    );
    Kokoro::load(&path, device).expect("the cached weights load")
}

struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    durations: Vec<u32>,
    ids: Vec<u32>,
    voice: String,
    speed: f32,
}

fn golden(name: &str) -> Golden {
    let path = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../../golden").join(format!("{name}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = HashMap::new();
    let mut durations = Vec::new();
    for (k, v) in st.tensors() {
        if k == "durations" {
            durations = v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32).collect();
        } else {
            let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            tensors.insert(k, (v.shape().to_vec(), data));
        }
    }
    Golden {
        tensors,
        durations,
        ids: serde_json::from_str(&meta["ids"]).unwrap(),
        voice: meta["voice"].clone(),
        speed: meta["speed"].parse().unwrap(),
    }
}

fn transpose_last2(t: &HostTensor) -> Vec<f32> {
    let (r, c) = (t.shape[t.shape.len() - 2], t.shape[t.shape.len() - 1]);
    let mut out = vec![0f32; t.data.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = t.data[i * c + j];
        }
    }
    out
}

/// Runs one golden case on `device` and asserts every stage against its tolerance.
pub fn check(case: &str, kokoro: &Kokoro, device: &Device) {
    check_within(case, kokoro, device, TOL_SPECTRUM, TOL_LOG_MEL);
}

/// [`check`] with other bounds on the generator's output (a lower compute precision there);
/// every stage before it keeps its float32 tolerance.
pub fn check_within(case: &str, kokoro: &Kokoro, device: &Device, tol_spectrum: f64, tol_log_mel: f64) {
    let g = golden(case);
    let voice = read_voice(&cache_dir().join("voices").join(format!("{}.bin", g.voice)));
    let input = ForwardInput::new(g.ids.clone(), StyleVector(voice.style_for(g.ids.len())))
        .with_speed(g.speed)
        .with_noise(SourceNoise::Deterministic)
        .with_intermediates(true);
    let out = kokoro.model.forward(&input, device).unwrap();
    let im = out.intermediates.as_ref().unwrap();

    // Integer durations: identical.
    assert_eq!(out.durations, g.durations, "{case}: durations differ");

    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut stage = |name: &str, ours: &[f32], reference: &[f32], tol: f64| {
        assert_eq!(ours.len(), reference.len(), "{case}/{name}: length {} vs {}", ours.len(), reference.len());
        let rel = relative_error(ours, reference);
        report.push(format!("{name}: rel {rel:.2e} (max abs {:.2e}, tol {tol:.0e})", max_abs_diff(ours, reference)));
        if !(rel <= tol) {
            failures.push(format!("{name} rel {rel:.3e} > {tol:.0e}"));
        }
    };
    let gt = |k: &str| &g.tensors[k].1;
    // d_en: ours [1, 512, T], golden [1, T, 512].
    stage("d_en", &transpose_last2(&im.d_en), gt("d_en_t"), TOL_D_EN);
    stage("d", &im.d.data, gt("d"), TOL_D);
    // Duration sums: sigmoid(logits).sum(-1) of the golden logits.
    let (shape, logits) = &g.tensors["duration_logits"];
    let classes = shape[2];
    let sums: Vec<f32> =
        logits.chunks_exact(classes).map(|row| row.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).sum()).collect();
    stage("duration_sums", &im.duration_sums.data, &sums, TOL_DURATION_SUMS);
    stage("f0", &im.f0.data, gt("f0"), TOL_F0);
    stage("n", &im.n.data, gt("n"), TOL_N);
    stage("t_en", &im.t_en.data, gt("t_en"), TOL_T_EN);
    stage("generator_input", &im.generator_input.data, gt("generator_input"), TOL_GENERATOR_INPUT);
    stage("spectrum", &im.spectrum.data, gt("spectrum"), tol_spectrum);

    // Audio: the export's output is 1.5x torch.istft from sample 10 on (MODEL.md).
    let reference: Vec<f32> = gt("audio")[10..].iter().map(|v| v / 1.5).collect();
    let ours = &out.audio[10..];
    let mel = log_mel_distance(ours, &reference);
    report.push(format!("audio: log-mel distance {mel:.4} (tol {tol_log_mel}), rel {:.2e}", relative_error(ours, &reference)));
    if !(mel < tol_log_mel) {
        failures.push(format!("log-mel distance {mel:.4} >= {tol_log_mel}"));
    }
    eprintln!("[{case}] durations identical ({} frames)\n  {}", out.durations.iter().sum::<u32>(), report.join("\n  "));
    assert!(failures.is_empty(), "{case}: {}", failures.join("; "));
}

