//! `kokoro voices bench` on hostile or empty input (no weights needed).

use std::process::Command;

// Issue 12: an empty voices folder panicked (index out of bounds) instead of saying what is wrong.
#[test]
fn bench_of_an_empty_voices_folder_is_an_input_error() {
    let root = std::env::temp_dir().join(format!("kokoro-voice-bench-test-{}", std::process::id()));
    let empty = root.join("no-voices");
    std::fs::create_dir_all(&empty).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kokoro"))
        .arg("--cache")
        .arg(&root)
        .args(["voices", "bench", "--voices-dir"])
        .arg(&empty)
        .output()
        .expect("kokoro runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}: no voice packs", empty.display())) && stderr.contains("kokoro fetch"), "{stderr}");
    std::fs::remove_dir_all(&root).unwrap();
}
