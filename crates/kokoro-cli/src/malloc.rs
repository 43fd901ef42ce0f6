//! glibc's allocator, tuned for a process that allocates and frees tens of megabytes per layer.
//!
//! By default glibc serves every allocation above its (dynamic, at most 32 MiB) mmap threshold
//! with a fresh `mmap` and returns it with `munmap` on free, so each of the generator's large
//! tensors (44.5 MB for 128 channels x 87 000 steps of a 17 s utterance) costs ~11 000 page
//! faults and as many zeroed pages, every layer, every request. A perf profile of the long
//! utterance had ~12 % of all time in the kernel's page-fault path. Serving those sizes from the
//! heap, and keeping up to `TRIM` of freed memory in it, lets the next layer reuse the same
//! pages: RTF of the long utterance 0.75 -> 0.61 to 0.66 on the reference machine
//! (docs/performance.md), peak RSS unchanged (735 -> 749 MB).
//!
//! `KOKORO_MALLOC=glibc` keeps glibc's defaults (for comparing, or if it ever misbehaves).

/// Allocations up to this size come from the heap (reused) instead of their own mapping.
const MMAP_THRESHOLD: i32 = 1 << 30;
/// Free memory kept at the top of the heap before it is returned to the system.
const TRIM: i32 = 256 << 20;

/// Applies the settings above, before any thread starts.
pub fn tune() {
    if std::env::var_os("KOKORO_MALLOC").is_some_and(|v| v == "glibc") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called from main before any
    // other thread exists.
    unsafe {
        // glibc before 2.35 or so refuses thresholds above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit);
        // then take that largest value it accepts. If both are refused, leave glibc as it was:
        // setting the trim threshold alone would freeze the dynamic mmap threshold at 128 KiB.
        let accepted = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            || libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1;
        if accepted {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM);
        }
    }
}
