//! Issue 12: memory a hostile voice file can make the readers take, measured by a counting global
//! allocator (its own test binary, one test, so nothing else allocates meanwhile). Every reader
//! must stay within a few times the file's size plus a few voices, however the file lies.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::*;
use kokoro_voice::VOICE_BIN_BYTES;
use kokoro_voice::format::{read_voices, write_npz};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, SeqCst) + bytes;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Most bytes live at once while reading `bytes`, beyond what was live before, and whether the
/// read failed.
fn peak_of_read(bytes: &[u8], what: &str) -> (usize, bool) {
    let before = LIVE.load(SeqCst);
    PEAK.store(before, SeqCst);
    let failed = read_voices(bytes, "v", what).is_err();
    (PEAK.load(SeqCst) - before, failed)
}

#[test]
fn hostile_files_cost_at_most_a_few_times_their_size() {
    let voice = row_voice();
    let zeros = vec![0u8; 64 << 20];
    let mut lying_npz = write_npz(&[("v".to_string(), voice.clone())]).unwrap();
    lie_about_size(&mut lying_npz, 0xFFFF_FFF0);
    let mut lying_pt = pt_of(&voice_pickle(), &voice.to_bin_bytes(), false);
    lie_about_size(&mut lying_pt, 0xFFFF_FFF0);
    let cases = [
        ("npz whose header claims 4 GB", lying_npz),
        ("pt whose header claims 4 GB", lying_pt),
        ("npz bomb (64 MiB of zeros)", zip_of(&[("v.npy", &zeros)], true)),
        ("pt storage bomb", pt_of(&voice_pickle(), &zeros, true)),
        ("pt pickle bomb", pt_of(&zeros, b"", true)),
        // 20 rounds: 2^20 values if memo entries were copied; `hostile.rs` runs 250.
        ("pickle memo doubling", pt_of(&doubling_pickle(20), b"", false)),
        ("one tensor named 100 times", pt_of(&many_names_one_tensor(100), &voice.to_bin_bytes(), true)),
    ];
    drop(zeros);
    for (what, bytes) in &cases {
        let (peak, failed) = peak_of_read(bytes, what);
        // The readers' allowance (8x the file plus a few voices), with room for Vec doubling.
        let bound = 2 * (8 * bytes.len() + 6 * VOICE_BIN_BYTES);
        assert!(peak <= bound, "{what}: {} bytes took {peak} bytes at peak, more than {bound}", bytes.len());
        assert!(failed, "{what} was read");
    }
}
