//! The ONNX importer on arbitrary bytes: an error or a valid weight set, never a panic (issue 12).
//! `cargo +nightly fuzz run weights_onnx seeds/weights_onnx -- -max_total_time=120 -max_len=65536`
#![no_main]

use kokoro_model::weights::import_onnx_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(weights) = import_onnx_bytes(data, "fuzz.onnx") {
        // What loading does next, short of building the model.
        weights.validate().expect("the importer returns only whole tensors");
        weights.to_f32();
    }
});
