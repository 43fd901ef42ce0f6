//! Kokoro in the browser: the engine (text -> chunks -> model -> audio) behind wasm-bindgen, hosted
//! by the npm package's Web Worker (`worker/`).
//!
//! - [`engine`]: platform-neutral (tested natively): the text front end per dialect, voices by
//!   name or mix through [`kokoro_voice::VoiceCache`] and an async [`kokoro_voice::VoiceStore`],
//!   one forward pass per chunk (awaited reads on WebGPU, blocking on the CPU).
//! - `bindings` (wasm32 only): `KokoroEngine` for JavaScript. WebGPU through burn-wgpu's
//!   `init_with_setup_async` (its handles give the adapter info and a device-lost signal), the CPU
//!   through burn-flex; weights from the canonical safetensors bytes, dequantized to f32 at load.
//! - `store` (wasm32 only): the voice store trait over the worker's JavaScript store (IndexedDB,
//!   then the network).
//!
//! Crates chosen: `wasm-bindgen` / `js-sys` / `wasm-bindgen-futures` (the bindings and promises),
//! `send_wrapper` (the store trait wants `Send` futures; JavaScript promises are not, and a wasm
//! instance has one thread), `console_error_panic_hook` (panics reach the console with a message).

pub mod engine;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod store;

pub use engine::{Backend, ChunkInfo, Engine, EngineError};
