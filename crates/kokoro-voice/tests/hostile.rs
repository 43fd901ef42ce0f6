//! Issue 12 ("hostile input"): voice files built to crash or exhaust the readers get specific
//! errors instead. `allocation.rs` checks the same files' memory use.

mod common;

use common::*;
use kokoro_voice::format::{VoiceFormat, read_voices, read_voices_as, write_npz};
use kokoro_voice::{VOICE_BIN_BYTES, VoiceError};

fn error(bytes: &[u8], what: &str) -> String {
    match read_voices(bytes, "v", what) {
        Ok(v) => panic!("{what}: read {} voices, expected an error", v.len()),
        Err(e) => e.to_string(),
    }
}

// Issue 12: the reader sized its buffer from the entry's header (`Vec::with_capacity(entry.size())`),
// so a few bytes could claim 4 GB.
#[test]
fn zip_entries_declaring_more_than_a_voice_are_refused() {
    let mut npz = write_npz(&[("v".to_string(), row_voice())]).unwrap();
    lie_about_size(&mut npz, 0xFFFF_FFF0);
    let e = error(&npz, "lying.npz");
    assert!(e.contains("lying.npz") && e.contains("v.npy") && e.contains("declares 4294967280 bytes"), "{e}");

    let mut pt = pt_of(&voice_pickle(), &row_voice().to_bin_bytes(), false);
    lie_about_size(&mut pt, 0xFFFF_FFF0);
    let e = error(&pt, "lying.pt");
    assert!(e.contains("lying.pt") && e.contains("data.pkl") && e.contains("declares 4294967280 bytes"), "{e}");
}

// Issue 12: entries were decompressed whole, however large (a zip bomb).
#[test]
fn zip_bombs_are_cut_off_at_one_voice() {
    let zeros = vec![0u8; 64 << 20];
    let mut npz = zip_of(&[("v.npy", &zeros)], true);
    assert!(npz.len() < 200_000, "{}", npz.len());
    let e = read_voices(&npz, "v", "bomb.npz").unwrap_err();
    assert!(matches!(e, VoiceError::BadFile { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("bomb.npz: v.npy: declares 67108864 bytes, more than the"), "{e}");
    // A bomb whose headers claim a voice's size is cut off there (`allocation.rs` measures it).
    lie_about_size(&mut npz, VOICE_BIN_BYTES as u32);
    let e = error(&npz, "lying-bomb.npz");
    assert!(e.starts_with("lying-bomb.npz: v.npy: "), "{e}");

    for (label, pt) in [("v/data/0", pt_of(&voice_pickle(), &zeros, true)), ("v/data.pkl", pt_of(&zeros, b"", true))] {
        let e = error(&pt, "bomb.pt");
        assert!(e.contains(&format!("bomb.pt: {label}: declares 67108864 bytes, more than the")), "{e}");
    }
}

// Issue 12: every voice read may take at most a few times the file's size, so many small entries
// (or one tensor named many times) cannot add up to a bomb either.
#[test]
fn reading_is_bounded_by_the_files_size() {
    let voice = row_voice();
    let one = write_npz(&[("v".to_string(), voice.clone())]).unwrap();
    let npy_bytes = {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&one[..])).unwrap();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name("v.npy").unwrap(), &mut b).unwrap();
        b
    };
    let names: Vec<String> = (0..64).map(|i| format!("v{i}.npy")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &npy_bytes[..])).collect();
    let npz = zip_of(&entries, true);
    assert!((npz.len() as u64) * 8 < 64 * VOICE_BIN_BYTES as u64, "the row voice compresses {} bytes", npz.len());
    let e = error(&npz, "many.npz");
    assert!(e.contains("many.npz") && e.contains("zip bomb"), "{e}");

    let pt = pt_of(&many_names_one_tensor(100), &voice.to_bin_bytes(), true);
    let e = error(&pt, "aliases.pt");
    assert!(e.contains("aliases.pt") && e.contains("zip bomb"), "{e}");
    // The same file with a few names is fine: the limit is far above what real files need.
    let pt = pt_of(&many_names_one_tensor(3), &voice.to_bin_bytes(), false);
    let voices = read_voices(&pt, "v", "three.pt").unwrap();
    assert_eq!(voices.len(), 3);
    assert!(voices.iter().all(|(_, v)| *v == voice));
}

// Issue 12: the number of entries a zip may hold is capped.
#[test]
fn zips_with_thousands_of_entries_are_refused() {
    let names: Vec<String> = (0..5000).map(|i| format!("{i}.txt")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let zip = zip_of(&entries, false);
    for format in [VoiceFormat::Npz, VoiceFormat::Pt] {
        let e = read_voices_as(format, &zip, "v", "crowded.zip").unwrap_err().to_string();
        assert!(e.contains("crowded.zip: 5000 entries, more than 4096"), "{format:?}: {e}");
    }
}

// Issue 12: an .npy shape whose product overflows panicked (`dims.iter().product()`).
#[test]
fn npy_shapes_that_overflow_are_refused() {
    for shape in ["(4294967296, 4294967296, 510)", "(510, 510, 510, 510, 510, 510, 510, 510)", "(510, x, 256)", "(-510, 256)"] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let npz = zip_of(&[("v.npy", &npy(&header, &row_voice().to_bin_bytes()))], false);
        let e = error(&npz, "shape.npz");
        assert!(e.contains("shape.npz: v: shape") && e.contains("is not a voice"), "{shape}: {e}");
    }
    // Voice shapes other than (510, 1, 256) still read, with numpy's trailing comma too.
    for shape in ["(510, 256)", "(510, 1, 256,)"] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let npz = zip_of(&[("v.npy", &npy(&header, &row_voice().to_bin_bytes()))], false);
        assert_eq!(read_voices(&npz, "v", "2d.npz").unwrap()[0].1, row_voice(), "{shape}");
    }
}

// Issue 12: a .pt tensor's size and storage offset were multiplied unchecked (a panic on
// overflow), and negative sizes whose product was 510 x 256 passed as a voice.
#[test]
fn pt_shapes_and_offsets_that_overflow_are_refused() {
    let pkl = voice_pickle();
    let storage = row_voice().to_bin_bytes();
    let size = b"M\xfe\x01K\x01M\x00\x01\x87";
    let huge = [&b"\x8a\x08"[..], &(1i64 << 40).to_le_bytes(), b"\x8a\x08", &(1i64 << 40).to_le_bytes(), b"K\x01\x87"].concat();
    let negative = [&b"J"[..], &(-510i32).to_le_bytes(), b"J", &(-256i32).to_le_bytes(), b"K\x01\x87"].concat();
    for (label, bytes) in [("huge", huge), ("negative", negative)] {
        let e = error(&pt_of(&replace(&pkl, size, &bytes), &storage, false), "shape.pt");
        assert!(e.contains("shape.pt: v: shape") && e.contains("is not a voice"), "{label}: {e}");
    }
    for offset in [-1i32, i32::MAX] {
        let bad = replace(&pkl, b"QK\x00M", &[&b"QJ"[..], &offset.to_le_bytes(), b"M"].concat());
        let e = error(&pt_of(&bad, &storage, false), "offset.pt");
        assert!(e.contains(&format!("offset.pt: v: storage offset {offset}")), "{e}");
    }
}

// Issue 12: a pickle nesting a million tuples overflowed the stack when its value was dropped.
#[test]
fn deeply_nested_pickles_do_not_overflow_the_stack() {
    // 30,000 levels fit the file's allowance and are dropped without recursion; a million are
    // more values than a 1 MB file may make.
    for (depth, message) in [(30_000, "v: not a tensor"), (1_000_000, "data.pkl: more values than the file's size allows")] {
        let mut pkl = b"\x80\x02)".to_vec();
        pkl.extend(std::iter::repeat_n(0x85u8, depth));
        pkl.push(b'.');
        let e = error(&pt_of(&pkl, b"", false), "deep.pt");
        assert!(e.contains(&format!("deep.pt: {message}")), "{depth}: {e}");
    }
}

// Issue 12: a memo reference shares its value, as Python's memo does, instead of copying it: 250
// doubling rounds (1.5 KB) would otherwise need 2^250 values. `allocation.rs` measures 20 rounds.
#[test]
fn memo_references_are_shared() {
    let e = error(&pt_of(&doubling_pickle(250), b"", false), "doubling.pt");
    assert!(e.contains("doubling.pt: v: not a tensor"), "{e}");
    // Sharing is also what Python does: a list appended to after it was memoized is the same
    // list through the memo. Here the dict is filled after BINPUT and the root is BINGET's copy.
    let voice = voice_pickle();
    let mut pkl = b"\x80\x02}q\xf0(X\x01\x00\x00\x00a".to_vec();
    pkl.extend(&voice[2..voice.len() - 1]);
    pkl.extend(b"uh\xf0.");
    let voices = read_voices(&pt_of(&pkl, &row_voice().to_bin_bytes(), false), "v", "memo.pt").unwrap();
    assert_eq!(voices, vec![("a".to_string(), row_voice())]);
}
