//! `kokoro voices bench`: cache-hit latency, cold load per format, and the prediction replay.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use kokoro_voice::format::{read_voices, write_npz, write_safetensors};
use kokoro_voice::predict::{replay, synthetic_trace};
use kokoro_voice::{VOICE_BIN_BYTES, VoiceCache, VoiceError};

use crate::fetch::Cache;
use crate::voices::{VoiceInputError, VoiceSource};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn bench(cache: &Cache, source: &VoiceSource) -> Result<()> {
    let names = source.names(cache)?;
    // Issue 12: a folder without voices panicked below (`voices[0]`). A bundle file cannot get
    // here empty: reading one with no voices is already an error.
    if names.is_empty() {
        let dir = source.voices_dir.clone().unwrap_or_else(|| cache.voices());
        return Err(VoiceInputError::from(VoiceError::BadFile {
            what: dir.display().to_string(),
            message: "no voice packs (NAME.bin) to bench: run `kokoro fetch`, or pass --voices-dir or --voices-file".into(),
        })
        .into());
    }
    let voices: Vec<(String, kokoro_voice::Voice)> =
        names.iter().map(|n| Ok((n.clone(), source.load(cache, n)?))).collect::<Result<_>>()?;

    // Cache hits: one lookup at a time, as a request would.
    let vc = Arc::new(VoiceCache::new(16 * VOICE_BIN_BYTES));
    let heart = voices[0].1.clone();
    vc.get_or_load(&voices[0].0, || Ok(heart.clone()))?;
    let mut ns: Vec<f64> = (0..200_000)
        .map(|_| {
            let t = Instant::now();
            let v = vc.get_or_load(&voices[0].0, || unreachable!("cached")).unwrap();
            let e = t.elapsed().as_nanos() as f64;
            std::hint::black_box(v);
            e
        })
        .collect();
    ns.sort_by(|a, b| a.partial_cmp(b).unwrap());
    crate::voices::print_snapshot(&vc.snapshot());
    println!("cache hit (200,000 lookups): p50 {:.2} us, p99 {:.2} us, max {:.1} us (target < 10 us)",
        percentile(&ns, 0.5) / 1e3, percentile(&ns, 0.99) / 1e3, ns[ns.len() - 1] / 1e3);

    // Cold loads: parse every voice from bytes in memory (no disk cache effects), per format.
    let bins: Vec<Vec<u8>> = voices.iter().map(|(_, v)| v.to_bin_bytes()).collect();
    let npz = write_npz(&voices)?;
    let st = write_safetensors(&voices)?;
    println!("cold load, {} voices (bytes already in memory, parse + validate):", voices.len());
    println!("| format | bytes | all voices | per voice |\n|---|---|---|---|");
    let n = voices.len() as f64;
    let t = Instant::now();
    for (b, (name, _)) in bins.iter().zip(&voices) {
        std::hint::black_box(read_voices(b, name, name)?);
    }
    let s = t.elapsed().as_secs_f64();
    println!("| .bin (one file per voice) | {} | {:.2} ms | {:.3} ms |", bins.iter().map(Vec::len).sum::<usize>(), s * 1e3, s * 1e3 / n);
    let pts: Vec<Vec<u8>> = voices.iter().map(|(n, v)| kokoro_voice::torch::write_pt(n, v)).collect::<Result<_, _>>()?;
    let t = Instant::now();
    for (b, (name, _)) in pts.iter().zip(&voices) {
        std::hint::black_box(read_voices(b, name, name)?);
    }
    let s = t.elapsed().as_secs_f64();
    println!("| .pt (torch.save, one file per voice) | {} | {:.2} ms | {:.3} ms |", pts.iter().map(Vec::len).sum::<usize>(), s * 1e3, s * 1e3 / n);
    for (label, bytes) in [(".npz bundle", &npz), ("safetensors bundle", &st)] {
        let t = Instant::now();
        let all = read_voices(bytes, "x", label)?;
        let s = t.elapsed().as_secs_f64();
        assert_eq!(all.len(), voices.len());
        println!("| {label} | {} | {:.2} ms | {:.3} ms |", bytes.len(), s * 1e3, s * 1e3 / n);
    }

    // Prediction: a two-week synthetic trace with daily patterns.
    let trace = synthetic_trace(&names, 14, 400, 7);
    println!("trace replay ({} requests over 14 days, {} voices):", trace.len(), names.len());
    println!("| cache (voices) | hit rate, no prefetching | hit rate, predicted prefetching | prefetch loads |\n|---|---|---|---|");
    for capacity in [4, 8, 16] {
        let plain = replay(&trace, capacity, 0, 0.0);
        let predicted = replay(&trace, capacity, 2, 0.05);
        println!("| {capacity} | {:.1} % | {:.1} % | {} |", 100.0 * plain.hit_rate(), 100.0 * predicted.hit_rate(), predicted.prefetch_loads);
    }
    Ok(())
}
