//! Output files that are whole or absent: everything is written to a temporary file beside the
//! destination (same folder, so the final rename is atomic on one file system) and renamed over it
//! only when complete. A failure, an error return or a panic drops the temporary file, which
//! `tempfile` then deletes: no empty or half-written output is ever left under the asked name
//! (issue 12: `say --speed nan` left a 44-byte WAV, `--speed 0.0001` an empty one). `kokoro say`,
//! `kokoro batch`, the downloads and the server's jobs all write through here.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

/// A file being written; it appears under its name only after [`AtomicFile::commit`].
pub struct AtomicFile {
    path: PathBuf,
    temp: TempPath,
}

/// An I/O error that names what was being done.
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl AtomicFile {
    /// Starts writing `path`; returns the handle and the open temporary file to write into.
    pub fn create(path: &Path) -> io::Result<(Self, BufWriter<File>)> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a file name", path.display())))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| context(e, format!("creating a file in {}", dir.display())))?;
        let (file, temp) = temp.into_parts();
        Ok((Self { path: path.to_path_buf(), temp }, BufWriter::new(file)))
    }

    /// Moves the finished file to its name (replacing any file there). The data reaches the
    /// disk before the rename, and the rename before this returns: after a power cut the name
    /// holds the old file or the whole new one, never an empty one.
    pub fn commit(self) -> io::Result<()> {
        let path = self.path;
        // fsync through a second handle: it flushes the file's data, whoever wrote it.
        File::open(&*self.temp).and_then(|f| f.sync_all()).map_err(|e| context(e, format!("syncing {}", path.display())))?;
        self.temp.persist(&path).map_err(|e| context(e.error, format!("renaming into {}", path.display())))?;
        sync_dir(&path);
        Ok(())
    }
}

/// Makes a rename in `path`'s folder durable (where the platform can: Unix opens folders).
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Writes `data` to `path` whole, or not at all.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let (file, mut writer) = AtomicFile::create(path)?;
    writer.write_all(data).and_then(|()| writer.flush()).map_err(|e| context(e, format!("writing {}", path.display())))?;
    drop(writer);
    file.commit()
}

/// Deletes the temporary files a killed process left in `dir` (a crash skips the clean-up that
/// dropping an [`AtomicFile`] does).
pub fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".partial") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_until_commit_and_a_dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        let (file, mut w) = AtomicFile::create(&path).unwrap();
        w.write_all(b"half").unwrap();
        w.flush().unwrap();
        assert!(!path.exists());
        drop((file, w));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the temporary file is removed");

        write_atomic(&path, b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_partials_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (file, mut w) = AtomicFile::create(&dir.path().join("a.wav")).unwrap();
        w.write_all(b"half").unwrap();
        w.flush().unwrap();
        std::mem::forget(file); // as a killed process leaves it
        write_atomic(&dir.path().join("b.wav"), b"whole").unwrap();
        remove_stale_partials(dir.path());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["b.wav"]);
    }
}
