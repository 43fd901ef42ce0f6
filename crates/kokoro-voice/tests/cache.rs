//! The voice cache against a reference model (proptest), and single-flight under concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use kokoro_voice::{VOICE_BIN_BYTES, VOICE_LEN, Voice, VoiceCache};
use proptest::prelude::*;

fn voice(seed: usize) -> Voice {
    Voice::from_values((0..VOICE_LEN).map(|i| ((i + seed) % 97) as f32 / 97.0).collect(), "test").unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Pin(usize),
    Unpin(usize),
    Resize(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..6).prop_map(Op::Get),
        2 => (0usize..6).prop_map(Op::Pin),
        1 => (0usize..6).prop_map(Op::Unpin),
        1 => (0usize..5).prop_map(Op::Resize),
    ]
}

/// The reference: keys in recency order (least recent first) with their pinned flag.
struct Model {
    order: Vec<(usize, bool)>,
    capacity: usize,
    hits: u64,
}

impl Model {
    fn evict_one(&mut self) {
        let at = self.order.iter().position(|(_, p)| !p).unwrap_or(0);
        self.order.remove(at);
    }

    fn get(&mut self, k: usize) {
        if let Some(at) = self.order.iter().position(|(key, _)| *key == k) {
            let e = self.order.remove(at);
            self.order.push(e);
            self.hits += 1;
            return;
        }
        if self.capacity == 0 {
            return;
        }
        while self.order.len() >= self.capacity {
            self.evict_one();
        }
        self.order.push((k, false));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn behaves_like_the_reference_lru(ops in prop::collection::vec(op(), 1..80), capacity in 0usize..5) {
        // A little slack in the budget, so that "fits" is not an exact-equality edge.
        let cache = VoiceCache::new(capacity * VOICE_BIN_BYTES + 100);
        let mut model = Model { order: Vec::new(), capacity, hits: 0 };
        for op in ops {
            match op {
                Op::Get(k) => {
                    model.get(k);
                    cache.get_or_load(&format!("v{k}"), || Ok(voice(k))).unwrap();
                }
                Op::Pin(k) => {
                    model.get(k);
                    if let Some(e) = model.order.iter_mut().find(|(key, _)| *key == k) { e.1 = true; }
                    cache.pin(&format!("v{k}"), || Ok(voice(k))).unwrap();
                }
                Op::Unpin(k) => {
                    if let Some(e) = model.order.iter_mut().find(|(key, _)| *key == k) { e.1 = false; }
                    cache.unpin(&format!("v{k}"));
                }
                Op::Resize(n) => {
                    model.capacity = n;
                    while model.order.len() > n { model.evict_one(); }
                    cache.resize(n * VOICE_BIN_BYTES + 100);
                }
            }
            let snap = cache.snapshot();
            // The budget is never exceeded.
            prop_assert!(snap.bytes <= snap.budget, "{} > {}", snap.bytes, snap.budget);
            prop_assert_eq!(snap.bytes, snap.entries.len() * VOICE_BIN_BYTES);
            // Same entries, same recency order, same pins as the reference.
            let got: Vec<(String, bool)> = snap.entries.iter().map(|e| (e.key.clone(), e.pinned)).collect();
            let want: Vec<(String, bool)> = model.order.iter().rev().map(|(k, p)| (format!("v{k}"), *p)).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(snap.stats.hits, model.hits);
        }
    }
}

#[test]
fn pinned_voices_survive_pressure_until_the_budget_shrinks_below_them() {
    let cache = VoiceCache::new(3 * VOICE_BIN_BYTES);
    cache.pin("af_heart", || Ok(voice(0))).unwrap();
    for k in 1..20 {
        cache.get_or_load(&format!("v{k}"), || Ok(voice(k))).unwrap();
    }
    assert!(cache.contains("af_heart"));
    cache.resize(VOICE_BIN_BYTES);
    assert!(cache.contains("af_heart"), "the pinned voice fits the smaller budget");
    cache.resize(VOICE_BIN_BYTES / 2);
    assert!(!cache.contains("af_heart"), "a budget below the pinned voice evicts it");
    assert_eq!(cache.snapshot().bytes, 0);
}

#[test]
fn concurrent_requests_for_one_voice_cause_one_load() {
    let cache = Arc::new(VoiceCache::new(8 * VOICE_BIN_BYTES));
    let loads = Arc::new(AtomicUsize::new(0));
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (cache, loads, barrier) = (cache.clone(), loads.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache
                    .get_or_load("af_bella", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        Ok(voice(7))
                    })
                    .unwrap()
            })
        })
        .collect();
    let voices: Vec<Voice> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for {threads} concurrent requests");
    assert!(voices.iter().all(|v| *v == voice(7)));
    let stats = cache.snapshot().stats;
    assert_eq!((stats.misses, stats.loads, stats.hits + stats.coalesced), (1, 1, threads as u64 - 1));
}

#[test]
fn a_failed_load_is_not_cached_and_waiters_retry() {
    let cache = VoiceCache::new(4 * VOICE_BIN_BYTES);
    let e = cache.get_or_load("zz", || Err(kokoro_voice::VoiceError::Unknown("zz".into()))).unwrap_err();
    assert!(e.to_string().contains("unknown voice"));
    assert!(!cache.contains("zz"));
    cache.get_or_load("zz", || Ok(voice(1))).unwrap();
    let stats = cache.snapshot().stats;
    assert_eq!((stats.load_failures, stats.loads), (1, 1));
}
