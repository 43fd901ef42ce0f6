//! Every format on real voices: the packs `kokoro fetch` caches (raw .bin from npm kokoro-js), an
//! .npz bundle made from two of them by numpy (`np.savez_compressed("bella_sky.npz", af_bella=...,
//! af_sky=...)`, arrays 510 x 1 x 256 '<f4', as kokoro-onnx's voices-v1.0.bin), and safetensors.

use std::path::PathBuf;

use kokoro_voice::format::{VoiceFormat, read_voice_file, read_voices, write_npz, write_safetensors};
use kokoro_voice::{MixSpec, Voice};

fn voices_dir() -> PathBuf {
    std::env::var_os("KOKORO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/kokoro-burn"))
        .join("voices")
}

fn bin(name: &str) -> Voice {
    let path = voices_dir().join(format!("{name}.bin"));
    let mut v = read_voice_file(&path).unwrap_or_else(|e| panic!("{e} (run `kokoro fetch` first)"));
    assert_eq!(v[0].0, name);
    v.remove(0).1
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("tests/fixtures").join(name)).unwrap()
}

#[test]
fn npz_bundle_equals_the_raw_packs() {
    let bytes = fixture("bella_sky.npz");
    assert_eq!(VoiceFormat::detect(&bytes), Some(VoiceFormat::Npz));
    let voices = read_voices(&bytes, "unused", "bella_sky.npz").unwrap();
    let names: Vec<&str> = voices.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["af_bella", "af_sky"]);
    assert_eq!(voices[0].1, bin("af_bella"));
    assert_eq!(voices[1].1, bin("af_sky"));
}

#[test]
fn torch_pt_voice_equals_the_raw_pack() {
    // Written by scripts/make_voice_pt.py exactly as torch.save(tensor) lays it out.
    let bytes = fixture("af_heart.pt");
    assert_eq!(VoiceFormat::detect(&bytes), Some(VoiceFormat::Pt));
    let voices = read_voices(&bytes, "af_heart", "af_heart.pt").unwrap();
    assert_eq!(voices, vec![("af_heart".to_string(), bin("af_heart"))]);
    // Our writer lays it out byte for byte as the fixture (stored zip, same pickle).
    let ours = kokoro_voice::torch::write_pt("af_heart", &bin("af_heart")).unwrap();
    assert_eq!(read_voices(&ours, "af_heart", "ours.pt").unwrap(), voices);
    // A pickle cut short is a clear error, not a panic.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("af_heart/data.pkl").unwrap(), &mut pkl).unwrap();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("af_heart/data.pkl", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut w, &pkl[..pkl.len() / 2]).unwrap();
    let cut = w.finish().unwrap().into_inner();
    let e = read_voices(&cut, "af_heart", "cut.pt").unwrap_err().to_string();
    assert!(e.contains("cut.pt") && e.contains("data.pkl"), "{e}");
}

#[test]
fn safetensors_round_trip() {
    let voices = vec![("af_heart".to_string(), bin("af_heart")), ("bm_george".to_string(), bin("bm_george"))];
    let bytes = write_safetensors(&voices).unwrap();
    assert_eq!(VoiceFormat::detect(&bytes), Some(VoiceFormat::Safetensors));
    assert_eq!(read_voices(&bytes, "unused", "mem").unwrap(), voices);
}

#[test]
fn npz_written_here_reads_back_like_numpys() {
    let voices = vec![("af_bella".to_string(), bin("af_bella")), ("af_sky".to_string(), bin("af_sky"))];
    let ours = read_voices(&write_npz(&voices).unwrap(), "x", "ours.npz").unwrap();
    let numpys = read_voices(&fixture("bella_sky.npz"), "x", "bella_sky.npz").unwrap();
    assert_eq!(ours, numpys);
}

#[test]
fn corrupt_files_get_specific_errors() {
    let npz = fixture("bella_sky.npz");
    let e = read_voices(&npz[..npz.len() / 2], "x", "half.npz").unwrap_err().to_string();
    assert!(e.contains("half.npz") && e.contains(".npz"), "{e}");
    let e = read_voices(b"hello, not a voice", "x", "junk.bin").unwrap_err().to_string();
    assert!(e.contains("junk.bin: not a voice file") && e.contains("18 bytes"), "{e}");
    let mut raw = bin("af_heart").to_bin_bytes();
    raw[4 * (256 * 3 + 7)..4 * (256 * 3 + 8)].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let e = read_voices(&raw, "af_heart", "inf.bin").unwrap_err().to_string();
    assert!(e.contains("row 3, column 7"), "{e}");
}

#[test]
fn mixing_real_voices_is_the_weighted_mean() {
    let (bella, sky) = (bin("af_bella"), bin("af_sky"));
    let mix = MixSpec::parse("af_bella(2)+af_sky(1)").unwrap().mix(|name| Ok(bin(name))).unwrap();
    for ((m, b), s) in mix.values().iter().zip(bella.values()).zip(sky.values()) {
        let want = (2.0 * *b as f64 + *s as f64) / 3.0;
        assert!((*m as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "{m} vs {want}");
    }
    let diff = MixSpec::parse("af_bella(2)-af_sky(1)").unwrap().mix(|name| Ok(bin(name))).unwrap();
    assert!((diff.values()[100] as f64 - (2.0 * bella.values()[100] as f64 - sky.values()[100] as f64)).abs() < 1e-5);
}
