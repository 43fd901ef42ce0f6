//! The canonical safetensors reader on arbitrary bytes: an error or a valid weight set, never a
//! panic (issue 12).
//! `cargo +nightly fuzz run weights_canonical seeds/weights_canonical -- -max_total_time=120 -max_len=65536`
#![no_main]

use kokoro_model::weights::read_canonical_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(weights) = read_canonical_bytes(data, "fuzz.safetensors") {
        // What loading does next, short of building the model.
        weights.validate().expect("the reader returns only whole tensors");
        weights.to_f32();
    }
});
