//! The `.pth` importer on arbitrary bytes: an error or a valid weight set, never a panic, and no
//! allocation beyond what the file can back (issue 12; `-rss_limit_mb` catches the latter).
//! `cargo +nightly fuzz run weights_pth seeds/weights_pth -- -max_total_time=120 -max_len=65536`
#![no_main]

use kokoro_model::weights::import_pth_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(weights) = import_pth_bytes(data, "fuzz.pth") {
        // What loading does next, short of building the model.
        weights.validate().expect("the importer returns only whole tensors");
        weights.to_f32();
    }
});
