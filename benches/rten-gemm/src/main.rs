//! rten-gemm (the convolution as one GEMM: weights prepacked once, the input through its virtual
//! `Im2Col` B operand; f32 and u8 x i8 on its VNNI kernel) against kokoro-kernels' direct conv1d,
//! on the generator's shapes: GFLOP/s side by side in one run, plus a correctness check of both
//! against each other and a float64 reference. The results are in docs/performance.md.
//!
//! `cd benches/rten-gemm && cargo run --release` (release; keep the machine quiet).
//! Options: `--check-only` runs only the correctness check, `--runs N` takes the best of N.

use std::mem::MaybeUninit;
use std::time::Instant;

use kokoro_kernels::{Conv1dShape, Isa, conv1d_with};
use rten_gemm::{
    BiasVector, ColOffsets, GemmExecutor, GemmInputA, GemmInputB, GemmUninitOptions, Im2Col,
    PackedAMatrix, QuantParams, RowOffsets,
};
use rten_tensor::{Matrix, NdTensorView};

fn best_of<F: FnMut()>(runs: usize, mut f: F) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// The virtual im2col matrix `[c_in * k, t_out]` of a stride-1 dilated 1-D convolution, the image
/// viewed as `[c_in, 1, t_in]` (H = 1). Rows are (channel, tap) in PyTorch's weight order, so the
/// weight `[c_out, c_in, k]` is the A matrix `[c_out, c_in * k]` as is. Padding is handled by the
/// offset masks (x outside `0..=t_in-1` reads zero), with no padded copy of the input.
fn im2col_1d<T>(image: &[T], s: Conv1dShape, col_step: usize, row_step: usize) -> Im2Col<'_, T> {
    let (c, t, k, d, p) = (s.c_in, s.t_in, s.kernel, s.dilation, s.padding);
    let t_out = s.t_out().unwrap();
    let image = NdTensorView::from_data([c, 1, t], image);
    let n_rows = c * k;
    let n_rows_padded = n_rows.next_multiple_of(row_step);
    let max_x_offset = (t - 1) as i32;
    let max_y_offset = 0i32;
    let mut chan = Vec::with_capacity(n_rows_padded);
    let mut y = Vec::with_capacity(n_rows_padded);
    let mut x = Vec::with_capacity(n_rows_padded);
    for ch in 0..c {
        for j in 0..k {
            chan.push((ch * t) as i32);
            y.push(0);
            x.push((j * d) as i32);
        }
    }
    // Padding rows (int8's K_TILE of 4): always outside the image, so they read zero.
    for _ in n_rows..n_rows_padded {
        chan.push(0);
        y.push(max_y_offset + 1);
        x.push(max_x_offset + 1);
    }
    let n_cols_padded = t_out.next_multiple_of(col_step);
    let mut cy = Vec::with_capacity(n_cols_padded);
    let mut cx = Vec::with_capacity(n_cols_padded);
    for o in 0..t_out {
        cy.push(0);
        cx.push(o as i32 - p as i32);
    }
    // Padding columns (to a multiple of NR): y out of range, so masked to zero.
    for _ in t_out..n_cols_padded {
        cy.push(max_y_offset + 1);
        cx.push(0);
    }
    Im2Col {
        image,
        row_offsets: RowOffsets { chan, y, x },
        col_offsets: ColOffsets { y: cy, x: cx },
        n_cols: t_out,
        n_rows,
        max_y_offset,
        max_x_offset,
    }
}

/// rten-gemm f32: weights prepacked once (outside any timing), B = virtual im2col of the input.
struct RtenF32 {
    gemm: GemmExecutor<f32, f32, f32>,
    packed: PackedAMatrix<f32>,
    bias: Vec<f32>,
}

impl RtenF32 {
    fn new(w: &[f32], b: &[f32], s: Conv1dShape) -> Self {
        let gemm = GemmExecutor::<f32, f32, f32>::default();
        let a = Matrix::from_data([s.c_out, s.c_in * s.kernel], w);
        let packed = gemm.prepack_a(a);
        RtenF32 { gemm, packed, bias: b.to_vec() }
    }

    fn run(&self, x: &[f32], s: Conv1dShape) -> Vec<f32> {
        let t_out = s.t_out().unwrap();
        let im = im2col_1d(x, s, self.gemm.im2col_col_count_step(), self.gemm.im2col_row_count_step());
        let mut out: Vec<f32> = Vec::with_capacity(s.c_out * t_out);
        let opts = GemmUninitOptions { bias: Some(BiasVector::Column(&self.bias)), ..Default::default() };
        self.gemm
            .gemm_uninit(&mut out.spare_capacity_mut()[..s.c_out * t_out], GemmInputA::Packed(&self.packed), GemmInputB::Im2Col(&im), opts)
            .unwrap();
        unsafe { out.set_len(s.c_out * t_out) };
        out
    }
}

/// rten-gemm int8 (u8 weights x i8 activations -> i32, its AVX-512 VNNI kernel when available):
/// weights symmetric per output channel, stored as u8 = q + 128 with zero point 128 per row and
/// prepacked once; the input quantised symmetric with one scale (zero point 0) per call.
struct RtenI8 {
    gemm: GemmExecutor<u8, i8, i32>,
    /// Unpacked: `prepack_a` takes no quantisation parameters and stores zero points of 0 in the
    /// packed panels' metadata (a_quant passed at GEMM time is ignored for a packed A), so a
    /// prepacked u8 A cannot carry the +128 zero point. rten-gemm repacks A blocks per call.
    wq: Vec<u8>,
    zero_points: Vec<u8>,
    /// Per output channel: weight scale (the input scale is multiplied in per call).
    w_scale: Vec<f32>,
    bias: Vec<f32>,
}

fn sym_scale(values: &[f32]) -> f32 {
    let m = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if m > 0.0 { m / 127.0 } else { 1.0 }
}

impl RtenI8 {
    fn new(w: &[f32], b: &[f32], s: Conv1dShape) -> Self {
        let gemm = GemmExecutor::<u8, i8, i32>::default();
        let kk = s.c_in * s.kernel;
        let mut wq = vec![0u8; s.c_out * kk];
        let mut w_scale = vec![0f32; s.c_out];
        for o in 0..s.c_out {
            let row = &w[o * kk..(o + 1) * kk];
            let sc = sym_scale(row);
            w_scale[o] = sc;
            for (dst, &v) in wq[o * kk..(o + 1) * kk].iter_mut().zip(row) {
                *dst = ((v / sc).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
            }
        }
        RtenI8 { gemm, wq, zero_points: vec![128u8; s.c_out], w_scale, bias: b.to_vec() }
    }

    /// Quantise the input (one scale), GEMM to i32, and (when `dequant`) scale back to f32 + bias.
    fn run(&self, x: &[f32], s: Conv1dShape, dequant: bool) -> (Vec<i32>, Option<Vec<f32>>) {
        let t_out = s.t_out().unwrap();
        let sx = sym_scale(x);
        let inv = 1.0 / sx;
        let xq: Vec<i8> = x.iter().map(|&v| (v * inv).round().clamp(-127.0, 127.0) as i8).collect();
        let im = im2col_1d(xq.as_slice(), s, self.gemm.im2col_col_count_step(), self.gemm.im2col_row_count_step());
        let mut acc: Vec<i32> = Vec::with_capacity(s.c_out * t_out);
        let opts = GemmUninitOptions { a_quant: Some(QuantParams { zero_point: &self.zero_points }), ..Default::default() };
        self.gemm
            .gemm_uninit(&mut acc.spare_capacity_mut()[..s.c_out * t_out], GemmInputA::Unpacked(Matrix::from_data([s.c_out, s.c_in * s.kernel], self.wq.as_slice())), GemmInputB::Im2Col(&im), opts)
            .unwrap();
        unsafe { acc.set_len(s.c_out * t_out) };
        if !dequant {
            return (acc, None);
        }
        let mut y: Vec<MaybeUninit<f32>> = Vec::with_capacity(s.c_out * t_out);
        unsafe { y.set_len(s.c_out * t_out) };
        use rayon::prelude::*;
        y.par_chunks_mut(t_out).zip(acc.par_chunks(t_out)).enumerate().for_each(|(o, (yo, ao))| {
            let sc = self.w_scale[o] * sx;
            let b = self.bias[o];
            for (d, &a) in yo.iter_mut().zip(ao) {
                d.write(a as f32 * sc + b);
            }
        });
        let y = unsafe { std::mem::transmute::<Vec<MaybeUninit<f32>>, Vec<f32>>(y) };
        (acc, Some(y))
    }
}

/// rten-gemm int8 with the weights **prepacked once**: since a prepacked A carries zero points of
/// 0, the weights are stored as u8 = q + 128 with no declared zero point, and the +128 is taken
/// back out here: acc - 128 * colsum(t), colsum(t) = sum over (channel, tap) of the window's
/// int8 inputs, from per-frame channel sums (an O(c*t + k*t) pass, inside the timing).
struct RtenI8Packed {
    gemm: GemmExecutor<u8, i8, i32>,
    packed: PackedAMatrix<u8>,
    w_scale: Vec<f32>,
    bias: Vec<f32>,
}

impl RtenI8Packed {
    fn new(w: &[f32], b: &[f32], s: Conv1dShape) -> Self {
        let base = RtenI8::new(w, b, s);
        let packed = base.gemm.prepack_a(Matrix::from_data([s.c_out, s.c_in * s.kernel], base.wq.as_slice()));
        RtenI8Packed { gemm: base.gemm, packed, w_scale: base.w_scale, bias: base.bias }
    }

    /// `explicit`: diagnostic variant, an explicit i8 im2col buffer `[c_in*k, t_out]` built here
    /// (in the timing) and passed as an unpacked B, in place of the virtual `Im2Col`.
    fn run_with(&self, x: &[f32], s: Conv1dShape, dequant: bool, explicit: bool) -> (Vec<i32>, Option<Vec<f32>>) {
        let t_out = s.t_out().unwrap();
        let sx = sym_scale(x);
        let inv = 1.0 / sx;
        let xq: Vec<i8> = x.iter().map(|&v| (v * inv).round().clamp(-127.0, 127.0) as i8).collect();
        let mut acc: Vec<i32> = Vec::with_capacity(s.c_out * t_out);
        if explicit {
            use rayon::prelude::*;
            let kk = s.c_in * s.kernel;
            let mut buf = vec![0i8; kk * t_out];
            buf.par_chunks_mut(t_out).enumerate().for_each(|(r, row)| {
                let (ch, j) = (r / s.kernel, r % s.kernel);
                let src = &xq[ch * s.t_in..(ch + 1) * s.t_in];
                let shift = (j * s.dilation) as isize - s.padding as isize;
                let lo = (-shift).max(0) as usize;
                let hi = ((s.t_in as isize - shift).min(t_out as isize)).max(lo as isize) as usize;
                row[lo..hi].copy_from_slice(&src[(lo as isize + shift) as usize..(hi as isize + shift) as usize]);
            });
            self.gemm
                .gemm_uninit(&mut acc.spare_capacity_mut()[..s.c_out * t_out], GemmInputA::Packed(&self.packed), GemmInputB::Unpacked(Matrix::from_data([kk, t_out], buf.as_slice())), GemmUninitOptions::default())
                .unwrap();
        } else {
            let im = im2col_1d(xq.as_slice(), s, self.gemm.im2col_col_count_step(), self.gemm.im2col_row_count_step());
            self.gemm
                .gemm_uninit(&mut acc.spare_capacity_mut()[..s.c_out * t_out], GemmInputA::Packed(&self.packed), GemmInputB::Im2Col(&im), GemmUninitOptions::default())
                .unwrap();
        }
        unsafe { acc.set_len(s.c_out * t_out) };
        if !dequant {
            return (acc, None);
        }
        // Offset correction: per-frame channel sums, then windowed over the taps.
        let mut frame_sum = vec![0i32; s.t_in];
        for ch in 0..s.c_in {
            for (f, &q) in frame_sum.iter_mut().zip(&xq[ch * s.t_in..(ch + 1) * s.t_in]) {
                *f += q as i32;
            }
        }
        let corr: Vec<i32> = (0..t_out)
            .map(|t| {
                (0..s.kernel)
                    .map(|j| {
                        let i = t as isize + (j * s.dilation) as isize - s.padding as isize;
                        if i >= 0 && (i as usize) < s.t_in { frame_sum[i as usize] } else { 0 }
                    })
                    .sum::<i32>()
                    * 128
            })
            .collect();
        let mut y: Vec<MaybeUninit<f32>> = Vec::with_capacity(s.c_out * t_out);
        unsafe { y.set_len(s.c_out * t_out) };
        use rayon::prelude::*;
        y.par_chunks_mut(t_out).zip(acc.par_chunks(t_out)).enumerate().for_each(|(o, (yo, ao))| {
            let sc = self.w_scale[o] * sx;
            let b = self.bias[o];
            for ((d, &a), &c) in yo.iter_mut().zip(ao).zip(&corr) {
                d.write((a - c) as f32 * sc + b);
            }
        });
        let y = unsafe { std::mem::transmute::<Vec<MaybeUninit<f32>>, Vec<f32>>(y) };
        (acc, Some(y))
    }

    fn run(&self, x: &[f32], s: Conv1dShape, dequant: bool) -> (Vec<i32>, Option<Vec<f32>>) {
        self.run_with(x, s, dequant, false)
    }
}

fn data(c: usize, t: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..c * t).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
    let w: Vec<f32> = (0..c * c * k).map(|i| ((i % 89) as f32 - 44.0) / 890.0).collect();
    let b: Vec<f32> = (0..c).map(|i| 0.01 * (i % 7) as f32).collect();
    (x, w, b)
}

fn shape(c: usize, t: usize, k: usize, d: usize) -> Conv1dShape {
    Conv1dShape { batch: 1, c_in: c, c_out: c, t_in: t, kernel: k, padding: d * (k - 1) / 2, dilation: d }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn correctness() {
    let f32_isa = if Isa::Avx512.available() { Isa::Avx512 } else { kokoro_kernels::detected_isa() };
    println!("## correctness (rten-gemm vs kokoro-kernels {f32_isa:?} f32, and vs a naive f64 reference)\n");
    // Small, odd sizes (channel counts not multiples of MR, frames not multiples of NR), plus the
    // short utterance's real shape.
    for (c, t, k, d) in [(13, 301, 11, 5), (16, 257, 7, 1), (37, 100, 3, 1), (128, 7_801, 11, 3)] {
        let s = shape(c, t, k, d);
        let (x, w, b) = data(c, t, k);
        let ours = conv1d_with(f32_isa, &x, &w, Some(&b), s).unwrap();
        let rf = RtenF32::new(&w, &b, s).run(&x, s);
        let t_out = s.t_out().unwrap();
        // Naive f64 reference (small shapes only).
        let refr = (c * t < 100_000).then(|| {
            let mut y = vec![0f32; c * t_out];
            for o in 0..c {
                for tt in 0..t_out {
                    let mut acc = b[o] as f64;
                    for i in 0..c {
                        for j in 0..k {
                            let xi = tt as isize + (j * d) as isize - s.padding as isize;
                            if xi >= 0 && (xi as usize) < t {
                                acc += w[(o * c + i) * k + j] as f64 * x[i * t + xi as usize] as f64;
                            }
                        }
                    }
                    y[o * t_out + tt] = acc as f32;
                }
            }
            y
        });
        let ri = RtenI8::new(&w, &b, s);
        let (_, ry) = ri.run(&x, s, true);
        let ry = ry.unwrap();
        let rpk = RtenI8Packed::new(&w, &b, s);
        let rp = rpk.run(&x, s, true).1.unwrap();
        let rpe = rpk.run_with(&x, s, true, true).1.unwrap();
        let ours_i8 = Isa::Avx512Vnni.available().then(|| conv1d_with(Isa::Avx512Vnni, &x, &w, Some(&b), s).unwrap());
        println!(
            "- c={c} t={t} k={k} d={d}: max|y|={:.3}; rten f32 vs ours f32: max abs diff {:.2e}{}; rten int8 (unpacked A) vs ours f32: {:.2e}; rten int8 (prepacked A) vs ours f32: {:.2e}; rten int8 (prepacked A, explicit im2col) vs ours f32: {:.2e}{}",
            max_abs(&ours),
            max_abs_diff(&rf, &ours),
            refr.as_ref().map_or(String::new(), |r| format!(" (ours vs f64 ref {:.2e}, rten vs f64 ref {:.2e})", max_abs_diff(&ours, r), max_abs_diff(&rf, r))),
            max_abs_diff(&ry, &ours),
            max_abs_diff(&rp, &ours),
            max_abs_diff(&rpe, &ours),
            ours_i8.as_ref().map_or(String::new(), |q| format!(" (ours int8 vs ours f32: {:.2e})", max_abs_diff(q, &ours))),
        );
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(3);
    println!("rayon threads: {}", rayon::current_num_threads());
    println!(
        "rten-gemm kernels: f32 = {}, int8 = {} (may_saturate = {})\n",
        GemmExecutor::<f32, f32, f32>::default().kernel_name(),
        GemmExecutor::<u8, i8, i32>::default().kernel_name(),
        GemmExecutor::<u8, i8, i32>::default().may_saturate()
    );
    correctness();
    if args.iter().any(|a| a == "--check-only") {
        return;
    }

    let f32_isa = if Isa::Avx512.available() { Isa::Avx512 } else { kokoro_kernels::detected_isa() };
    let i8_isa = Isa::Avx512Vnni.available().then_some(Isa::Avx512Vnni);
    println!("## GFLOP/s (flop = 2*c*c*k*t), best of {runs}, ms in parentheses\n");
    println!(
        "| channels | frames | kernel | dilation | ours f32 ({f32_isa:?}) | ours int8 ({}) | rten f32 (packed A + Im2Col) | rten int8, unpacked A (quant x + GEMM + dequant) | rten int8, prepacked A (quant x + GEMM + offset fix + dequant) | rten int8, prepacked A (quant x + GEMM only) | diag: rten int8, prepacked A, explicit im2col buffer (full) | diag: rten int8 kernel only (A and B both prepacked outside timing) |",
        i8_isa.map_or("n/a".to_string(), |i| format!("{i:?}"))
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let cases = [(128, 87_000, 11, 5), (128, 87_000, 7, 1), (256, 14_500, 3, 1), (256, 14_500, 11, 5), (128, 7_801, 11, 3)];
    for (c, t, k, d) in cases {
        let s = shape(c, t, k, d);
        let (x, w, b) = data(c, t, k);
        let flop = 2.0 * (c * c * k * t) as f64;
        let cell = |secs: f64| format!("{:.0} ({:.1} ms)", flop / secs / 1e9, secs * 1e3);

        let ours_f32 = best_of(runs, || {
            std::hint::black_box(conv1d_with(f32_isa, &x, &w, Some(&b), s).unwrap());
        });
        let ours_i8 = i8_isa.map(|isa| {
            best_of(runs, || {
                std::hint::black_box(conv1d_with(isa, &x, &w, Some(&b), s).unwrap());
            })
        });
        // Weights packed once, outside the timing.
        let rf = RtenF32::new(&w, &b, s);
        let rten_f32 = best_of(runs, || {
            std::hint::black_box(rf.run(&x, s));
        });
        let ri = RtenI8::new(&w, &b, s);
        let rten_i8 = best_of(runs, || {
            std::hint::black_box(ri.run(&x, s, true));
        });
        let rp = RtenI8Packed::new(&w, &b, s);
        let rten_i8p = best_of(runs, || {
            std::hint::black_box(rp.run(&x, s, true));
        });
        let rten_i8p_gemm = best_of(runs, || {
            std::hint::black_box(rp.run(&x, s, false));
        });
        let rten_i8p_explicit = best_of(runs, || {
            std::hint::black_box(rp.run_with(&x, s, true, true));
        });
        // Kernel-only bound: B = the (already quantised) explicit im2col matrix, prepacked.
        let rten_i8_kernel = {
            let kk = c * k;
            let t_out = s.t_out().unwrap();
            let bq: Vec<i8> = (0..kk * t_out).map(|i| ((i % 251) as i32 - 125) as i8).collect();
            let pb = rp.gemm.prepack_b(Matrix::from_data([kk, t_out], bq.as_slice()));
            drop(bq);
            let mut out = vec![0i32; c * t_out];
            best_of(runs, || {
                rp.gemm.gemm(&mut out, GemmInputA::Packed(&rp.packed), GemmInputB::Packed(&pb), Default::default()).unwrap();
                std::hint::black_box(&out);
            })
        };
        println!(
            "| {c} | {t} | {k} | {d} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(ours_f32),
            ours_i8.map_or("n/a".to_string(), cell),
            cell(rten_f32),
            cell(rten_i8),
            cell(rten_i8p),
            cell(rten_i8p_gemm),
            cell(rten_i8p_explicit),
            cell(rten_i8_kernel)
        );
    }
}
