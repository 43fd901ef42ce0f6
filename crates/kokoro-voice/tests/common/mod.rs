//! Hostile voice files for the Issue 12 tests (`hostile.rs`, `allocation.rs`): zips whose headers
//! lie, zip bombs, and pickles built by hand from the bytes `torch::write_pt` writes.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Cursor, Read, Write};

use kokoro_voice::{STYLE_WIDTH, VOICE_ROWS, Voice};
use zip::write::SimpleFileOptions;

/// A valid voice whose every value is its row number (compresses well, unlike a real one).
pub fn row_voice() -> Voice {
    Voice::from_values((0..VOICE_ROWS).flat_map(|r| std::iter::repeat_n(r as f32, STYLE_WIDTH)).collect(), "rows").unwrap()
}

/// A zip of `entries`, deflated or stored.
pub fn zip_of(entries: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = SimpleFileOptions::default().compression_method(method);
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(*name, options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A `.pt` file with this `data.pkl` and storage `0`.
pub fn pt_of(pkl: &[u8], storage: &[u8], deflate: bool) -> Vec<u8> {
    zip_of(&[("v/data.pkl", pkl), ("v/data/0", storage)], deflate)
}

/// The `data.pkl` that `torch.save(tensor)` writes for one voice (from our writer's output).
pub fn voice_pickle() -> Vec<u8> {
    let pt = kokoro_voice::torch::write_pt("v", &row_voice()).unwrap();
    let mut zip = zip::ZipArchive::new(Cursor::new(pt)).unwrap();
    let mut pkl = Vec::new();
    zip.by_name("v/data.pkl").unwrap().read_to_end(&mut pkl).unwrap();
    pkl
}

/// `bytes` with its one occurrence of `from` replaced by `to`.
pub fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = bytes.windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "{from:?} must occur once");
    [&bytes[..at[0]], to, &bytes[at[0] + from.len()..]].concat()
}

/// An `.npy` array with this header dictionary and data.
pub fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Makes every entry of a zip claim `size` uncompressed bytes, in its local and central headers.
pub fn lie_about_size(zip: &mut [u8], size: u32) {
    for (signature, offset) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let starts: Vec<usize> = zip.windows(4).enumerate().filter(|(_, w)| w == signature).map(|(i, _)| i).collect();
        for s in starts {
            zip[s + offset..s + offset + 4].copy_from_slice(&size.to_le_bytes());
        }
    }
}

/// A pickle of `steps` rounds of BINGET i, BINGET i, TUPLE2, MEMOIZE on an empty list: each round
/// is 6 bytes and doubles the value if memo entries are copied.
pub fn doubling_pickle(steps: u8) -> Vec<u8> {
    let mut pkl = b"\x80\x04]\x94".to_vec();
    for i in 0..steps {
        pkl.extend([b'h', i, b'h', i, 0x86, 0x94]);
    }
    pkl.push(b'.');
    pkl
}

/// A pickle of a dict naming the one tensor of [`voice_pickle`] `names` times (memo reference 11
/// is the tensor there).
pub fn many_names_one_tensor(names: usize) -> Vec<u8> {
    let voice = voice_pickle();
    assert!(voice.ends_with(b"Rq\x0b."));
    let mut pkl = b"\x80\x02}(".to_vec();
    for i in 0..names {
        let key = format!("v{i}");
        pkl.push(b'X');
        pkl.extend((key.len() as u32).to_le_bytes());
        pkl.extend(key.as_bytes());
        if i == 0 {
            pkl.extend(&voice[2..voice.len() - 1]);
        } else {
            pkl.extend(b"h\x0b");
        }
    }
    pkl.extend(b"u.");
    pkl
}
