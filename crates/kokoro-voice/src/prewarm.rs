//! Pre-warming: a configured list of voices (names or mixes) loaded and pinned in the background
//! at start, with progress events (done/total, bytes, estimated time remaining), a structured log
//! line per voice, and a ready signal.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Voice, VoiceCache, VoiceError};

/// Progress after each voice.
#[derive(Debug, Clone, PartialEq)]
pub struct PrewarmProgress {
    pub done: usize,
    pub total: usize,
    pub bytes: usize,
    pub elapsed: Duration,
    /// Estimated from the mean time per voice so far.
    pub remaining: Duration,
    pub voice: String,
    /// The error, if this voice failed (the others still load).
    pub error: Option<String>,
}

impl PrewarmProgress {
    /// One structured log line (logfmt).
    pub fn log_line(&self) -> String {
        format!(
            "event=prewarm voice={} done={} total={} bytes={} elapsed_ms={} eta_ms={} status={}",
            self.voice,
            self.done,
            self.total,
            self.bytes,
            self.elapsed.as_millis(),
            self.remaining.as_millis(),
            match &self.error {
                None => "ok".to_string(),
                Some(e) => format!("{e:?}"),
            }
        )
    }
}

#[derive(Default)]
struct ReadyState {
    finished: bool,
    failed: Vec<(String, String)>,
}

/// The ready signal of a pre-warm run.
pub struct Prewarm {
    ready: Arc<(Mutex<ReadyState>, Condvar)>,
    worker: Option<JoinHandle<()>>,
}

type Loader = dyn Fn(&str) -> Result<Voice, VoiceError> + Send + Sync;

impl Prewarm {
    /// Starts loading and pinning `voices` in the background; `on_progress` is called after each.
    pub fn start(
        cache: Arc<VoiceCache>,
        voices: Vec<String>,
        load: Arc<Loader>,
        on_progress: impl Fn(&PrewarmProgress) + Send + 'static,
    ) -> Self {
        let ready = Arc::new((Mutex::new(ReadyState::default()), Condvar::new()));
        let signal = ready.clone();
        let worker = std::thread::spawn(move || {
            let start = Instant::now();
            let total = voices.len();
            let mut bytes = 0;
            let mut failed = Vec::new();
            for (i, voice) in voices.iter().enumerate() {
                let result = cache.pin(voice, || load(voice));
                let error = result.err().map(|e| e.to_string());
                if let Some(e) = &error {
                    failed.push((voice.clone(), e.clone()));
                } else {
                    bytes += crate::VOICE_BIN_BYTES;
                }
                let done = i + 1;
                let elapsed = start.elapsed();
                on_progress(&PrewarmProgress {
                    done,
                    total,
                    bytes,
                    elapsed,
                    remaining: elapsed.mul_f64((total - done) as f64 / done as f64),
                    voice: voice.clone(),
                    error,
                });
            }
            let (lock, cv) = &*signal;
            let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
            state.finished = true;
            state.failed = failed;
            cv.notify_all();
        });
        Self { ready, worker: Some(worker) }
    }

    /// Has every voice been tried?
    pub fn is_ready(&self) -> bool {
        self.ready.0.lock().unwrap_or_else(|p| p.into_inner()).finished
    }

    /// Waits until every voice has been tried; returns the ones that failed, with why.
    pub fn wait(mut self) -> Vec<(String, String)> {
        let (lock, cv) = &*self.ready;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !state.finished {
            state = cv.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let failed = std::mem::take(&mut state.failed);
        drop(state);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{VOICE_BIN_BYTES, VOICE_LEN};

    #[test]
    fn prewarms_pins_reports_progress_and_signals_ready() {
        let cache = Arc::new(VoiceCache::new(3 * VOICE_BIN_BYTES));
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let load: Arc<Loader> = Arc::new(|name: &str| {
            if name == "broken" {
                return Err(VoiceError::Unknown(name.into()));
            }
            std::thread::sleep(Duration::from_millis(20));
            Voice::from_values(vec![0.1; VOICE_LEN], name)
        });
        let run = Prewarm::start(cache.clone(), vec!["a".into(), "broken".into(), "b".into()], load, move |p| {
            seen.lock().unwrap().push(p.clone())
        });
        let failed = run.wait();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "broken");
        let events = events.lock().unwrap();
        assert_eq!(events.iter().map(|p| p.done).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(events[2].bytes, 2 * VOICE_BIN_BYTES);
        assert!(events[0].remaining > Duration::ZERO && events[2].remaining == Duration::ZERO);
        assert!(events[1].log_line().contains("voice=broken") && events[1].log_line().contains("unknown voice"));
        // Pinned: other traffic cannot push them out.
        for k in 0..10 {
            cache.get_or_load(&format!("x{k}"), || Voice::from_values(vec![0.2; VOICE_LEN], "x")).unwrap();
        }
        assert!(cache.contains("a") && cache.contains("b"));
    }
}
