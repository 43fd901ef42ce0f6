//! Stage-by-stage comparison with the float reference of the int8 ONNX export.
//!
//! The golden files in `golden/` come from `scripts/make_goldens.py` (see its header to regenerate):
//! onnxruntime running the int8 graph with every quantized operator replaced by its float twin on
//! the same dequantized weights that the canonical file stores. This crate computes in f32 with
//! those weights, so differences are float rounding and operation order only.
//!
//! Needs the real weights and voices: `cargo run -p kokoro-cli -- fetch` (or set KOKORO_CACHE to a
//! fetched cache, KOKORO_WEIGHTS to another weight file). The README's test command fetches first.

mod common;

use std::sync::OnceLock;

use burn::tensor::Device;
use kokoro_model::Kokoro;

/// One model for all cases (they run in parallel threads).
fn model() -> &'static (Kokoro, Device) {
    static MODEL: OnceLock<(Kokoro, Device)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let device = Device::flex();
        (common::load(&device), device)
    })
}

#[test]
fn golden_hello_af_heart() {
    let (kokoro, device) = model();
    common::check("hello_af_heart", kokoro, device);
}

#[test]
fn golden_fox_am_adam() {
    let (kokoro, device) = model();
    common::check("fox_am_adam", kokoro, device);
}

#[test]
fn golden_question_bf_emma() {
    let (kokoro, device) = model();
    common::check("question_bf_emma", kokoro, device);
}

#[test]
fn golden_fast_af_bella() {
    let (kokoro, device) = model();
    common::check("fast_af_bella", kokoro, device);
}
