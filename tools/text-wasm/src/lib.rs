//! The text front end as a bare wasm module (no bindings), to measure its download size and check
//! that it runs: `scripts/text-wasm-size.sh` builds it, compresses it and calls it from Node.

use kokoro_text::{Dialect, FrontEnd};

/// Reserves `len` bytes for the caller to write text into.
#[unsafe(no_mangle)]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Phonemizes `len` bytes of UTF-8 at `ptr` (from [`alloc`]); returns the number of phonemes, or
/// -1 when the bytes are not UTF-8, -2 when this build leaves the dialect out.
#[unsafe(no_mangle)]
pub extern "C" fn phonemize_len(ptr: *mut u8, len: usize, british: bool) -> isize {
    // SAFETY: `ptr` came from `alloc(len)` and the caller wrote `len` bytes there.
    let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
    let Ok(text) = String::from_utf8(bytes) else { return -1 };
    let Ok(front) = FrontEnd::new(if british { Dialect::EnGb } else { Dialect::EnUs }) else { return -2 };
    front.chunks(&text).filter_map(Result::ok).map(|c| c.len()).sum::<usize>() as isize
}
