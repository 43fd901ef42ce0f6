//! What the server's integration tests share: the real engine (int8 weights, CPU) once per test
//! binary, from the cache `kokoro fetch` fills.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kokoro_engine::{Backend, Engine};
use kokoro_model::Kokoro;
use kokoro_voice::DirStore;

pub fn cache() -> PathBuf {
    std::env::var_os("KOKORO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kokoro-burn"))
}

/// One engine for the whole test binary: loading the weights takes a second or two.
pub fn engine() -> Arc<Engine<DirStore>> {
    static ENGINE: OnceLock<Arc<Engine<DirStore>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let device = burn::tensor::Device::flex();
            let kokoro = Kokoro::load(&cache().join("kokoro-v1_0-int8.safetensors"), &device)
                .expect("weights: run `kokoro fetch` (scripts/test.sh does)");
            Arc::new(Engine::new(kokoro, device, Backend::Cpu, DirStore { dir: cache().join("voices") }, 8 * 522_240))
        })
        .clone()
}
