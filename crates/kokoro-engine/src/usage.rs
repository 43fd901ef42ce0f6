//! Voice usage kept for the engine's lifetime: counted in memory by [`Engine::voice`], flushed
//! into a JSON file now and then and when the flusher is dropped (at exit).
//!
//! Each flush takes an exclusive lock on `<file>.lock` (`File::lock`, an advisory lock the OS
//! drops if the process dies), reads the file, adds the counts made since the last flush, and
//! writes the file whole (a temporary file renamed over it). Concurrent processes therefore never
//! lose each other's counts, and a reader never sees half a file.
//!
//! [`Engine::voice`]: crate::Engine::voice

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use kokoro_voice::UsageAnalytics;

/// Flushes usage taken from `take` into `path` every `every`, and once more when dropped.
pub struct UsageFlusher {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

type Take = Box<dyn Fn() -> UsageAnalytics + Send + Sync>;

struct Inner {
    path: PathBuf,
    take: Take,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl UsageFlusher {
    /// Starts the periodic flush. `take` hands over the usage recorded since it was last called
    /// (e.g. `move || engine.take_usage()`).
    pub fn start(path: impl Into<PathBuf>, every: Duration, take: impl Fn() -> UsageAnalytics + Send + Sync + 'static) -> Self {
        let inner = Arc::new(Inner { path: path.into(), take: Box::new(take), stop: Mutex::new(false), wake: Condvar::new() });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("kokoro-usage".into())
                .spawn(move || {
                    let mut stop = inner.stop.lock().unwrap_or_else(PoisonError::into_inner);
                    while !*stop {
                        stop = inner.wake.wait_timeout(stop, every).unwrap_or_else(PoisonError::into_inner).0;
                        if !*stop {
                            drop(stop);
                            inner.flush_reporting();
                            stop = inner.stop.lock().unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                })
                .ok()
        };
        Self { inner, thread }
    }

    /// Flushes now.
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Inner {
    fn flush(&self) -> std::io::Result<()> {
        let delta = (self.take)();
        if delta.is_empty() {
            return Ok(());
        }
        merge_into_file(&self.path, &delta)
    }

    /// Analytics never fail a request: a failed flush is reported and its counts dropped.
    fn flush_reporting(&self) {
        if let Err(e) = self.flush() {
            eprintln!("note: could not save voice usage to {}: {e}", self.path.display());
        }
    }
}

impl Drop for UsageFlusher {
    fn drop(&mut self) {
        *self.inner.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.inner.flush_reporting();
    }
}

/// Adds `delta` to the analytics saved at `path`, under the lock file.
pub fn merge_into_file(path: &Path, delta: &UsageAnalytics) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(PathBuf::from(lock_name))?;
    lock.lock()?;
    // An unreadable or corrupt file is started afresh rather than failing every later flush.
    let mut saved = std::fs::read_to_string(path).ok().and_then(|j| UsageAnalytics::from_json(&j).ok()).unwrap_or_default();
    saved.merge(delta);
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".{}.partial", std::process::id()));
    let temp = PathBuf::from(temp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(saved.to_json().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    drop(lock); // unlocks
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_flushers_lose_no_count() {
        let dir = std::env::temp_dir().join(format!("kokoro-usage-test-{}", std::process::id()));
        let path = dir.join("usage.json");
        let _ = std::fs::remove_dir_all(&dir);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..25u64 {
                        let mut delta = UsageAnalytics::default();
                        delta.record_request(if t % 2 == 0 { "af_heart" } else { "bf_emma" }, 1_700_000_000 + i);
                        merge_into_file(&path, &delta).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let saved = UsageAnalytics::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved.voices["af_heart"].requests + saved.voices["bf_emma"].requests, 200);
        assert_eq!(saved.voices["af_heart"].requests, 100);

        // The flusher: periodic, and once more when dropped.
        let pending = Arc::new(Mutex::new(UsageAnalytics::default()));
        let take = {
            let pending = pending.clone();
            move || std::mem::take(&mut *pending.lock().unwrap())
        };
        let flusher = UsageFlusher::start(&path, Duration::from_millis(20), take);
        pending.lock().unwrap().record_request("am_adam", 1_700_000_100);
        std::thread::sleep(Duration::from_millis(200));
        let saved = UsageAnalytics::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved.voices["am_adam"].requests, 1, "flushed by the timer");
        pending.lock().unwrap().record_request("am_adam", 1_700_000_101);
        drop(flusher);
        let saved = UsageAnalytics::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved.voices["am_adam"].requests, 2, "flushed at drop");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
