//! Direct stride-1 conv1d: padded input read at tap offsets, packed weight panels, a
//! register-blocked micro-kernel per ISA, time tiles as the unit of threading.

use std::sync::OnceLock;

/// Sizes of one [`conv1d`] call. Stride is 1 and groups 1 (every convolution in Kokoro's
/// generator resblocks); anything else stays on the tensor library's general path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// Input length (time steps).
    pub t_in: usize,
    pub kernel: usize,
    /// Zeros on each side of the input.
    pub padding: usize,
    pub dilation: usize,
}

impl Conv1dShape {
    /// `t_in + 2 * padding - dilation * (kernel - 1)`, or `None` when the kernel does not fit.
    pub fn t_out(&self) -> Option<usize> {
        let span = self.dilation.checked_mul(self.kernel.checked_sub(1)?)?;
        self.t_in.checked_add(self.padding.checked_mul(2)?)?.checked_sub(span).filter(|&t| t > 0)
    }
}

/// Why a [`conv1d`] call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Conv1dError {
    #[error("conv1d: {what} has {got} values, the shape {shape:?} needs {want}")]
    Length { what: &'static str, got: usize, want: usize, shape: Conv1dShape },
    #[error("conv1d: kernel {kernel} with dilation {dilation} does not fit an input of {t_in} steps padded by {padding}")]
    KernelTooLong { kernel: usize, dilation: usize, t_in: usize, padding: usize },
    #[error("conv1d: every size must be at least 1, got {0:?}")]
    Empty(Conv1dShape),
    #[error("conv1d: the buffers of {0:?} would not fit in memory's address space")]
    TooLarge(Conv1dShape),
}

/// The micro-kernel family a call runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 4 output channels x 96 steps, 24 zmm accumulators, FMA.
    Avx512,
    /// 4 output channels x 24 steps, 12 ymm accumulators, FMA.
    Avx2Fma,
    /// 4 x 16 in plain arrays, vectorised by LLVM for the target (SIMD128 in wasm, NEON on arm).
    Portable,
}

impl Isa {
    /// (output channels, time steps) of one micro-tile.
    const fn tile(self) -> (usize, usize) {
        match self {
            Isa::Avx512 => (4, 96),
            Isa::Avx2Fma => (4, 24),
            Isa::Portable => (4, 16),
        }
    }

    /// Whether this machine can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2Fma => false,
            Isa::Portable => true,
        }
    }
}

/// The best micro-kernel this machine runs, detected once.
pub fn detected_isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| [Isa::Avx512, Isa::Avx2Fma].into_iter().find(|isa| isa.available()).unwrap_or(Isa::Portable))
}

/// Time steps per thread task, in micro-tiles: large enough to amortise a task (a 128-channel,
/// 11-tap tile is ~70 MFLOP), small enough that the input it reads (`c_in` rows of ~400 steps,
/// 200 KB at 128 channels) stays in L2 across all output-channel panels.
const TILES_PER_TASK: usize = 8;

/// `y = conv1d(x, w) + b` with stride 1, like `torch.nn.functional.conv1d(x, w, b, padding=p,
/// dilation=d)`.
///
/// # Shapes
/// - input: `[batch, c_in, t_in]`, row-major
/// - weight: `[c_out, c_in, kernel]` (PyTorch's layout)
/// - bias: `[c_out]`
/// - output: `[batch, c_out, t_out]`, `t_out = t_in + 2 * padding - dilation * (kernel - 1)`
pub fn conv1d(input: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: Conv1dShape) -> Result<Vec<f32>, Conv1dError> {
    conv1d_with(detected_isa(), input, weight, bias, shape)
}

/// [`conv1d`] on a chosen micro-kernel (tests and benchmarks compare them). An ISA this machine
/// lacks falls back to [`Isa::Portable`].
pub fn conv1d_with(isa: Isa, input: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: Conv1dShape) -> Result<Vec<f32>, Conv1dError> {
    let s = shape;
    if [s.batch, s.c_in, s.c_out, s.t_in, s.kernel, s.dilation].contains(&0) {
        return Err(Conv1dError::Empty(s));
    }
    let t_out = s.t_out().ok_or(Conv1dError::KernelTooLong { kernel: s.kernel, dilation: s.dilation, t_in: s.t_in, padding: s.padding })?;
    let isa = if isa.available() { isa } else { Isa::Portable };
    let (mr, nr) = isa.tile();
    // Every size below is computed unchecked afterwards: check the largest of each once here
    // (a wrapped product would under-allocate the buffers the micro-kernels write through).
    let fits = || -> Option<()> {
        let span = s.dilation.checked_mul(s.kernel - 1)?;
        let tp = t_out.div_ceil(nr).checked_mul(nr)?.checked_add(span)?;
        s.batch.checked_mul(s.c_in)?.checked_mul(s.t_in)?;
        s.batch.checked_mul(s.c_out)?.checked_mul(t_out)?;
        s.c_in.checked_mul(tp)?.checked_mul(4)?;
        s.c_out.div_ceil(mr).checked_mul(mr)?.checked_mul(s.c_in)?.checked_mul(s.kernel)?.checked_mul(4)?;
        Some(())
    };
    fits().ok_or(Conv1dError::TooLarge(s))?;
    let check = |what, got: usize, want: usize| if got == want { Ok(()) } else { Err(Conv1dError::Length { what, got, want, shape: s }) };
    check("input", input.len(), s.batch * s.c_in * s.t_in)?;
    check("weight", weight.len(), s.c_out * s.c_in * s.kernel)?;
    if let Some(bias) = bias {
        check("bias", bias.len(), s.c_out)?;
    }

    // Weight panels: [c_out / MR][c_in][kernel][MR], the panel's channels innermost so the
    // micro-kernel reads one contiguous run of MR weights per (channel, tap). Missing channels
    // of the last panel are zero.
    let panels = s.c_out.div_ceil(mr);
    let mut packed = vec![0f32; panels * s.c_in * s.kernel * mr];
    let mut packed_bias = vec![0f32; panels * mr];
    for o in 0..s.c_out {
        let (p, r) = (o / mr, o % mr);
        for c in 0..s.c_in {
            for j in 0..s.kernel {
                packed[((p * s.c_in + c) * s.kernel + j) * mr + r] = weight[(o * s.c_in + c) * s.kernel + j];
            }
        }
        packed_bias[p * mr + r] = bias.map_or(0.0, |b| b[o]);
    }

    // The padded input of one batch item: zeros, the input, zeros up to whole micro-tiles, so
    // every tap of every tile reads in bounds.
    let blocks = t_out.div_ceil(nr);
    let span = s.dilation * (s.kernel - 1);
    let tp = blocks * nr + span;
    // Every output value is written exactly once by the tiles below (they cover all c_out rows
    // and t_out columns), so the buffer is not zeroed first: that memset was ~4 % of the time.
    let total = s.batch * s.c_out * t_out;
    let mut output: Vec<f32> = Vec::with_capacity(total);
    let mut padded: Vec<f32> = Vec::with_capacity(s.c_in * tp);
    for b in 0..s.batch {
        padded.clear();
        for c in 0..s.c_in {
            // t_in + padding <= tp always: tp >= t_out + span = t_in + 2 * padding.
            let src = &input[(b * s.c_in + c) * s.t_in..(b * s.c_in + c + 1) * s.t_in];
            padded.resize(c * tp + s.padding, 0.0);
            padded.extend_from_slice(src);
            padded.resize((c + 1) * tp, 0.0);
        }
        // SAFETY: within the capacity reserved above; written before set_len below.
        let out = unsafe { output.as_mut_ptr().add(b * s.c_out * t_out) };
        let job = Job {
            isa,
            padded: padded.as_ptr(),
            tp,
            packed: packed.as_ptr(),
            packed_bias: packed_bias.as_ptr(),
            c_in: s.c_in,
            c_out: s.c_out,
            kernel: s.kernel,
            dilation: s.dilation,
            out: SendPtr(out),
            t_out,
            blocks,
        };
        let tasks = blocks.div_ceil(TILES_PER_TASK);
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each(|task| job.run(task));
        }
        #[cfg(not(feature = "rayon"))]
        (0..tasks).for_each(|task| job.run(task));
    }
    // SAFETY: the tiles wrote all `total` values (see above).
    unsafe { output.set_len(total) };
    Ok(output)
}

/// A raw output pointer shared by the time-tile tasks.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: every task writes a disjoint range of output columns (its own time tiles), and the
// buffer outlives the parallel loop that uses it.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One batch item's convolution, split into tasks of [`TILES_PER_TASK`] micro-tiles.
struct Job {
    isa: Isa,
    padded: *const f32,
    tp: usize,
    packed: *const f32,
    packed_bias: *const f32,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    dilation: usize,
    out: SendPtr,
    t_out: usize,
    blocks: usize,
}
// SAFETY: the input pointers are read-only for the job's lifetime; see SendPtr for the output.
unsafe impl Sync for Job {}

impl Job {
    fn run(&self, task: usize) {
        let (mr, nr) = self.isa.tile();
        let first = task * TILES_PER_TASK;
        for block in first..(first + TILES_PER_TASK).min(self.blocks) {
            let t0 = block * nr;
            for panel in 0..self.c_out.div_ceil(mr) {
                let o0 = panel * mr;
                let tile = Tile {
                    x: unsafe { self.padded.add(t0) },
                    x_stride: self.tp,
                    w: unsafe { self.packed.add(panel * self.c_in * self.kernel * mr) },
                    bias: unsafe { self.packed_bias.add(o0) },
                    c_in: self.c_in,
                    kernel: self.kernel,
                    dilation: self.dilation,
                    out: unsafe { self.out.0.add(o0 * self.t_out + t0) },
                    out_stride: self.t_out,
                    rows: mr.min(self.c_out - o0),
                    cols: nr.min(self.t_out - t0),
                };
                // SAFETY: `tile` addresses in-bounds data: the padded input has whole tiles
                // plus the kernel's span per row, the panels and biases are padded to MR, and
                // rows/cols clip the output to its real size.
                unsafe {
                    match self.isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx512 => x86::tile_avx512(&tile),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2Fma => x86::tile_avx2(&tile),
                        _ => tile_portable(&tile),
                    }
                }
            }
        }
    }
}

/// One micro-tile: `rows x cols` outputs (at most MR x NR) from all input channels and taps.
struct Tile {
    /// The padded input at this tile's first step, channel 0.
    x: *const f32,
    x_stride: usize,
    /// This panel's packed weights, `[c_in][kernel][MR]`.
    w: *const f32,
    /// This panel's MR biases.
    bias: *const f32,
    c_in: usize,
    kernel: usize,
    dilation: usize,
    out: *mut f32,
    out_stride: usize,
    rows: usize,
    cols: usize,
}

impl Tile {
    /// Writes a full MR x NR accumulator block, clipped to `rows x cols`.
    ///
    /// # Safety
    /// `acc` holds MR rows of NR values; `out` has `rows` rows of `cols` values at `out_stride`.
    #[inline(always)]
    unsafe fn store_clipped<const NR: usize>(&self, acc: &[[f32; NR]]) {
        for (r, row) in acc.iter().enumerate().take(self.rows) {
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), self.out.add(r * self.out_stride), self.cols) };
        }
    }
}

/// The portable micro-kernel: MR x NR accumulators in arrays, which LLVM keeps in vector
/// registers for the target (mul + add: no FMA is assumed).
///
/// # Safety
/// See [`Job::run`].
unsafe fn tile_portable(t: &Tile) {
    const MR: usize = Isa::Portable.tile().0;
    const NR: usize = Isa::Portable.tile().1;
    let mut acc = [[0f32; NR]; MR];
    for (r, row) in acc.iter_mut().enumerate() {
        *row = [unsafe { *t.bias.add(r) }; NR];
    }
    for c in 0..t.c_in {
        for j in 0..t.kernel {
            let x: &[f32; NR] = unsafe { &*(t.x.add(c * t.x_stride + j * t.dilation) as *const [f32; NR]) };
            let w: &[f32; MR] = unsafe { &*(t.w.add((c * t.kernel + j) * MR) as *const [f32; MR]) };
            for r in 0..MR {
                for i in 0..NR {
                    acc[r][i] += w[r] * x[i];
                }
            }
        }
    }
    unsafe { t.store_clipped(&acc) };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Isa, Tile};
    use std::arch::x86_64::*;

    /// AVX-512: 4 channels x 96 steps (6 zmm per channel) = 24 accumulators; per (channel,
    /// tap) 6 input loads and 4 broadcast weights feed 24 FMAs.
    ///
    /// # Safety
    /// The CPU has AVX-512F; see [`super::Job::run`] for the pointers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512(t: &Tile) {
        const MR: usize = Isa::Avx512.tile().0;
        const NR: usize = Isa::Avx512.tile().1;
        const V: usize = NR / 16;
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [_mm512_set1_ps(unsafe { *t.bias.add(r) }); V];
        }
        for c in 0..t.c_in {
            let x_row = unsafe { t.x.add(c * t.x_stride) };
            let w_row = unsafe { t.w.add(c * t.kernel * MR) };
            for j in 0..t.kernel {
                let xs = unsafe { x_row.add(j * t.dilation) };
                let x: [__m512; V] = std::array::from_fn(|v| unsafe { _mm512_loadu_ps(xs.add(16 * v)) });
                let w = unsafe { w_row.add(j * MR) };
                for (r, row) in acc.iter_mut().enumerate() {
                    let wr = _mm512_set1_ps(unsafe { *w.add(r) });
                    for v in 0..V {
                        row[v] = _mm512_fmadd_ps(wr, x[v], row[v]);
                    }
                }
            }
        }
        if t.rows == MR && t.cols == NR {
            for (r, row) in acc.iter().enumerate() {
                let out = unsafe { t.out.add(r * t.out_stride) };
                for (v, &value) in row.iter().enumerate() {
                    unsafe { _mm512_storeu_ps(out.add(16 * v), value) };
                }
            }
        } else {
            let mut block = [[0f32; NR]; MR];
            for (r, row) in acc.iter().enumerate() {
                for (v, &value) in row.iter().enumerate() {
                    unsafe { _mm512_storeu_ps(block[r].as_mut_ptr().add(16 * v), value) };
                }
            }
            unsafe { t.store_clipped(&block) };
        }
    }

    /// AVX2 + FMA: 4 channels x 24 steps (3 ymm per channel) = 12 accumulators of 16 registers.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; see [`super::Job::run`] for the pointers.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(t: &Tile) {
        const MR: usize = Isa::Avx2Fma.tile().0;
        const NR: usize = Isa::Avx2Fma.tile().1;
        const V: usize = NR / 8;
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [_mm256_set1_ps(unsafe { *t.bias.add(r) }); V];
        }
        for c in 0..t.c_in {
            let x_row = unsafe { t.x.add(c * t.x_stride) };
            let w_row = unsafe { t.w.add(c * t.kernel * MR) };
            for j in 0..t.kernel {
                let xs = unsafe { x_row.add(j * t.dilation) };
                let x: [__m256; V] = std::array::from_fn(|v| unsafe { _mm256_loadu_ps(xs.add(8 * v)) });
                let w = unsafe { w_row.add(j * MR) };
                for (r, row) in acc.iter_mut().enumerate() {
                    let wr = _mm256_set1_ps(unsafe { *w.add(r) });
                    for v in 0..V {
                        row[v] = _mm256_fmadd_ps(wr, x[v], row[v]);
                    }
                }
            }
        }
        let mut block = [[0f32; NR]; MR];
        for (r, row) in acc.iter().enumerate() {
            for (v, &value) in row.iter().enumerate() {
                unsafe { _mm256_storeu_ps(block[r].as_mut_ptr().add(8 * v), value) };
            }
        }
        unsafe { t.store_clipped(&block) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain six-loop convolution in f64: the reference.
    fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, s: Conv1dShape) -> Vec<f32> {
        let t_out = s.t_out().unwrap();
        let mut y = vec![0f32; s.batch * s.c_out * t_out];
        for b in 0..s.batch {
            for o in 0..s.c_out {
                for t in 0..t_out {
                    let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                    for c in 0..s.c_in {
                        for j in 0..s.kernel {
                            let p = (t + j * s.dilation) as isize - s.padding as isize;
                            if p >= 0 && (p as usize) < s.t_in {
                                acc += w[(o * s.c_in + c) * s.kernel + j] as f64 * x[(b * s.c_in + c) * s.t_in + p as usize] as f64;
                            }
                        }
                    }
                    y[(b * s.c_out + o) * t_out + t] = acc as f32;
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn every_isa_matches_the_reference() {
        // Ragged sizes on purpose: channels not a multiple of MR, lengths not a multiple of NR
        // or of a task, padding larger and smaller than the kernel's half span.
        let shapes = [
            Conv1dShape { batch: 1, c_in: 3, c_out: 5, t_in: 7, kernel: 3, padding: 1, dilation: 1 },
            Conv1dShape { batch: 2, c_in: 16, c_out: 12, t_in: 131, kernel: 7, padding: 9, dilation: 3 },
            Conv1dShape { batch: 1, c_in: 9, c_out: 17, t_in: 1000, kernel: 11, padding: 25, dilation: 5 },
            Conv1dShape { batch: 3, c_in: 8, c_out: 8, t_in: 50, kernel: 1, padding: 0, dilation: 1 },
            Conv1dShape { batch: 1, c_in: 4, c_out: 6, t_in: 30, kernel: 7, padding: 0, dilation: 2 },
            Conv1dShape { batch: 1, c_in: 2, c_out: 3, t_in: 5, kernel: 3, padding: 4, dilation: 1 },
        ];
        for (i, s) in shapes.into_iter().enumerate() {
            let x = values(s.batch * s.c_in * s.t_in, 1 + i as u64);
            let w = values(s.c_out * s.c_in * s.kernel, 100 + i as u64);
            let b = values(s.c_out, 200 + i as u64);
            let want = reference(&x, &w, Some(&b), s);
            for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Portable].into_iter().filter(|isa| isa.available()) {
                let got = conv1d_with(isa, &x, &w, Some(&b), s).unwrap();
                assert_eq!(got.len(), want.len(), "{isa:?} {s:?}");
                let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "{isa:?} {s:?}: largest difference {worst}");
            }
            let no_bias = conv1d(&x, &w, None, s).unwrap();
            let want = reference(&x, &w, None, s);
            assert!(no_bias.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5), "{s:?} without bias");
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let s = Conv1dShape { batch: 1, c_in: 2, c_out: 2, t_in: 4, kernel: 3, padding: 1, dilation: 1 };
        assert!(matches!(conv1d(&[0.0; 7], &[0.0; 12], None, s), Err(Conv1dError::Length { what: "input", .. })));
        assert!(matches!(conv1d(&[0.0; 8], &[0.0; 11], None, s), Err(Conv1dError::Length { what: "weight", .. })));
        assert!(matches!(conv1d(&[0.0; 8], &[0.0; 12], Some(&[0.0]), s), Err(Conv1dError::Length { what: "bias", .. })));
        let long = Conv1dShape { kernel: 11, padding: 0, ..s };
        assert!(matches!(conv1d(&[0.0; 8], &[0.0; 44], None, long), Err(Conv1dError::KernelTooLong { .. })));
        let empty = Conv1dShape { c_in: 0, ..s };
        assert!(matches!(conv1d(&[], &[], None, empty), Err(Conv1dError::Empty(_))));
        // Sizes whose products wrap are refused before anything is allocated.
        let huge = Conv1dShape { batch: usize::MAX / 2, c_out: 4, ..s };
        assert!(matches!(conv1d(&[0.0; 8], &[0.0; 24], None, huge), Err(Conv1dError::TooLarge(_))));
        let wide = Conv1dShape { padding: usize::MAX / 2 + 1, ..s };
        assert!(matches!(conv1d(&[0.0; 8], &[0.0; 12], None, wide), Err(Conv1dError::KernelTooLong { .. })));
    }
}
