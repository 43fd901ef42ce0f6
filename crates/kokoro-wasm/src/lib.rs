//! Kokoro in the browser: `kokoro-engine` (text -> utterances -> model -> audio, the same engine
//! the CLI runs) behind wasm-bindgen, hosted by the npm package's Web Worker (`worker/`).
//!
//! - [`js`]: what crosses to JavaScript (chunks with UTF-16 offsets), platform-neutral and tested
//!   natively.
//! - `bindings` (wasm32 only): `KokoroEngine` for JavaScript. WebGPU through burn-wgpu's
//!   `init_with_setup_async` (its handles give the adapter info and a device-lost signal), the CPU
//!   through burn-flex; weights from the canonical safetensors bytes, dequantized to f32 at load.
//! - `store` (wasm32 only): the voice store trait over the worker's JavaScript store (IndexedDB,
//!   then the network).
//!
//! Crates chosen: `wasm-bindgen` / `js-sys` / `wasm-bindgen-futures` (the bindings and promises),
//! `send_wrapper` (the store trait wants `Send` futures; JavaScript promises are not, and a wasm
//! instance has one thread), `console_error_panic_hook` (panics reach the console with a message).

pub mod js;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod store;
