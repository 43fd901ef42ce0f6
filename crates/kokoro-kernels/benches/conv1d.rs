//! The generator's convolution shapes on each micro-kernel this machine has, against sgemm (the
//! `gemm` crate burn-flex's matmul uses) on the same FLOPs: GFLOP/s side by side in one run.
//!
//! `cargo bench -p kokoro-kernels --bench conv1d` (release; keep the machine quiet).

use std::time::Instant;

use kokoro_kernels::{Conv1dShape, Isa, conv1d_with};

fn best_of<F: FnMut()>(runs: usize, mut f: F) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    // (channels, frames, kernel, dilation): stage 1 of a 17 s utterance, stage 0 of it, and a
    // short utterance's stage 1.
    let cases = [(128, 87_000, 11, 5), (128, 87_000, 7, 1), (256, 14_500, 3, 1), (256, 14_500, 11, 5), (128, 7_801, 11, 3)];
    println!("| channels | frames | kernel | dilation | {} | sgemm same FLOPs |", ISAS.map(|i| format!("{i:?} GFLOP/s")).join(" | "));
    println!("|---|---|---|---|{}---|", "---|".repeat(ISAS.len()));
    for (c, t, k, d) in cases {
        let s = Conv1dShape { batch: 1, c_in: c, c_out: c, t_in: t, kernel: k, padding: d * (k - 1) / 2, dilation: d };
        let x: Vec<f32> = (0..c * t).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
        let w: Vec<f32> = (0..c * c * k).map(|i| ((i % 89) as f32 - 44.0) / 890.0).collect();
        let b = vec![0.01f32; c];
        let flop = 2.0 * (c * c * k * t) as f64;
        let mut cells = Vec::new();
        for isa in ISAS {
            if !isa.available() {
                cells.push("n/a".to_string());
                continue;
            }
            let secs = best_of(3, || {
                std::hint::black_box(conv1d_with(isa, &x, &w, Some(&b), s).unwrap());
            });
            cells.push(format!("{:.0} ({:.1} ms)", flop / secs / 1e9, secs * 1e3));
        }
        // sgemm of [c, c*k] x [c*k, t]: the FLOPs of the convolution as one matrix product.
        let (m, kk, n) = (c, c * k, t);
        let lhs = vec![0.01f32; m * kk];
        let rhs: Vec<f32> = (0..kk * n).map(|i| (i % 13) as f32).collect();
        let mut dst = vec![0f32; m * n];
        let secs = best_of(3, || unsafe {
            gemm::gemm(m, n, kk, dst.as_mut_ptr(), 1, n as isize, false, lhs.as_ptr(), 1, kk as isize, rhs.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
        });
        std::hint::black_box(&dst);
        println!("| {c} | {t} | {k} | {d} | {} | {:.0} ({:.1} ms) |", cells.join(" | "), flop / secs / 1e9, secs * 1e3);
    }
}

const ISAS: [Isa; 4] = [Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2Fma, Isa::Portable];
