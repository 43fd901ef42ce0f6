//! `forward_batch` against `forward`: each utterance of a padded batch must get what it gets alone.
//!
//! Mixed lengths (1, a few, ~100 and 510 phoneme ids), four voices, four speeds, seeded and
//! deterministic noise. Durations must be identical; every stage and the audio must agree within
//! the golden tests' tolerances (tests/common): relative L2 error 1e-4 up to the generator input,
//! 1e-2 on the spectrum, log-mel distance 0.05 on the audio. The measured errors are printed.
//! The batch differs from the single pass only in float rounding (other kernel shapes, masked
//! statistics summed in another order).
//!
//! Needs the real weights and voices, like the golden tests. Also prints the time of B separate
//! forwards against one forward_batch of B = 4 on the CPU (ignored: a measurement). Slow: on 2
//! busy cores the mixed CPU batch takes ~6 min (it pads three utterances to 510 ids' 1064 frames).

mod common;

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use burn::tensor::Device;
use kokoro_model::eval::{max_abs_diff, relative_error, try_log_mel_distance};
use kokoro_model::{ForwardInput, ForwardOutput, HostTensor, Kokoro, KokoroConfig, SourceNoise, StyleVector, Vocab};

/// The tests time passes: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn flex_model() -> &'static (Kokoro, Device) {
    static MODEL: OnceLock<(Kokoro, Device)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let device = Device::flex();
        (common::load(&device), device)
    })
}

/// A pangram's phonemes, repeated and cut to `n` ids.
fn ids(n: usize) -> Vec<u32> {
    let text = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ, ənd hˈi ɹˈæn ˈɔf ˈɪntu ðə wˈʊdz. ";
    let vocab = Vocab::from_config(&KokoroConfig::v1());
    let one = vocab.encode(text).ids;
    one.iter().copied().cycle().take(n).collect()
}

fn input(n: usize, voice: &str, speed: f32, noise: SourceNoise) -> ForwardInput {
    let v = common::read_voice(&common::cache_dir().join("voices").join(format!("{voice}.bin")));
    let ids = ids(n);
    ForwardInput::new(ids.clone(), StyleVector(v.style_for(ids.len())))
        .with_speed(speed)
        .with_noise(noise)
        .with_intermediates(true)
}

/// The mixed batch: 1, 5, 100 and 510 ids.
fn mixed() -> Vec<ForwardInput> {
    vec![
        input(5, "am_adam", 1.3, SourceNoise::Deterministic),
        input(510, "af_heart", 1.0, SourceNoise::Seeded(42)),
        input(1, "bf_emma", 0.8, SourceNoise::Seeded(7)),
        input(100, "af_bella", 1.1, SourceNoise::Seeded(0)),
    ]
}

/// Asserts that `batched` is `single` within the golden tolerances; returns a report line.
fn compare(name: &str, batched: &ForwardOutput, single: &ForwardOutput) -> String {
    assert_eq!(batched.durations, single.durations, "{name}: durations differ");
    assert_eq!(batched.audio.len(), single.audio.len(), "{name}: audio lengths differ");
    let (b, s) = (batched.intermediates.as_ref().unwrap(), single.intermediates.as_ref().unwrap());
    let mut lines = vec![format!("{name}: durations identical ({} frames)", single.durations.iter().sum::<u32>())];
    let mut failures = Vec::new();
    let mut stage = |stage: &str, x: &HostTensor, y: &HostTensor, tol: f64| {
        assert_eq!(x.shape, y.shape, "{name}/{stage}: shapes differ");
        let rel = relative_error(&x.data, &y.data);
        lines.push(format!("  {stage}: rel {rel:.2e} (max abs {:.2e}, tol {tol:.0e})", max_abs_diff(&x.data, &y.data)));
        if !(rel <= tol) {
            failures.push(format!("{stage} rel {rel:.3e} > {tol:.0e}"));
        }
    };
    stage("d_en", &b.d_en, &s.d_en, common::TOL_D_EN);
    stage("d", &b.d, &s.d, common::TOL_D);
    stage("duration_sums", &b.duration_sums, &s.duration_sums, common::TOL_DURATION_SUMS);
    stage("en", &b.en, &s.en, common::TOL_D);
    stage("f0", &b.f0, &s.f0, common::TOL_F0);
    stage("n", &b.n, &s.n, common::TOL_N);
    stage("t_en", &b.t_en, &s.t_en, common::TOL_T_EN);
    stage("asr", &b.asr, &s.asr, common::TOL_T_EN);
    stage("generator_input", &b.generator_input, &s.generator_input, common::TOL_GENERATOR_INPUT);
    stage("spectrum", &b.spectrum, &s.spectrum, common::TOL_SPECTRUM);
    let rel = relative_error(&batched.audio, &single.audio);
    let max = max_abs_diff(&batched.audio, &single.audio);
    // A log-mel spectrogram needs 513 samples; one id gives a few frames of 600 samples.
    match try_log_mel_distance(&batched.audio, &single.audio) {
        Ok(mel) => {
            lines.push(format!("  audio: log-mel distance {mel:.2e} (tol {}), rel {rel:.2e}, max abs {max:.2e}", common::TOL_LOG_MEL));
            if !(mel < common::TOL_LOG_MEL) {
                failures.push(format!("log-mel distance {mel:.4} >= {}", common::TOL_LOG_MEL));
            }
        }
        Err(e) => panic!("{name}: {e}"),
    }
    assert!(failures.is_empty(), "{name}: {}", failures.join("; "));
    lines.join("\n")
}

/// Runs each input alone and all of them as one batch; compares; returns (separate, batched) seconds.
fn check_batch(kokoro: &Kokoro, device: &Device, inputs: &[ForwardInput], label: &str) -> (f64, f64) {
    let start = Instant::now();
    let singles: Vec<ForwardOutput> = inputs.iter().map(|i| kokoro.model.forward(i, device).unwrap()).collect();
    let separate = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let batched = kokoro.model.forward_batch(inputs, device).unwrap();
    let together = start.elapsed().as_secs_f64();
    assert_eq!(batched.len(), inputs.len());
    for (k, (b, s)) in batched.iter().zip(&singles).enumerate() {
        let name = format!("{label} #{k} ({} ids, speed {}, {:?})", inputs[k].ids.len(), inputs[k].speed, inputs[k].noise);
        eprintln!("{}", compare(&name, b, s));
    }
    (separate, together)
}

#[test]
fn batch_matches_single_passes_on_flex() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (kokoro, device) = flex_model();
    let inputs = mixed();
    let (separate, together) = check_batch(kokoro, device, &inputs, "flex mixed");
    eprintln!("flex, mixed lengths 5/510/1/100 ids: {separate:.2} s for 4 forwards, {together:.2} s for one forward_batch of 4");
}

#[test]
fn batch_of_one_matches_forward_on_flex() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (kokoro, device) = flex_model();
    check_batch(kokoro, device, &[input(23, "af_sky", 1.0, SourceNoise::Seeded(3))], "flex one");
}

/// A measurement, not a check: `cargo test --release -p kokoro-model --test batched -- --ignored`.
/// (The engine's benchmark, `kokoro bench --engine`, measures batching on and off end to end.)
#[test]
#[ignore = "timing only; run on a quiet machine"]
fn batch_of_four_timing_on_flex() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (kokoro, device) = flex_model();
    // Similar lengths (the case batching is for): 80 to 100 ids.
    let inputs: Vec<ForwardInput> = [(80, "af_heart"), (90, "am_adam"), (95, "bf_emma"), (100, "af_bella")]
        .into_iter()
        .enumerate()
        .map(|(k, (n, v))| input(n, v, 1.0, SourceNoise::Seeded(k as u64)).with_intermediates(false))
        .collect();
    // Warm-up (allocator, thread pool), then the measurement: B separate forwards vs one batch.
    kokoro.model.forward(&inputs[0], device).unwrap();
    let start = Instant::now();
    let singles: Vec<ForwardOutput> = inputs.iter().map(|i| kokoro.model.forward(i, device).unwrap()).collect();
    let separate = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let batched = kokoro.model.forward_batch(&inputs, device).unwrap();
    let together = start.elapsed().as_secs_f64();
    for (b, s) in batched.iter().zip(&singles) {
        assert_eq!(b.durations, s.durations);
        assert_eq!(b.audio.len(), s.audio.len());
    }
    let audio_s: f64 = singles.iter().map(|o| o.audio.len() as f64 / 24_000.0).sum();
    eprintln!(
        "flex, B = 4 (80/90/95/100 ids, {audio_s:.1} s of audio): {separate:.2} s for 4 forwards, {together:.2} s for one forward_batch ({:.2}x)",
        separate / together
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn batch_matches_single_passes_on_wgpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::wgpu_options().init().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
    let kokoro = common::load(&device);
    // Shorter than the CPU batch: lavapipe (CI's adapter) took 11 min for 5/60/1 ids on 2 busy cores.
    let inputs = vec![
        input(5, "am_adam", 1.3, SourceNoise::Deterministic),
        input(24, "af_heart", 1.0, SourceNoise::Seeded(42)),
        input(1, "bf_emma", 0.8, SourceNoise::Seeded(7)),
    ];
    let (separate, together) = check_batch(&kokoro, &device, &inputs, "wgpu mixed");
    eprintln!("wgpu, mixed lengths 5/24/1 ids: {separate:.2} s for 3 forwards, {together:.2} s for one forward_batch of 3");
}

/// Polls a future to completion (flex resolves its reads at once; no executor needed).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[test]
fn async_batch_matches_sync_batch_on_flex() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (kokoro, device) = flex_model();
    let inputs = vec![
        input(12, "af_nicole", 1.0, SourceNoise::Seeded(9)),
        input(3, "am_echo", 1.5, SourceNoise::Deterministic),
    ];
    let sync = kokoro.model.forward_batch(&inputs, device).unwrap();
    let asynced = block_on(kokoro.model.forward_batch_async(&inputs, device)).unwrap();
    for (a, s) in asynced.iter().zip(&sync) {
        assert_eq!(a.durations, s.durations);
        assert_eq!(a.audio, s.audio, "the same pass, bit for bit");
    }
    assert!(block_on(kokoro.model.forward_batch_async(&[], device)).unwrap().is_empty());
}
