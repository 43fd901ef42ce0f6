//! The scheduler over the real engine (int8 weights, CPU): priorities and aging, cancellation,
//! deadlines, backpressure, order, the response cache, and threads submitting and cancelling at random.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kokoro_engine::{
    Backend, Batching, ChunkOptions, Engine, EngineError, Priority, Request, Scheduler, SchedulerConfig, SourceNoise, SpokenChunk, Stream,
};
use kokoro_model::Kokoro;
use kokoro_voice::DirStore;

fn cache() -> PathBuf {
    std::env::var_os("KOKORO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kokoro-burn"))
}

fn engine() -> Arc<Engine<DirStore>> {
    let device = burn::tensor::Device::flex();
    let kokoro = Kokoro::load(&cache().join("kokoro-v1_0-int8.safetensors"), &device)
        .expect("weights: run `kokoro fetch` (scripts/test.sh does)");
    Arc::new(Engine::new(kokoro, device, Backend::Cpu, DirStore { dir: cache().join("voices") }, 8 * 522_240))
}

fn unpacked() -> ChunkOptions {
    ChunkOptions { pack_sentences: false, ..ChunkOptions::default() }
}

/// One batch at a time, no waiting for company, no cache: order is easy to see.
fn serial() -> SchedulerConfig {
    SchedulerConfig { max_batch: 1, max_wait: Duration::ZERO, workers: 1, response_cache_bytes: 0, ..SchedulerConfig::default() }
}

/// Twelve short sentences: twelve chunks unpacked.
const TWELVE: &str = "One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten. Eleven. Twelve.";

/// One sentence of about four seconds of audio: a chunk that keeps the worker busy for a while
/// (at least half a second even on a fast machine; the tests check it is still running where it matters).
fn blocker() -> Request {
    Request::text("The quick brown fox jumps over the lazy dog, and the dog does not even notice", "af_heart")
}

/// Reads a stream on its own thread: each chunk's index and arrival time, and the error that ended it.
fn drain(stream: Stream) -> JoinHandle<(Vec<usize>, Vec<Instant>, Option<EngineError>)> {
    std::thread::spawn(move || {
        let (mut indices, mut times, mut error) = (Vec::new(), Vec::new(), None);
        for chunk in stream {
            match chunk {
                Ok(c) => {
                    indices.push(c.index);
                    times.push(Instant::now());
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        (indices, times, error)
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn interactive_goes_first_aging_lifts_bulk_and_without_priorities_it_is_first_come() {
    let e = engine();
    let short = |p| Request::text("Hi.", "af_heart").priority(p);

    // Aging far away: an interactive request submitted after a bulk one runs before it.
    let s = Scheduler::new(e.clone(), SchedulerConfig { aging: Duration::from_secs(600), ..serial() });
    let busy = drain(s.submit(blocker()).unwrap());
    wait_until("the blocker is in flight", || s.stats().in_flight == 1);
    let bulk = drain(s.submit(short(Priority::Bulk)).unwrap());
    let default = drain(s.submit(short(Priority::Default)).unwrap());
    let interactive = drain(s.submit(short(Priority::Interactive)).unwrap());
    assert_eq!(s.stats().queued, [1, 1, 1], "all three wait behind the blocker");
    let at = |h: JoinHandle<(Vec<usize>, Vec<Instant>, Option<EngineError>)>| {
        let (i, t, e) = h.join().unwrap();
        assert!(e.is_none(), "{e:?}");
        assert_eq!(i, [0]);
        t[0]
    };
    let (bulk, default, interactive) = (at(bulk), at(default), at(interactive));
    assert!(interactive < default && default < bulk, "interactive, then default, then bulk");
    busy.join().unwrap();

    // Aging 50 ms: a bulk chunk that waited more than two agings outranks a fresh interactive one.
    let s = Scheduler::new(e.clone(), SchedulerConfig { aging: Duration::from_millis(50), ..serial() });
    let busy = drain(s.submit(blocker()).unwrap());
    wait_until("the blocker is in flight", || s.stats().in_flight == 1);
    let bulk = drain(s.submit(short(Priority::Bulk)).unwrap());
    std::thread::sleep(Duration::from_millis(150));
    let interactive = drain(s.submit(short(Priority::Interactive)).unwrap());
    assert_eq!(s.stats().in_flight, 1, "precondition: the blocker still runs (else the test shows nothing)");
    let (bulk, interactive) = (at(bulk), at(interactive));
    assert!(bulk < interactive, "the aged bulk chunk went first");
    busy.join().unwrap();

    // Priorities off: first come, first served.
    let s = Scheduler::new(e, SchedulerConfig { priorities: false, aging: Duration::from_secs(600), ..serial() });
    let busy = drain(s.submit(blocker()).unwrap());
    wait_until("the blocker is in flight", || s.stats().in_flight == 1);
    let bulk = drain(s.submit(short(Priority::Bulk)).unwrap());
    let interactive = drain(s.submit(short(Priority::Interactive)).unwrap());
    let (bulk, interactive) = (at(bulk), at(interactive));
    assert!(bulk < interactive, "in the order of submission");
    busy.join().unwrap();
}

#[test]
fn cancelling_or_dropping_frees_the_queue_at_once_and_stops_after_the_chunk_in_flight() {
    let e = engine();
    for drop_it in [false, true] {
        let s = Scheduler::new(e.clone(), serial());
        let mut stream = s.submit(Request::text(TWELVE, "af_heart").chunking(unpacked())).unwrap();
        let first = stream.next().unwrap().unwrap();
        assert_eq!(first.index, 0);
        let p = stream.progress();
        assert_eq!((p.chunks_done, p.chunks_total, p.finished), (1, None, false), "twelve chunks, planned two ahead");
        assert!(p.input_done > 0 && p.input_done < p.input_total);
        assert!(p.eta.is_some_and(|eta| eta > Duration::ZERO), "time left from the measured rate: {p:?}");
        assert!(s.stats().queued[1] >= 1, "the next chunks wait in the queue");

        let done_before = s.stats().chunks;
        if drop_it {
            drop(stream);
        } else {
            stream.cancel();
        }
        let stats = s.stats();
        assert_eq!((stats.queued, stats.open_requests, stats.cancelled), ([0, 0, 0], 0, 1), "the queue is empty at once");
        wait_until("the chunk in flight is done", || s.stats().in_flight == 0);
        std::thread::sleep(Duration::from_millis(300));
        let stats = s.stats();
        assert!(stats.chunks <= done_before + 1, "at most the chunk in flight finished after the cancel: {stats:?}");
        assert_eq!(stats.held_audio_bytes, 0, "its audio no longer counts as held");
    }
}

#[test]
fn past_its_deadline_a_request_fails_with_a_timeout() {
    let s = Scheduler::new(engine(), serial());
    let busy = drain(s.submit(blocker()).unwrap());
    wait_until("the blocker is in flight", || s.stats().in_flight == 1);
    let late = s.submit(Request::text("Hi.", "af_heart").deadline(Instant::now() + Duration::from_millis(50))).unwrap();
    let (indices, _, error) = drain(late).join().unwrap();
    assert!(indices.is_empty());
    let error = error.expect("a timeout");
    assert_eq!(error.code(), "timeout", "{error}");
    assert!(!error.is_input());
    assert_eq!(s.stats().timed_out, 1);
    assert_eq!(s.stats().queued, [0, 0, 0], "its chunk left the queue");
    let past = s.submit(Request::text("Hi.", "af_heart").deadline(Instant::now()));
    assert_eq!(past.err().map(|e| e.code()), Some("timeout"));
    busy.join().unwrap();
}

#[test]
fn a_full_queue_or_held_audio_refuses_at_once_with_when_to_retry() {
    let e = engine();
    let s = Scheduler::new(e.clone(), SchedulerConfig { max_queued_chunks: 2, max_requests: 10, ..serial() });
    let busy = s.submit(blocker()).unwrap();
    wait_until("the blocker is in flight", || s.stats().in_flight == 1);
    let mut queued = Vec::new();
    let refused = loop {
        match s.submit(Request::text("Hi.", "af_heart")) {
            Ok(stream) => queued.push(stream),
            Err(e) => break e,
        }
        assert!(queued.len() <= 2, "the queue holds two chunks");
    };
    assert_eq!(queued.len(), 2);
    let EngineError::Overloaded { retry_after } = refused else { panic!("{refused:?}") };
    assert!((1..=60).contains(&retry_after.as_secs()), "{retry_after:?}");
    assert_eq!(EngineError::Overloaded { retry_after }.code(), "overloaded");
    assert_eq!(s.stats().rejected, 1);
    busy.cancel();
    drop(queued);
    assert!(s.submit(Request::text("Hi.", "af_heart")).is_ok(), "room again once the queue drained");
    drop(s);

    // Audio finished but not read counts against the budget.
    let s = Scheduler::new(e, SchedulerConfig { max_held_audio_bytes: 1, ..serial() });
    let mut unread = s.submit(Request::text("Hi.", "af_heart")).unwrap();
    wait_until("its audio is held", || s.stats().held_audio_bytes > 0);
    assert_eq!(s.submit(Request::text("Hi.", "af_heart")).err().map(|e| e.code()), Some("overloaded"));
    assert!(unread.next().unwrap().is_ok());
    assert_eq!(s.stats().held_audio_bytes, 0);
    assert!(s.submit(Request::text("Hi.", "af_heart")).is_ok());
}

#[test]
fn streams_equal_the_engine_alone_and_a_repeat_comes_from_the_cache() {
    let e = engine();
    let text = "Hello there. This is the second sentence, a little longer than the first.";
    let direct: Vec<SpokenChunk> = {
        let dialect = e.dialect(None, "af_heart").unwrap();
        let voice = pollster::block_on(e.voice("af_heart")).unwrap();
        e.plan(text, dialect, unpacked())
            .unwrap()
            .map(|u| e.synthesize(&u.unwrap(), &voice, 1.0, SourceNoise::Deterministic).unwrap())
            .collect()
    };
    assert_eq!(direct.len(), 2);
    let s = Scheduler::new(
        e,
        SchedulerConfig { max_batch: 4, max_wait: Duration::from_millis(5), response_cache_bytes: 16 << 20, ..SchedulerConfig::default() },
    );
    let request = Request::text(text, "af_heart").chunking(unpacked());
    let stream = s.submit(request.clone()).unwrap();
    let chunks = stream.collect_audio().unwrap();
    assert_eq!(chunks.len(), 2);
    for (a, b) in chunks.iter().zip(&direct) {
        assert_eq!(a.index, b.index);
        assert_eq!(a.durations, b.durations);
        assert_eq!(a.audio, b.audio, "the scheduler's audio is the engine's, bit for bit");
    }

    let again = s.submit(request.clone()).unwrap();
    let p = again.progress();
    assert!(p.finished && p.chunks_total == Some(2) && p.chunks_done == 2 && p.input_done == p.input_total);
    let cached = again.collect_audio().unwrap();
    assert_eq!(cached.iter().map(|c| &c.audio).collect::<Vec<_>>(), chunks.iter().map(|c| &c.audio).collect::<Vec<_>>());
    assert_eq!(s.stats().cache_hits, 1);
    // A different speed is a different response.
    s.submit(request.speed(1.1)).unwrap().collect_audio().unwrap();
    let stats = s.response_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 2, 2));
    assert_eq!(s.stats().cache_hits, 1);
}

#[test]
fn with_batching_on_similar_chunks_share_one_pass_each_as_spoken_alone() {
    let e = engine();
    let texts = ["Good morning.", "Good evening.", "Good night."];
    let alone: Vec<SpokenChunk> = {
        let voice = pollster::block_on(e.voice("af_heart")).unwrap();
        texts
            .iter()
            .map(|t| {
                let u = e.plan(*t, kokoro_engine::Dialect::EnUs, unpacked()).unwrap().next().unwrap().unwrap();
                e.synthesize(&u, &voice, 1.0, SourceNoise::Deterministic).unwrap()
            })
            .collect()
    };
    // Long enough a wait that all three are queued before the first batch leaves.
    let config = SchedulerConfig { max_batch: 3, batching: Batching::On, max_wait: Duration::from_secs(3), response_cache_bytes: 0, ..serial() };
    let s = Scheduler::new(e, config);
    let streams: Vec<Stream> = texts.iter().map(|t| s.submit(Request::text(*t, "af_heart")).unwrap()).collect();
    for (stream, alone) in streams.into_iter().zip(&alone) {
        let chunks = stream.collect_audio().unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].durations, alone.durations, "a batched chunk has its own durations");
        assert_eq!(chunks[0].audio.len(), alone.audio.len());
        let mel = kokoro_model::eval::try_log_mel_distance(&chunks[0].audio, &alone.audio).unwrap();
        assert!(mel < 0.05, "log-mel distance {mel} (the golden tolerance)");
    }
    let stats = s.stats();
    assert_eq!((stats.chunks, stats.batches), (3, 1), "three chunks in one forward pass");
}

#[test]
fn a_long_text_does_not_hold_up_a_short_request() {
    let s = Scheduler::new(engine(), serial());
    let mut long = s.submit(Request::text(TWELVE, "af_heart").chunking(unpacked())).unwrap();
    long.next().unwrap().unwrap();
    let short = drain(s.submit(Request::text("Hi.", "af_heart")).unwrap());
    let long = drain(long);
    let (_, short_at, e) = short.join().unwrap();
    assert!(e.is_none());
    let (indices, long_at, e) = long.join().unwrap();
    assert!(e.is_none());
    assert_eq!(indices, (1..12).collect::<Vec<_>>());
    let after = long_at.iter().filter(|&&t| t > short_at[0]).count();
    assert!(after >= 8, "the short request ran within the long one's first chunks, not after it ({after} of 11 after)");
}

#[test]
fn threads_submitting_and_cancelling_at_random_lose_and_duplicate_no_chunk() {
    let e = engine();
    let s = Arc::new(Scheduler::new(
        e.clone(),
        // Real batches (one forward pass for several chunks) even on the CPU.
        SchedulerConfig { max_batch: 4, batching: Batching::On, max_wait: Duration::from_millis(3), workers: 2, response_cache_bytes: 0, ..SchedulerConfig::default() },
    ));
    let texts = ["Hi.", "Yes. No.", "One. Two. Three.", "Good morning to you."];
    let expected: Vec<usize> = texts
        .iter()
        .map(|t| e.plan(*t, kokoro_engine::Dialect::EnUs, unpacked()).unwrap().count())
        .collect();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = s.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let (mut read, mut cancelled) = (0, 0);
                for _ in 0..5 {
                    let which = (next() % texts.len() as u64) as usize;
                    let priority = Priority::ALL[(next() % 3) as usize];
                    let mut stream = s.submit(Request::text(texts[which], "af_heart").chunking(unpacked()).priority(priority)).unwrap();
                    match next() % 3 {
                        0 => {
                            drop(stream);
                            cancelled += 1;
                        }
                        1 => {
                            let _ = stream.next();
                            stream.cancel();
                            cancelled += 1;
                        }
                        _ => {
                            let indices: Vec<usize> = stream.map(|c| c.unwrap().index).collect();
                            assert_eq!(indices, (0..expected[which]).collect::<Vec<_>>(), "every chunk once, in order");
                            read += 1;
                        }
                    }
                }
                (read, cancelled)
            })
        })
        .collect();
    let (mut read, mut cancelled) = (0, 0);
    for t in threads {
        let (r, c) = t.join().unwrap();
        read += r;
        cancelled += c;
    }
    assert_eq!(read + cancelled, 20);
    wait_until("everything settles", || s.stats().in_flight == 0);
    let stats = s.stats();
    assert_eq!((stats.queued, stats.open_requests, stats.held_audio_bytes), ([0, 0, 0], 0, 0), "{stats:?}");
    assert_eq!(stats.submitted, 20);
    // A cancel that lands after the last chunk finds the request complete, not open.
    assert_eq!(stats.completed + stats.cancelled, 20, "{stats:?}");
    assert!(stats.completed >= read as u64);
    assert_eq!(stats.failed + stats.timed_out, 0);
}

#[test]
fn a_new_requests_first_chunk_goes_before_the_queued_chunks_of_requests_already_speaking() {
    // Four long requests speaking (each with `lookahead` chunks queued), then a short one: its
    // first chunk waits for the pass in flight only. Off, it waits behind the queued chunks.
    let mut waited = Vec::new();
    for first_chunk_first in [true, false] {
        let s = Scheduler::new(engine(), SchedulerConfig { first_chunk_first, ..serial() });
        let longs: Vec<_> = (0..4).map(|_| drain(s.submit(Request::text(TWELVE, "af_heart").chunking(unpacked())).unwrap())).collect();
        wait_until("the long requests are speaking with chunks queued", || {
            let stats = s.stats();
            stats.chunks >= 4 && stats.queued.iter().sum::<usize>() >= 6
        });
        let submitted = Instant::now();
        let short = drain(s.submit(Request::text("Hi.", "af_heart")).unwrap());
        let (indices, short_at, e) = short.join().unwrap();
        assert!(e.is_none() && indices == [0], "{e:?}");
        let mut before = 0;
        for long in longs {
            let (indices, times, e) = long.join().unwrap();
            assert!(e.is_none(), "{e:?}");
            assert_eq!(indices, (0..12).collect::<Vec<_>>(), "each long request whole and in order");
            before += times.iter().filter(|&&t| t > submitted && t < short_at[0]).count();
        }
        waited.push(before);
    }
    // On: at most the chunk in flight and one picked as the short one came. Off: the queued ones.
    assert!(waited[0] <= 2, "first chunk first: {} long chunks went before the new request's first", waited[0]);
    assert!(waited[1] >= 5, "first come, first served: only {} long chunks went before it (the test shows nothing)", waited[1]);
}
