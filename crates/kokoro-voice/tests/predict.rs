//! Predictive loading: a replayed two-week trace with daily patterns, hit rates with and without
//! prefetching; and the background prefetcher's priorities and cancellation.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use kokoro_voice::predict::{Prefetcher, replay, synthetic_trace};
use kokoro_voice::{VOICE_BIN_BYTES, VOICE_LEN, Voice, VoiceCache};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("voice_{i:02}")).collect()
}

#[test]
fn prediction_beats_no_prefetching_on_a_daily_trace() {
    let trace = synthetic_trace(&names(54), 14, 400, 7);
    assert_eq!(trace.len(), 14 * 400);
    for capacity in [4, 8, 16] {
        let plain = replay(&trace, capacity, 0, 0.0);
        let predicted = replay(&trace, capacity, 2, 0.05);
        println!(
            "capacity {capacity:>2} voices: hit rate {:.1} % without prefetching, {:.1} % with prediction ({} prefetch loads, {} cancelled under pressure)",
            100.0 * plain.hit_rate(),
            100.0 * predicted.hit_rate(),
            predicted.prefetch_loads,
            predicted.prefetch_cancelled
        );
        assert!(predicted.hit_rate() > plain.hit_rate(), "capacity {capacity}: {predicted:?} vs {plain:?}");
    }
}

#[test]
fn explicit_requests_go_first_and_newer_predictions_cancel_older_ones() {
    let cache = Arc::new(VoiceCache::new(16 * VOICE_BIN_BYTES));
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let voice = Voice::from_values(vec![0.5; VOICE_LEN], "t").unwrap();
    let prefetcher = Prefetcher::start(
        cache.clone(),
        Arc::new(move |key: &str| {
            if key == "gate" {
                gate.lock().unwrap().recv().unwrap();
            }
            Ok(voice.clone())
        }),
        0.0,
    );
    prefetcher.request("gate"); // holds the worker while the queue fills
    std::thread::sleep(std::time::Duration::from_millis(50));
    prefetcher.predict(&[("old_guess".into(), 0.9)]);
    prefetcher.predict(&[("new_guess".into(), 0.4), ("other_guess".into(), 0.6)]);
    prefetcher.request("asked_for");
    release.send(()).unwrap();
    prefetcher.wait_idle();
    assert_eq!(prefetcher.log(), ["gate", "asked_for", "other_guess", "new_guess"]);
    let stats = prefetcher.stats();
    assert_eq!((stats.explicit_loads, stats.predicted_loads, stats.superseded), (2, 2, 1));
    assert!(!cache.contains("old_guess"));
}

#[test]
fn weak_predictions_are_dropped_when_the_cache_is_full() {
    let cache = Arc::new(VoiceCache::new(2 * VOICE_BIN_BYTES));
    let voice = Voice::from_values(vec![0.5; VOICE_LEN], "t").unwrap();
    let prefetcher = Prefetcher::start(cache.clone(), Arc::new(move |_: &str| Ok(voice.clone())), 0.5);
    prefetcher.request("a");
    prefetcher.request("b");
    prefetcher.wait_idle();
    prefetcher.predict(&[("weak".into(), 0.1), ("strong".into(), 0.8)]);
    prefetcher.wait_idle();
    assert!(cache.contains("strong") && !cache.contains("weak"));
    assert_eq!(prefetcher.stats().under_pressure, 1);
}
