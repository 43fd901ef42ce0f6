//! The golden comparison with the generator's resblock convolutions in int8
//! (`ComputePrecision::Int8`, AVX512_VNNI). Its own test binary because the precision is a
//! process-wide setting, which would leak into the float32 cases of `golden.rs`.
//!
//! Everything before the generator runs in float32, so those stages keep golden.rs's
//! tolerances and the durations stay identical. The generator's output gets bounds of its own,
//! chosen before the first measurement: spectrum 5e-2 relative, log-mel distance 0.10 (the int8
//! ONNX export, the speed reference, is at 0.170 on "Hello world."; docs/validation.md).

mod common;

use std::sync::OnceLock;

use burn::tensor::Device;
use kokoro_model::{ComputePrecision, Kokoro};

const TOL_SPECTRUM_INT8: f64 = 5e-2;
const TOL_LOG_MEL_INT8: f64 = 0.10;

/// The model with int8 resblocks, or `None` (and a note) on a CPU without AVX512_VNNI.
fn model() -> Option<&'static (Kokoro, Device)> {
    if !ComputePrecision::Int8.available() {
        eprintln!("skipped: this CPU has no AVX512_VNNI, so int8 falls back to float32");
        return None;
    }
    static MODEL: OnceLock<(Kokoro, Device)> = OnceLock::new();
    Some(MODEL.get_or_init(|| {
        kokoro_model::set_compute_precision(ComputePrecision::Int8);
        let device = Device::flex();
        (common::load(&device), device)
    }))
}

fn check(case: &str) {
    if let Some((kokoro, device)) = model() {
        assert_eq!(kokoro_model::compute_precision(), ComputePrecision::Int8);
        common::check_within(case, kokoro, device, TOL_SPECTRUM_INT8, TOL_LOG_MEL_INT8);
    }
}

#[test]
fn golden_int8_hello_af_heart() {
    check("hello_af_heart");
}

#[test]
fn golden_int8_fox_am_adam() {
    check("fox_am_adam");
}

#[test]
fn golden_int8_question_bf_emma() {
    check("question_bf_emma");
}

#[test]
fn golden_int8_fast_af_bella() {
    check("fast_af_bella");
}
