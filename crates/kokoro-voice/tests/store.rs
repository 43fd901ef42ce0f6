//! The stores on real voices: a folder, and the same folder served over HTTP on loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use kokoro_voice::{DirStore, HttpStore, VoiceError, VoiceStore};

fn voices_dir() -> PathBuf {
    std::env::var_os("KOKORO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/kokoro-burn"))
        .join("voices")
}

/// Serves `dir` on 127.0.0.1 (GET only, a bounded number of requests) and returns the base URL.
fn serve(dir: PathBuf, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            while { let mut h = String::new(); reader.read_line(&mut h).unwrap() > 2 } {}
            let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let body = if path == "index.json" {
                Some(br#"["af_heart", "am_adam", "../evil"]"#.to_vec())
            } else if path.contains("..") {
                None
            } else {
                std::fs::read(dir.join(&path)).ok()
            };
            let head = match &body {
                Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len()),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            };
            stream.write_all(head.as_bytes()).unwrap();
            if let Some(b) = body {
                stream.write_all(&b).unwrap();
            }
        }
    });
    base
}

#[test]
fn folder_store_lists_loads_and_refuses_hostile_names() {
    let store = DirStore { dir: voices_dir() };
    let names = pollster::block_on(store.list()).unwrap();
    assert_eq!(names.len(), 54);
    let v = pollster::block_on(store.load("af_heart")).unwrap();
    assert_eq!(v.to_bin_bytes(), std::fs::read(voices_dir().join("af_heart.bin")).unwrap());
    assert!(matches!(pollster::block_on(store.fetch("../../etc/passwd")), Err(VoiceError::InvalidName(_))));
    assert!(matches!(pollster::block_on(store.fetch("zz_nobody")), Err(VoiceError::Unknown(_))));
}

#[test]
fn http_store_fetches_over_loopback() {
    let base = serve(voices_dir(), 3);
    let store = HttpStore::new(&base);
    assert_eq!(pollster::block_on(store.list()).unwrap(), ["af_heart", "am_adam"]);
    let v = pollster::block_on(store.load("am_adam")).unwrap();
    assert_eq!(v.to_bin_bytes(), std::fs::read(voices_dir().join("am_adam.bin")).unwrap());
    assert!(matches!(pollster::block_on(store.fetch("zz_nobody")), Err(VoiceError::Unknown(_))));
    // Refused before any request is made.
    assert!(matches!(pollster::block_on(store.fetch("../x")), Err(VoiceError::InvalidName(_))));
}
