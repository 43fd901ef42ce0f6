//! The server's logs: text, JSON or logfmt lines (every line of a request carries its
//! `request_id`, from the request's span), to stderr or to a file rotated by size and by age,
//! with the level changeable while running.
//!
//! Rotation is ours: `tracing-appender` and `logroller` rotate by time or by size, not both; the
//! writer below is the 80 lines that do both, with the lumberjack/logrotate naming
//! (`kokoro.log`, then `kokoro.log.1` the newest, up to `kokoro.log.N`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, reload};

use crate::config::{LogConfig, LogFormat};

/// Changes the level of the logs set up by [`init`].
pub struct LogHandle {
    set: Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>,
    level: Mutex<String>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").field("level", &self.level()).finish()
    }
}

impl LogHandle {
    /// A level (`debug`) or directives (`info,kokoro_engine=debug`); the old level stays when
    /// the new one does not parse.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = parse_level(level)?;
        (self.set)(filter)?;
        *self.level.lock().unwrap_or_else(PoisonError::into_inner) = level.to_string();
        Ok(())
    }

    pub fn level(&self) -> String {
        self.level.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A level (`info`) or tracing's directives (`info,kokoro_engine=debug`). A bare word that is
/// not a level (`loud`) is refused, though tracing would read it as "everything from the target
/// `loud`": it is nearly always a mistyped level.
pub fn parse_level(level: &str) -> Result<EnvFilter, String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !directive.contains('[') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!("{directive:?} is not a log level ({}) nor a target=level directive", LEVELS.join(", ")));
        }
    }
    EnvFilter::try_new(level).map_err(|e| format!("{level:?} is not a log level or directive: {e}"))
}

/// Installs the process's logger from `config` (`level` replaces the configured level, as
/// `KOKORO_LOG` does). Fails when the file cannot be opened, or a logger is already installed.
pub fn init(config: &LogConfig, level: Option<&str>) -> Result<LogHandle, String> {
    let level = level.unwrap_or(&config.level).to_string();
    let filter = parse_level(&level)?;
    let (filter, reload_handle) = reload::Layer::new(filter);
    let writer = match &config.file {
        Some(path) => {
            let file = RotatingFile::open(path, config.rotate_bytes, Duration::from_secs(config.rotate_age_secs), config.keep_files)
                .map_err(|e| format!("opening the log file {}: {e}", path.display()))?;
            BoxMakeWriter::new(Mutex::new(file))
        }
        None => BoxMakeWriter::new(io::stderr),
    };
    // Colours only for a person at a terminal.
    let ansi = config.file.is_none() && std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&io::stderr());
    tracing_subscriber::registry().with(filter).with(format_layer(config.format, writer, ansi)).try_init().map_err(|e| format!("installing the logger: {e}"))?;
    Ok(LogHandle {
        set: Box::new(move |filter| reload_handle.reload(filter).map_err(|e| e.to_string())),
        level: Mutex::new(level),
    })
}

/// Lines in `format` to `writer`.
fn format_layer<S>(format: LogFormat, writer: BoxMakeWriter, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer).boxed(),
        // The request's span (its id) flattened into each line, not a list of spans.
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false).with_writer(writer).boxed(),
        LogFormat::Logfmt => tracing_logfmt::builder().with_span_path(false).layer().with_writer(writer).boxed(),
    }
}

/// A log file that rotates when a write would take it past `max_bytes`, or on the first write
/// after it is `max_age` old; keeps `keep` rotated files.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    opened: SystemTime,
    max_bytes: u64,
    max_age: Duration,
    keep: usize,
}

impl RotatingFile {
    /// Opens `path` for appending (made with its folder when missing).
    pub fn open(path: &Path, max_bytes: u64, max_age: Duration, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        // An existing file's age counts from when it was made (or last written, where the
        // filesystem keeps no birth time), so a restart does not keep an old file forever.
        let opened = meta.created().or_else(|_| meta.modified()).unwrap_or_else(|_| SystemTime::now());
        Ok(Self { path: path.to_path_buf(), file, written: meta.len(), opened, max_bytes, max_age, keep: keep.max(1) })
    }

    /// `path.N` for the Nth newest rotated file.
    pub fn rotated(path: &Path, n: usize) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = std::fs::remove_file(Self::rotated(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = Self::rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, Self::rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, Self::rotated(&self.path, 1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.written = 0;
        self.opened = SystemTime::now();
        Ok(())
    }

    fn due(&self, incoming: usize) -> bool {
        let too_big = self.written > 0 && self.written + incoming as u64 > self.max_bytes;
        let too_old = self.written > 0 && self.opened.elapsed().is_ok_and(|age| age >= self.max_age);
        too_big || too_old
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.due(buf.len()) {
            // A failed rotation (disk full, permissions) must not lose the line: keep writing
            // to the current file.
            if let Err(e) = self.rotate() {
                eprintln!("log rotation of {} failed: {e}", self.path.display());
            }
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines_in(format: LogFormat) -> String {
        let captured = Captured::default();
        let writer = { let c = captured.clone(); BoxMakeWriter::new(move || c.clone()) };
        let subscriber = tracing_subscriber::registry().with(format_layer(format, writer, false));
        tracing::subscriber::with_default(subscriber, || {
            // Recorded as the router records it (Display).
            let span = tracing::info_span!("request", request_id = %"req-42");
            let _entered = span.enter();
            tracing::info!(rtf = 0.25, voice = "af heart", "speech");
        });
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn levels_and_directives_parse_and_a_mistyped_level_does_not() {
        for ok in ["info", "DEBUG", "warn,kokoro_engine=debug", "kokoro_server=trace", "off"] {
            assert!(parse_level(ok).is_ok(), "{ok}");
        }
        for bad in ["loud", "info,verbose", "kokoro_engine=loud"] {
            assert!(parse_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_format_carries_the_request_id_on_the_line() {
        let json: serde_json::Value = serde_json::from_str(lines_in(LogFormat::Json).trim()).unwrap();
        assert_eq!(json["span"]["request_id"], "req-42", "{json}");
        assert_eq!((json["message"].as_str(), json["rtf"].as_f64(), json["level"].as_str()), (Some("speech"), Some(0.25), Some("INFO")));
        let logfmt = lines_in(LogFormat::Logfmt);
        assert_eq!(logfmt.lines().count(), 1, "{logfmt}");
        for part in ["level=info", "request_id=req-42", "rtf=0.25", "voice=\"af heart\"", "message=speech"] {
            assert!(logfmt.contains(part), "{part} in {logfmt}");
        }
        let text = lines_in(LogFormat::Text);
        assert!(text.contains("request_id=req-42") && text.contains("speech"), "{text}");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kokoro-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rotates_by_size_keeping_n_files_and_no_line_is_split() {
        let dir = temp_dir("size");
        let path = dir.join("k.log");
        let mut f = RotatingFile::open(&path, 100, Duration::from_secs(3600), 2).unwrap();
        for i in 0..10 {
            // 40 bytes a line: two fit in 100, the third rotates.
            f.write_all(format!("{i:039}\n").as_bytes()).unwrap();
        }
        drop(f);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        // Lines 8, 9 now; 6, 7 in .1; 4, 5 in .2; nothing older (keep = 2).
        assert_eq!(read(&path), format!("{:039}\n{:039}\n", 8, 9));
        assert_eq!(read(&RotatingFile::rotated(&path, 1)), format!("{:039}\n{:039}\n", 6, 7));
        assert_eq!(read(&RotatingFile::rotated(&path, 2)), format!("{:039}\n{:039}\n", 4, 5));
        assert!(!RotatingFile::rotated(&path, 3).exists());
        // Reopened, it appends and counts what is there.
        let mut f = RotatingFile::open(&path, 100, Duration::from_secs(3600), 2).unwrap();
        f.write_all(format!("{:039}\n", 10).as_bytes()).unwrap();
        assert_eq!(read(&RotatingFile::rotated(&path, 1)), format!("{:039}\n{:039}\n", 8, 9));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rotates_by_age() {
        let dir = temp_dir("age");
        let path = dir.join("k.log");
        let mut f = RotatingFile::open(&path, 1 << 20, Duration::from_millis(200), 3).unwrap();
        f.write_all(b"old\n").unwrap();
        f.write_all(b"still young\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_to_string(RotatingFile::rotated(&path, 1)).unwrap(), "old\nstill young\n");
        let _ = std::fs::remove_dir_all(dir);
    }
}
