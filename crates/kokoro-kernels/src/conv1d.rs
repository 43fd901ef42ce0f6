//! Direct stride-1 conv1d: padded input read at tap offsets, packed weight panels, a
//! register-blocked micro-kernel per ISA, time tiles as the unit of threading.

use std::mem::MaybeUninit;
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
    #[error("conv1d: int8 sums over {c_in} channels x {kernel} taps could overflow int32 (at most {MAX_INT8_TERMS} terms)")]
    Int8TooLong { c_in: usize, kernel: usize },
}

/// The micro-kernel family a call runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 4 output channels x 96 steps, 24 zmm accumulators, FMA.
    Avx512,
    /// 4 output channels x 24 steps, 12 ymm accumulators, FMA.
    Avx2Fma,
    /// 4 x 16 in plain arrays, vectorised by LLVM for the target (NEON on arm).
    Portable,
    /// WebAssembly SIMD128: 4 output channels x 8 steps in 8 `v128` accumulators (mul + add:
    /// SIMD128 has no fused multiply-add), few enough for the 16 registers engines map them to.
    Simd128,
    /// WebAssembly SIMD128, **reduced precision (int8)**: the quantisation of
    /// [`Isa::Avx512Vnni`] (same scales, same windows, so the same sums), with the int8 values
    /// held in 16-bit lanes and multiplied in pairs by `i32x4.dot_i16x8_s` (two input channels
    /// per lane, `pmaddwd` on x86). Never chosen by [`detected_isa`].
    Simd128Int8,
    /// AVX512_VNNI, **reduced precision (int8)**: weights quantised per output channel and the
    /// input per window of [`STEPS_PER_TASK`] steps, both symmetric to 8 bits, multiplied and summed exactly in int32 by
    /// `vpdpbusd` (four input channels per instruction lane), then scaled back to float32 with
    /// the bias. 4 output channels x 96 steps like [`Isa::Avx512`]. Never chosen by
    /// [`detected_isa`]: a caller opts in (`--precision int8`).
    Avx512Vnni,
}

impl Isa {
    /// (output channels, time steps) of one micro-tile.
    const fn tile(self) -> (usize, usize) {
        match self {
            Isa::Avx512 | Isa::Avx512Vnni => (4, 96),
            Isa::Avx2Fma => (4, 24),
            Isa::Portable => (4, 16),
            Isa::Simd128 | Isa::Simd128Int8 => (4, 8),
        }
    }

    /// Input channels per 32-bit word of the packed input and weights: 1 for float32, 4 bytes
    /// for VNNI, 2 16-bit lanes for SIMD128's int8.
    const fn channels_per_word(self) -> usize {
        match self {
            Isa::Avx512Vnni => 4,
            Isa::Simd128Int8 => 2,
            _ => 1,
        }
    }

    /// Whether it computes in int8 (the input quantised per task window, see [`Job::run`]).
    pub const fn is_int8(self) -> bool {
        self.channels_per_word() > 1
    }

    /// Whether this machine can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vnni"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2Fma | Isa::Avx512Vnni => false,
            Isa::Simd128 | Isa::Simd128Int8 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            Isa::Portable => true,
        }
    }
}

/// The best full-precision (float32) micro-kernel this machine runs, detected once.
pub fn detected_isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| [Isa::Avx512, Isa::Avx2Fma, Isa::Simd128].into_iter().find(|isa| isa.available()).unwrap_or(Isa::Portable))
}

/// The most products (input channels x taps) one int8 output sums: each is at most 255 x 127
/// in magnitude, and the sum (with the +128 offset's correction) must stay inside int32.
pub const MAX_INT8_TERMS: usize = 32_768;

/// Time steps per thread task (a whole number of micro-tiles for every ISA): large enough to
/// amortise a task (a 128-channel, 11-tap task is ~2 GFLOP), small enough that the input it reads
/// stays in L2 across all output-channel panels. It is also int8's quantisation window, so the
/// int8 kernels of different ISAs compute the same sums.
pub const STEPS_PER_TASK: usize = 768;

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

    // int8 packs four input channels per 32-bit word, the four bytes `vpdpbusd` multiplies and
    // adds per lane: the micro-kernel then sees `rows` rows of words in place of `c_in` rows of
    // floats, and the tiling is the same. The input is stored as u8 = q + 128 (vpdpbusd's
    // unsigned operand); `offset` takes the +128 back out of each output channel's sum.
    // SIMD128's int8 packs two channels per word as 16-bit lanes, signed, with no offset.
    let int8 = isa.is_int8();
    if int8 && s.c_in.saturating_mul(s.kernel) > MAX_INT8_TERMS {
        return Err(Conv1dError::Int8TooLong { c_in: s.c_in, kernel: s.kernel });
    }
    let group = isa.channels_per_word();
    let rows = s.c_in.div_ceil(group);

    // Weight panels: [c_out / MR][rows][kernel][MR], the panel's channels innermost so the
    // micro-kernel reads one contiguous run of MR weights per (row, tap). Missing channels
    // of the last panel are zero.
    let panels = s.c_out.div_ceil(mr);
    let mut packed = vec![0f32; panels * rows * s.kernel * mr];
    let mut packed_bias = vec![0f32; panels * mr];
    // int8 only, per output channel: the weights' scale, and -128 x the sum of its int8 weights.
    let mut weight_scale = vec![0f32; if int8 { panels * mr } else { 0 }];
    let mut offset = vec![0i32; if int8 { panels * mr } else { 0 }];
    for o in 0..s.c_out {
        let (p, r) = (o / mr, o % mr);
        let w_o = &weight[o * s.c_in * s.kernel..(o + 1) * s.c_in * s.kernel];
        let at = |row: usize, j: usize| ((p * rows + row) * s.kernel + j) * mr + r;
        packed_bias[p * mr + r] = bias.map_or(0.0, |b| b[o]);
        if int8 {
            let scale = int8_scale(w_o);
            let q = |c: usize, j: usize| if c < s.c_in { int8_quantize(w_o[c * s.kernel + j], 1.0 / scale) } else { 0 };
            let mut sum = 0i32;
            for row in 0..rows {
                for j in 0..s.kernel {
                    let word = (0..group).fold(0u32, |word, k| {
                        let value = q(group * row + k, j);
                        sum += value;
                        word | int8_lane(isa, value, false) << (32 / group * k)
                    });
                    packed[at(row, j)] = f32::from_bits(word);
                }
            }
            weight_scale[p * mr + r] = scale;
            // VNNI's input is value + 128: take 128 x the weights back out of the sum.
            offset[p * mr + r] = if isa == Isa::Avx512Vnni { -128 * sum } else { 0 };
        } else {
            for c in 0..s.c_in {
                for j in 0..s.kernel {
                    packed[at(c, j)] = w_o[c * s.kernel + j];
                }
            }
        }
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
    // int8 packs its input per task instead (Job::run), so it needs no padded copy at all.
    let rows_to_fill = if int8 { 0 } else { rows };
    let mut padded: Vec<f32> = Vec::with_capacity(rows_to_fill * tp);
    for b in 0..s.batch {
        padded.clear();
        let item = &input[b * s.c_in * s.t_in..(b + 1) * s.c_in * s.t_in];
        let channel = |c: usize| &item[c * s.t_in..(c + 1) * s.t_in];
        // One row of the padded input (t_in + padding <= tp always: tp >= t_out + span =
        // t_in + 2 * padding); rows are filled in parallel, each slot written exactly once.
        let fill_row = |(row, dst): (usize, &mut [MaybeUninit<f32>])| {
            let (head, rest) = dst.split_at_mut(s.padding);
            let (values, tail) = rest.split_at_mut(s.t_in);
            head.fill(MaybeUninit::new(0.0));
            tail.fill(MaybeUninit::new(0.0));
            for (slot, &x) in values.iter_mut().zip(channel(row)) {
                slot.write(x);
            }
        };
        let slots = &mut padded.spare_capacity_mut()[..rows_to_fill * tp];
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            slots.par_chunks_mut(tp).enumerate().for_each(fill_row);
        }
        #[cfg(not(feature = "rayon"))]
        slots.chunks_mut(tp).enumerate().for_each(fill_row);
        // SAFETY: fill_row wrote every slot of every row.
        unsafe { padded.set_len(rows_to_fill * tp) };
        // SAFETY: within the capacity reserved above; written before set_len below.
        let out = unsafe { output.as_mut_ptr().add(b * s.c_out * t_out) };
        let job = Job {
            isa,
            padded: padded.as_ptr(),
            tp,
            packed: packed.as_ptr(),
            packed_bias: packed_bias.as_ptr(),
            weight_scale: weight_scale.as_ptr(),
            offset: offset.as_ptr(),
            item: item.as_ptr(),
            c_in: s.c_in,
            t_in: s.t_in,
            padding: s.padding,
            span,
            rows,
            c_out: s.c_out,
            kernel: s.kernel,
            dilation: s.dilation,
            out: SendPtr(out),
            t_out,
            blocks,
        };
        let tasks = blocks.div_ceil(STEPS_PER_TASK / nr);
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

/// Quantises the padded positions `start..start + len` of one batch item (`[c_in, t_in]`, padded
/// by `padding` zeros on each side) into int8 words for `isa` (VNNI: four channels' bytes,
/// value + 128; SIMD128: two channels' 16-bit lanes), `c_in / group` rows of `len` words, with
/// one scale for the whole window.
fn pack_int8_window(isa: Isa, item: &[f32], c_in: usize, t_in: usize, padding: usize, start: usize, len: usize) -> (Vec<f32>, f32) {
    // The input steps inside the window; the rest of it is padding (stored zero, 128).
    let first = start.max(padding).min(padding + t_in) - padding;
    let end = (start + len).max(padding).min(padding + t_in) - padding;
    let channel = |c: usize| &item[c * t_in + first..c * t_in + end];
    let largest = (0..c_in).map(|c| largest_magnitude(channel(c))).fold(0f32, nan_max);
    let scale = scale_for(largest);
    let inverse = 1.0 / scale;
    let group = isa.channels_per_word();
    let bits = 32 / group;
    let rows = c_in.div_ceil(group);
    // Zero in every lane (128 for VNNI's unsigned bytes), padding and missing channels included.
    let zero = (0..group).fold(0u32, |word, k| word | int8_lane(isa, 0, true) << (bits * k));
    let mut words = vec![f32::from_bits(zero); rows * len];
    if end == first {
        // The window lies wholly in the padding (padding longer than the kernel's span).
        return (words, scale);
    }
    let at = first + padding - start;
    for (row, words) in words.chunks_exact_mut(len).enumerate() {
        let words = &mut words[at..at + (end - first)];
        for k in 0..group.min(c_in - group * row) {
            let keep = !((((1u64 << bits) - 1) as u32) << (bits * k));
            for (word, &x) in words.iter_mut().zip(channel(group * row + k)) {
                let lane = int8_lane(isa, int8_quantize(x, inverse), true);
                *word = f32::from_bits((word.to_bits() & keep) | lane << (bits * k));
            }
        }
    }
    (words, scale)
}

/// The larger of two magnitudes, NaN if either is (unlike `f32::max`, which drops a NaN).
#[inline(always)]
fn nan_max(m: f32, x: f32) -> f32 {
    if x > m || x.is_nan() { x } else { m }
}

/// The largest magnitude in `values`, NaN if one is NaN, in sixteen lanes so the loop
/// vectorises.
fn largest_magnitude(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = values.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = nan_max(*lane, x.abs());
        }
    }
    tail.iter().map(|x| x.abs()).chain(lanes).fold(0f32, nan_max)
}

/// The symmetric int8 scale for values up to `largest` in magnitude: `largest` maps to 127; 1
/// when all are zero. A NaN or infinite value makes the scale NaN, so every output that reads
/// it is NaN: a blow-up upstream shows, as it would in float32, instead of being clamped away.
fn scale_for(largest: f32) -> f32 {
    if !largest.is_finite() {
        f32::NAN
    } else if largest > 0.0 {
        largest / 127.0
    } else {
        1.0
    }
}

/// The symmetric int8 scale of `values` (see [`scale_for`]).
fn int8_scale(values: &[f32]) -> f32 {
    scale_for(largest_magnitude(values))
}

/// `x / scale` rounded to the nearest integer (ties to even) in [-127, 127]; NaN gives 0.
///
/// Adding 1.5 x 2^23 rounds to an integer in the float's own (nearest-even) rounding, and
/// leaves that integer in the low bits: plain float arithmetic that vectorises on any x86-64,
/// where `round_ties_even` is a call to `rintf` without SSE4.1.
#[inline(always)]
fn int8_quantize(x: f32, inverse_scale: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    let v = x * inverse_scale;
    let v = if v.is_nan() { 0.0 } else { v.clamp(-127.0, 127.0) };
    (v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// The stored lane of an int8 value for `isa`, in the low bits: VNNI's input operand is
/// unsigned (value + 128) and its weights a signed byte; SIMD128's lanes are signed 16-bit.
#[inline(always)]
fn int8_lane(isa: Isa, value: i32, input: bool) -> u32 {
    match isa {
        Isa::Avx512Vnni if input => (value + 128) as u32,
        Isa::Avx512Vnni => value as i8 as u8 as u32,
        _ => value as i16 as u16 as u32,
    }
}

/// A raw output pointer shared by the time-tile tasks.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: every task writes a disjoint range of output columns (its own time tiles), and the
// buffer outlives the parallel loop that uses it.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One batch item's convolution, split into tasks of [`STEPS_PER_TASK`] steps.
struct Job {
    isa: Isa,
    /// Padded input rows: one channel per row, or for [`Isa::Avx512Vnni`] four channels' bytes
    /// per 32-bit word (stored in f32 slots, read as integers).
    padded: *const f32,
    tp: usize,
    packed: *const f32,
    packed_bias: *const f32,
    /// int8 only (empty otherwise): per output channel, weight scale and integer offset.
    weight_scale: *const f32,
    offset: *const i32,
    /// int8 only: the batch item's input `[c_in, t_in]`, which each task quantises and packs
    /// for its own window of time (see [`Job::run`]).
    item: *const f32,
    c_in: usize,
    t_in: usize,
    padding: usize,
    span: usize,
    /// Rows of `padded` (and of each weight panel).
    rows: usize,
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
        let tiles_per_task = STEPS_PER_TASK / nr;
        let first = task * tiles_per_task;
        let last = (first + tiles_per_task).min(self.blocks);
        // int8: this task's window of the padded input, quantised with its own scale. A scale
        // per window of ~800 steps (not one per batch item) keeps quiet stretches of audio from
        // being quantised at the loud parts' step; it is the finest that still factors out of
        // every output's sum (all of a tile's outputs read inside one window).
        let window = self.isa.is_int8().then(|| {
            let start = first * nr;
            let len = (last - first) * nr + self.span;
            // SAFETY: `item` is the batch item's c_in x t_in input, alive for the job.
            let item = unsafe { std::slice::from_raw_parts(self.item, self.c_in * self.t_in) };
            (start, len, pack_int8_window(self.isa, item, self.c_in, self.t_in, self.padding, start, len))
        });
        for block in first..last {
            let t0 = block * nr;
            let (x, x_stride, input_scale) = match &window {
                Some((start, len, (words, scale))) => (unsafe { words.as_ptr().add(t0 - start) }, *len, *scale),
                None => (unsafe { self.padded.add(t0) }, self.tp, 1.0),
            };
            for panel in 0..self.c_out.div_ceil(mr) {
                let o0 = panel * mr;
                let tile = Tile {
                    x,
                    x_stride,
                    w: unsafe { self.packed.add(panel * self.rows * self.kernel * mr) },
                    bias: unsafe { self.packed_bias.add(o0) },
                    weight_scale: self.weight_scale.wrapping_add(o0),
                    offset: self.offset.wrapping_add(o0),
                    input_scale,
                    rows_in: self.rows,
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
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx512Vnni => x86::tile_avx512_vnni(&tile),
                        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                        Isa::Simd128 => wasm::tile_simd128(&tile),
                        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                        Isa::Simd128Int8 => wasm::tile_simd128_int8(&tile),
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
    /// This panel's packed weights, `[rows_in][kernel][MR]`.
    w: *const f32,
    /// This panel's MR biases.
    bias: *const f32,
    /// int8 only: this panel's MR weight scales and offsets, and the input's scale.
    weight_scale: *const f32,
    offset: *const i32,
    input_scale: f32,
    /// Input rows: channels, or groups of four for int8.
    rows_in: usize,
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
    for c in 0..t.rows_in {
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
        for c in 0..t.rows_in {
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
        unsafe { store_avx512(t, &acc) };
    }

    /// Writes the 4 x 96 accumulators of the AVX-512 kernels, clipped to the tile.
    ///
    /// # Safety
    /// The CPU has AVX-512F; see [`super::Job::run`] for the pointers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_avx512(t: &Tile, acc: &[[__m512; 6]; 4]) {
        const MR: usize = Isa::Avx512.tile().0;
        const NR: usize = Isa::Avx512.tile().1;
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

    /// AVX512_VNNI int8: the AVX-512 tile with `vpdpbusd`, which multiplies four u8 x s8 pairs
    /// per int32 lane and adds the four products to it. Each input word holds channels 4c..4c+3
    /// at one step, each broadcast weight word the same four channels of one output channel and
    /// tap: 6 loads and 4 broadcasts feed 24 instructions of 64 products each, four times the
    /// products of the float32 kernel's 24 FMAs. The sums are exact; the one rounding is
    /// `int32 -> float32` before the scale and bias are applied.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX512_VNNI; see [`super::Job::run`] for the pointers (words in
    /// place of floats, `weight_scale` and `offset` valid for MR channels).
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn tile_avx512_vnni(t: &Tile) {
        const MR: usize = Isa::Avx512Vnni.tile().0;
        const NR: usize = Isa::Avx512Vnni.tile().1;
        const V: usize = NR / 16;
        let mut acc = [[_mm512_setzero_si512(); V]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [_mm512_set1_epi32(unsafe { *t.offset.add(r) }); V];
        }
        for c in 0..t.rows_in {
            let x_row = unsafe { t.x.add(c * t.x_stride) } as *const i32;
            let w_row = unsafe { t.w.add(c * t.kernel * MR) } as *const i32;
            for j in 0..t.kernel {
                let xs = unsafe { x_row.add(j * t.dilation) };
                let x: [__m512i; V] = std::array::from_fn(|v| unsafe { _mm512_loadu_si512(xs.add(16 * v) as *const __m512i) });
                let w = unsafe { w_row.add(j * MR) };
                for (r, row) in acc.iter_mut().enumerate() {
                    let wr = _mm512_set1_epi32(unsafe { *w.add(r) });
                    for v in 0..V {
                        row[v] = _mm512_dpbusd_epi32(row[v], x[v], wr);
                    }
                }
            }
        }
        let mut values = [[_mm512_setzero_ps(); V]; MR];
        for (r, (out, sums)) in values.iter_mut().zip(&acc).enumerate() {
            let scale = _mm512_set1_ps(unsafe { *t.weight_scale.add(r) } * t.input_scale);
            let bias = _mm512_set1_ps(unsafe { *t.bias.add(r) });
            for v in 0..V {
                out[v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[v]), scale, bias);
            }
        }
        unsafe { store_avx512(t, &values) };
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
        for c in 0..t.rows_in {
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

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::{Isa, Tile};
    use core::arch::wasm32::*;

    /// SIMD128 float32: 4 channels x 8 steps (2 `v128` per channel) = 8 accumulators; per
    /// (channel, tap) 2 input loads and 4 splatted weights feed 8 multiplies and 8 adds.
    ///
    /// # Safety
    /// See [`super::Job::run`] for the pointers.
    pub(super) unsafe fn tile_simd128(t: &Tile) {
        const MR: usize = Isa::Simd128.tile().0;
        const NR: usize = Isa::Simd128.tile().1;
        const V: usize = NR / 4;
        let mut acc = [[f32x4_splat(0.0); V]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [f32x4_splat(unsafe { *t.bias.add(r) }); V];
        }
        for c in 0..t.rows_in {
            let x_row = unsafe { t.x.add(c * t.x_stride) };
            let w_row = unsafe { t.w.add(c * t.kernel * MR) };
            for j in 0..t.kernel {
                let xs = unsafe { x_row.add(j * t.dilation) };
                let x: [v128; V] = std::array::from_fn(|v| unsafe { v128_load(xs.add(4 * v) as *const v128) });
                let w = unsafe { w_row.add(j * MR) };
                for (r, row) in acc.iter_mut().enumerate() {
                    let wr = f32x4_splat(unsafe { *w.add(r) });
                    for v in 0..V {
                        row[v] = f32x4_add(row[v], f32x4_mul(wr, x[v]));
                    }
                }
            }
        }
        unsafe { store(t, &acc) };
    }

    /// SIMD128 int8: each input word holds channels (2c, 2c + 1) at one step as 16-bit lanes,
    /// each splatted weight word the same two channels of one output channel and tap;
    /// `i32x4.dot_i16x8_s` multiplies the pairs and adds both products per int32 lane. The
    /// sums are exact; `int32 -> float32`, the scale and the bias come last.
    ///
    /// # Safety
    /// See [`super::Job::run`] for the pointers (words in place of floats, `weight_scale` and
    /// `offset` valid for MR channels).
    pub(super) unsafe fn tile_simd128_int8(t: &Tile) {
        const MR: usize = Isa::Simd128Int8.tile().0;
        const NR: usize = Isa::Simd128Int8.tile().1;
        const V: usize = NR / 4;
        let mut acc = [[i32x4_splat(0); V]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            *row = [i32x4_splat(unsafe { *t.offset.add(r) }); V];
        }
        for c in 0..t.rows_in {
            let x_row = unsafe { t.x.add(c * t.x_stride) } as *const i32;
            let w_row = unsafe { t.w.add(c * t.kernel * MR) } as *const i32;
            for j in 0..t.kernel {
                let xs = unsafe { x_row.add(j * t.dilation) };
                let x: [v128; V] = std::array::from_fn(|v| unsafe { v128_load(xs.add(4 * v) as *const v128) });
                let w = unsafe { w_row.add(j * MR) };
                for (r, row) in acc.iter_mut().enumerate() {
                    let wr = i32x4_splat(unsafe { *w.add(r) });
                    for v in 0..V {
                        row[v] = i32x4_add(row[v], i32x4_dot_i16x8(x[v], wr));
                    }
                }
            }
        }
        let mut values = [[f32x4_splat(0.0); V]; MR];
        for (r, (out, sums)) in values.iter_mut().zip(&acc).enumerate() {
            let scale = f32x4_splat(unsafe { *t.weight_scale.add(r) } * t.input_scale);
            let bias = f32x4_splat(unsafe { *t.bias.add(r) });
            for v in 0..V {
                out[v] = f32x4_add(f32x4_mul(f32x4_convert_i32x4(sums[v]), scale), bias);
            }
        }
        unsafe { store(t, &values) };
    }

    /// Writes the 4 x 8 accumulators, clipped to the tile.
    ///
    /// # Safety
    /// See [`super::Job::run`] for the pointers.
    #[inline(always)]
    unsafe fn store(t: &Tile, acc: &[[v128; 2]; 4]) {
        const MR: usize = Isa::Simd128.tile().0;
        const NR: usize = Isa::Simd128.tile().1;
        if t.rows == MR && t.cols == NR {
            for (r, row) in acc.iter().enumerate() {
                let out = unsafe { t.out.add(r * t.out_stride) };
                for (v, &value) in row.iter().enumerate() {
                    unsafe { v128_store(out.add(4 * v) as *mut v128, value) };
                }
            }
        } else {
            let mut block = [[0f32; NR]; MR];
            for (r, row) in acc.iter().enumerate() {
                for (v, &value) in row.iter().enumerate() {
                    unsafe { v128_store(block[r].as_mut_ptr().add(4 * v) as *mut v128, value) };
                }
            }
            unsafe { t.store_clipped(&block) };
        }
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
            for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Simd128, Isa::Portable].into_iter().filter(|isa| isa.available()) {
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

    /// The int8 convolution in f64 on dequantised values: weights with one scale per output
    /// channel, the input with one scale per task window (what `Job::run` packs).
    fn reference_int8(x: &[f32], w: &[f32], bias: &[f32], s: Conv1dShape) -> Vec<f32> {
        let t_out = s.t_out().unwrap();
        let span = s.dilation * (s.kernel - 1);
        let mut y = vec![0f32; s.batch * s.c_out * t_out];
        for b in 0..s.batch {
            let item = &x[b * s.c_in * s.t_in..(b + 1) * s.c_in * s.t_in];
            for t in 0..t_out {
                // The window of t's task, in padded positions, and its scale.
                let start = t / STEPS_PER_TASK * STEPS_PER_TASK;
                let end = (start + STEPS_PER_TASK + span).min(s.t_in + 2 * s.padding);
                let inside = |p: usize| p >= s.padding && p - s.padding < s.t_in;
                let largest = (0..s.c_in)
                    .flat_map(|c| (start..end).filter(|&p| inside(p)).map(move |p| item[c * s.t_in + p - s.padding].abs()))
                    .fold(0f32, f32::max);
                let sx = scale_for(largest);
                for o in 0..s.c_out {
                    let wo = &w[o * s.c_in * s.kernel..(o + 1) * s.c_in * s.kernel];
                    let sw = int8_scale(wo);
                    let mut acc = bias[o] as f64;
                    for c in 0..s.c_in {
                        for j in 0..s.kernel {
                            let p = t + j * s.dilation;
                            if inside(p) {
                                let xq = int8_quantize(item[c * s.t_in + p - s.padding], 1.0 / sx) as f64 * sx as f64;
                                let wq = int8_quantize(wo[c * s.kernel + j], 1.0 / sw) as f64 * sw as f64;
                                acc += xq * wq;
                            }
                        }
                    }
                    y[(b * s.c_out + o) * t_out + t] = acc as f32;
                }
            }
        }
        y
    }

    /// The int8 kernel computes the convolution of the dequantised input and weights exactly up
    /// to float32 rounding, and is within the quantisation's error bound of the float32
    /// convolution, per task window: a quiet stretch after a loud one keeps its own precision.
    #[test]
    fn int8_kernel_is_the_convolution_of_quantised_values() {
        let isas: Vec<Isa> = [Isa::Avx512Vnni, Isa::Simd128Int8].into_iter().filter(|isa| isa.available()).collect();
        if isas.is_empty() {
            eprintln!("skipped: no int8 micro-kernel here (AVX512_VNNI, wasm SIMD128)");
            return;
        }
        for isa in isas {
        let shapes = [
            Conv1dShape { batch: 1, c_in: 3, c_out: 5, t_in: 7, kernel: 3, padding: 1, dilation: 1 },
            Conv1dShape { batch: 2, c_in: 16, c_out: 12, t_in: 131, kernel: 7, padding: 9, dilation: 3 },
            Conv1dShape { batch: 1, c_in: 9, c_out: 17, t_in: 3000, kernel: 11, padding: 25, dilation: 5 },
            Conv1dShape { batch: 3, c_in: 1, c_out: 6, t_in: 30, kernel: 7, padding: 0, dilation: 2 },
        ];
        let window = STEPS_PER_TASK;
        for (i, s) in shapes.into_iter().enumerate() {
            let mut x = values(s.batch * s.c_in * s.t_in, 1 + i as u64);
            // Items of different magnitudes, and within an item a quiet stretch (1/1000) from
            // the second task window on, so a scale shared across items or windows would show.
            let loudness = |b: usize, t: usize| 10f32.powi(b as i32) * if t >= window + 100 { 1e-3 } else { 1.0 };
            for (b, item) in x.chunks_mut(s.c_in * s.t_in).enumerate() {
                for (n, v) in item.iter_mut().enumerate() {
                    *v *= loudness(b, n % s.t_in);
                }
            }
            let w = values(s.c_out * s.c_in * s.kernel, 100 + i as u64);
            let bias = values(s.c_out, 200 + i as u64);
            let got = conv1d_with(isa, &x, &w, Some(&bias), s).unwrap();
            let quantised = reference_int8(&x, &w, &bias, s);
            let exact = reference(&x, &w, Some(&bias), s);
            let t_out = s.t_out().unwrap();
            let mut quiet_checked = false;
            for b in 0..s.batch {
                for o in 0..s.c_out {
                    for t in 0..t_out {
                        let n = (b * s.c_out + o) * t_out + t;
                        // The loudest input this output's window reads.
                        let task_start = t / window * window;
                        let magnitude = loudness(b, task_start.saturating_sub(s.padding));
                        let off = (got[n] - quantised[n]).abs();
                        assert!(off < 1e-5 * magnitude.max(1.0), "{s:?} [{b},{o},{t}]: {off} from the convolution of quantised values");
                        // |x| <= magnitude / 2 and |w| <= 1/2: each product is off by at most
                        // |w| step_x / 2 + |x| step_w / 2 + step_x step_w / 4, step = largest / 127.
                        let (step_x, step_w) = (magnitude / 2.0 / 127.0, 0.5 / 127.0);
                        let per_product = 0.5 * step_x / 2.0 + magnitude / 2.0 * step_w / 2.0 + step_x * step_w / 4.0;
                        let bound = (s.c_in * s.kernel) as f32 * per_product * 1.001 + 1e-6;
                        let off = (got[n] - exact[n]).abs();
                        assert!(off <= bound, "{s:?} [{b},{o},{t}]: {off} from the float32 convolution, bound {bound}");
                        quiet_checked |= magnitude < 1e-2;
                    }
                }
            }
            let largest = got.iter().zip(&exact).map(|(g, e)| (g - e).abs()).fold(0f32, f32::max);
            assert!(largest > 0.0, "{s:?}: quantising changed nothing, so the kernel is not the int8 one");
            if s.t_in > 2 * window {
                assert!(quiet_checked, "{s:?}: the quiet window was not checked");
            }
        }
        let long = Conv1dShape { batch: 1, c_in: 4096, c_out: 4, t_in: 16, kernel: 9, padding: 4, dilation: 1 };
        let refused = conv1d_with(isa, &vec![0.0; 4096 * 16], &vec![0.0; 4 * 4096 * 9], None, long);
        assert_eq!(refused, Err(Conv1dError::Int8TooLong { c_in: 4096, kernel: 9 }));
        }
    }

    /// The packing both int8 kernels read, tested on every machine (the kernels themselves need
    /// VNNI or SIMD128): each lane holds its channel's quantised value at its step, zero (128
    /// for VNNI's unsigned input) in padding and missing channels, including windows that lie
    /// wholly in the padding.
    #[test]
    fn int8_windows_pack_each_channel_into_its_lane() {
        let (c_in, t_in, padding) = (5, 40, 30);
        let item: Vec<f32> = (0..c_in * t_in).map(|i| (i as f32 * 0.37).sin()).collect();
        for isa in [Isa::Avx512Vnni, Isa::Simd128Int8] {
            let group = isa.channels_per_word();
            let bits = 32 / group;
            for (start, len) in [(0, 100), (25, 20), (0, 10), (75, 30), (60, 5)] {
                let (words, scale) = pack_int8_window(isa, &item, c_in, t_in, padding, start, len);
                assert_eq!(words.len(), c_in.div_ceil(group) * len);
                let inside = |p: usize| p >= padding && p - padding < t_in;
                let largest = (start..start + len).filter(|&p| inside(p)).flat_map(|p| (0..c_in).map(move |c| (c, p))).map(|(c, p)| item[c * t_in + p - padding].abs()).fold(0f32, f32::max);
                assert_eq!(scale, scale_for(largest), "{isa:?} window {start}+{len}");
                for (row, row_words) in words.chunks(len).enumerate() {
                    for (i, word) in row_words.iter().enumerate() {
                        for k in 0..group {
                            let c = group * row + k;
                            let value = if c < c_in && inside(start + i) { int8_quantize(item[c * t_in + start + i - padding], 1.0 / scale) } else { 0 };
                            let lane = (word.to_bits() >> (bits * k)) & (((1u64 << bits) - 1) as u32);
                            assert_eq!(lane, int8_lane(isa, value, true), "{isa:?} window {start}+{len}, channel {c}, step {i}");
                        }
                    }
                }
            }
        }
    }

    /// Padding longer than the kernel's span leaves whole task windows in the padding.
    #[test]
    fn int8_handles_windows_wholly_in_the_padding() {
        for isa in [Isa::Avx512Vnni, Isa::Simd128Int8].into_iter().filter(|isa| isa.available()) {
            for (t_in, padding) in [(10, 400), (1, 2000)] {
                let s = Conv1dShape { batch: 1, c_in: 3, c_out: 4, t_in, kernel: 1, padding, dilation: 1 };
                let x = values(3 * t_in, 7);
                let w = values(12, 8);
                let b = values(4, 9);
                let got = conv1d_with(isa, &x, &w, Some(&b), s).unwrap();
                let want = reference(&x, &w, Some(&b), s);
                let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
                assert!(worst < 0.02, "{isa:?} {s:?}: {worst}");
            }
        }
    }

    /// A NaN or infinity in the input poisons the outputs that read its window, as float32 would.
    #[test]
    fn int8_propagates_non_finite_input() {
        for isa in [Isa::Avx512Vnni, Isa::Simd128Int8].into_iter().filter(|isa| isa.available()) {
            let s = Conv1dShape { batch: 1, c_in: 4, c_out: 4, t_in: 2000, kernel: 3, padding: 1, dilation: 1 };
            for bad in [f32::NAN, f32::INFINITY] {
                let mut x = values(4 * 2000, 3);
                x[2 * 2000 + 100] = bad;
                let got = conv1d_with(isa, &x, &values(48, 4), None, s).unwrap();
                assert!(got[100].is_nan(), "{isa:?} {bad}: an output reading it is {}", got[100]);
                assert!(got[1500].is_finite(), "{isa:?} {bad}: a later window is untouched");
            }
        }
    }

    #[test]
    fn int8_quantisation_rounds_to_nearest_even_and_clamps() {
        assert_eq!(int8_scale(&[0.0, -254.0, 127.0]), 2.0);
        assert_eq!(int8_scale(&[0.0; 5]), 1.0, "all zeros: a scale that divides safely");
        assert!(int8_scale(&[f32::INFINITY, 1.0]).is_nan());
        assert!(int8_scale(&[1.0, f32::NAN, 2.0]).is_nan(), "a NaN anywhere, even before larger values");
        assert!(int8_scale(&(0..40).map(|i| if i == 20 { f32::NAN } else { i as f32 }).collect::<Vec<_>>()).is_nan());
        assert_eq!(int8_scale(&(0..40).map(|i| i as f32).collect::<Vec<_>>()), 39.0 / 127.0, "the tail after the 16-wide chunks counts");
        assert_eq!(int8_quantize(2.5, 1.0), 2);
        assert_eq!(int8_quantize(3.5, 1.0), 4);
        assert_eq!(int8_quantize(-2.5, 1.0), -2);
        assert_eq!(int8_quantize(1000.0, 1.0), 127);
        assert_eq!(int8_quantize(-1000.0, 1.0), -127);
        assert_eq!(int8_quantize(f32::NAN, 1.0), 0);
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
