//! AdaIN followed by Snake in two passes over each row: statistics, then normalise, scale,
//! shift and Snake in one write. The tensor version takes about a dozen full passes, each
//! allocating a tensor as large as the input (45 MB per op for 17 s of audio at 128 channels).

/// Sizes and options of one [`adain_snake`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaInShape {
    pub batch: usize,
    pub channels: usize,
    pub time: usize,
}

/// Why an [`adain_snake`] call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdaInError {
    #[error("adain: {what} has {got} values, the shape {shape:?} needs {want}")]
    Length { what: &'static str, got: usize, want: usize, shape: AdaInShape },
    #[error("adain: row lengths {lengths:?} must each lie in 1..={time}")]
    Lengths { lengths: Vec<usize>, time: usize },
}

/// `snake((1 + gamma) * instance_norm(x) + beta, alpha)` with per-row valid lengths.
///
/// - instance norm: each `(batch, channel)` row's mean and biased variance over its first
///   `lengths[b]` steps (all steps without `lengths`), `(x - mean) / sqrt(var + eps)`; the
///   statistics are accumulated in f64;
/// - Snake: `y + sin(alpha * y)^2 / alpha` per channel (skipped when `alpha` is `None`);
/// - steps at or past a row's length are 0 (Snake maps 0 to 0, so this equals masking after).
///
/// # Shapes
/// - x: `[batch, channels, time]`
/// - scale (`1 + gamma`), shift (`beta`): `[batch, channels]`
/// - alpha: `[channels]`
/// - lengths: `[batch]`
/// - output: `[batch, channels, time]`
pub fn adain_snake(
    x: &[f32],
    shape: AdaInShape,
    scale: &[f32],
    shift: &[f32],
    alpha: Option<&[f32]>,
    lengths: Option<&[usize]>,
    eps: f64,
) -> Result<Vec<f32>, AdaInError> {
    let AdaInShape { batch, channels, time } = shape;
    let check = |what, got: usize, want: usize| if got == want { Ok(()) } else { Err(AdaInError::Length { what, got, want, shape }) };
    check("x", x.len(), batch * channels * time)?;
    check("scale", scale.len(), batch * channels)?;
    check("shift", shift.len(), batch * channels)?;
    if let Some(alpha) = alpha {
        check("alpha", alpha.len(), channels)?;
    }
    if let Some(lengths) = lengths {
        check("lengths", lengths.len(), batch)?;
        if lengths.iter().any(|&l| l == 0 || l > time) {
            return Err(AdaInError::Lengths { lengths: lengths.to_vec(), time });
        }
    }
    let mut out = vec![0f32; x.len()];
    if time == 0 {
        return Ok(out);
    }
    let row = |(index, (dst, src)): (usize, (&mut [f32], &[f32]))| {
        let (b, c) = (index / channels, index % channels);
        let len = lengths.map_or(time, |l| l[b]);
        let valid = &src[..len];
        let mean = valid.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
        let var = valid.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
        let gain = scale[index] as f64 / (var + eps).sqrt();
        // y = gain * x + offset, in f32 like the tensor version's arithmetic.
        let gain = gain as f32;
        let offset = (shift[index] as f64 - gain as f64 * mean) as f32;
        let dst = &mut dst[..len];
        match alpha.map(|a| a[c]) {
            Some(a) => {
                let inv = 1.0 / a;
                // The vectorisable sin^2 first; a row with an argument beyond its range (never
                // seen in Kokoro, where |alpha * y| stays below ~100) is redone with libm.
                let mut beyond = false;
                for (d, &v) in dst.iter_mut().zip(valid) {
                    let y = gain * v + offset;
                    let x = a * y;
                    beyond |= !(x.abs() <= SIN2_RANGE);
                    *d = y + inv * sin2(x);
                }
                if beyond {
                    for (d, &v) in dst.iter_mut().zip(valid) {
                        let y = gain * v + offset;
                        let s = (a * y).sin();
                        *d = y + inv * s * s;
                    }
                }
            }
            None => {
                for (d, &v) in dst.iter_mut().zip(valid) {
                    *d = gain * v + offset;
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(time).zip(x.par_chunks(time)).enumerate().for_each(row);
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(time).zip(x.chunks(time)).enumerate().for_each(row);
    Ok(out)
}

/// Largest |x| for which [`sin2`]'s reduction is exact (Cephes' sinf bound, scaled to pi).
const SIN2_RANGE: f32 = 8192.0;

/// `sin(x)^2` for |x| <= [`SIN2_RANGE`], in straight-line f32 arithmetic that LLVM vectorises
/// (libm's `sinf` is a scalar call: ~10 % of the generator's time before this).
///
/// x = k * pi + r with |r| <= pi / 2 (k rounded with the 1.5 * 2^23 trick, pi split in three
/// parts as in Cephes so that k * pi is exact); sin(x)^2 = sin(r)^2, so k's parity does not
/// matter; sin(r) by its Taylor series to r^11 (truncation error below 6e-8 on |r| <= pi / 2).
#[inline(always)]
fn sin2(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    const PI_A: f32 = 3.140625;
    const PI_B: f32 = 9.675_025_939_941_406e-4;
    const PI_C: f32 = 1.509_957_990_978_376_4e-7;
    let k = (x * std::f32::consts::FRAC_1_PI + ROUND) - ROUND;
    let r = ((x - k * PI_A) - k * PI_B) - k * PI_C;
    let r2 = r * r;
    let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0 + r2 * (-1.0 / 39_916_800.0))))));
    s * s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tensor version's arithmetic, step by step in f64.
    fn reference(x: &[f32], s: AdaInShape, scale: &[f32], shift: &[f32], alpha: Option<&[f32]>, lengths: Option<&[usize]>) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        for b in 0..s.batch {
            for c in 0..s.channels {
                let i = b * s.channels + c;
                let len = lengths.map_or(s.time, |l| l[b]);
                let row = &x[i * s.time..i * s.time + len];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
                for t in 0..len {
                    let mut y = scale[i] as f64 * (row[t] as f64 - mean) / (var + 1e-5).sqrt() + shift[i] as f64;
                    if let Some(a) = alpha {
                        let a = a[c] as f64;
                        y += (a * y).sin().powi(2) / a;
                    }
                    out[i * s.time + t] = y as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_reference_with_and_without_lengths_and_snake() {
        let s = AdaInShape { batch: 2, channels: 3, time: 50 };
        let x: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let scale = [1.5, 0.5, 2.0, 1.0, 0.25, 3.0];
        let shift = [0.1, -0.2, 0.3, 0.0, 1.0, -1.0];
        let alpha = [1.0, 0.3, 2.5];
        for alpha in [None, Some(&alpha[..])] {
            for lengths in [None, Some(&[50usize, 17][..])] {
                let got = adain_snake(&x, s, &scale, &shift, alpha, lengths, 1e-5).unwrap();
                let want = reference(&x, s, &scale, &shift, alpha, lengths);
                let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "alpha {alpha:?} lengths {lengths:?}: {worst}");
                if lengths.is_some() {
                    assert!(got[(3 + 1) * 50 - 33..].iter().take(33).all(|&v| v == 0.0), "padding is zero");
                }
            }
        }
    }

    #[test]
    fn sin2_matches_libm_over_its_range() {
        let worst = |range: f32| {
            let mut worst = 0f64;
            let mut x = -range;
            while x <= range {
                worst = worst.max((sin2(x) as f64 - (x as f64).sin().powi(2)).abs());
                x += range / 654_321.0;
            }
            worst
        };
        // The bound is 4 f32 ulps at 1: Horner's rounding in f32 near |r| = pi / 2. Measured
        // 4.2e-7 for |x| <= 100 and 4.3e-7 over the whole range, where libm's f32 sin, squared
        // in f32, is itself up to ~1.2e-7 from the f64 truth.
        for range in [100.0, SIN2_RANGE] {
            let worst = worst(range);
            assert!(worst < 5e-7, "|x| <= {range}: largest |sin2 - sin^2| = {worst:e}");
        }
    }

    #[test]
    fn arguments_beyond_the_range_fall_back_to_libm() {
        let s = AdaInShape { batch: 1, channels: 1, time: 3 };
        let x = [0.0, 20_000.0, -1.0];
        let got = adain_snake(&x, s, &[1.0], &[0.0], Some(&[1e4]), None, 1e-5).unwrap();
        let want = reference(&x, s, &[1.0], &[0.0], Some(&[1e4]), None);
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5), "{got:?} vs {want:?}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let s = AdaInShape { batch: 1, channels: 2, time: 4 };
        assert!(matches!(adain_snake(&[0.0; 7], s, &[1.0; 2], &[0.0; 2], None, None, 1e-5), Err(AdaInError::Length { what: "x", .. })));
        assert!(matches!(adain_snake(&[0.0; 8], s, &[1.0; 1], &[0.0; 2], None, None, 1e-5), Err(AdaInError::Length { what: "scale", .. })));
        assert!(matches!(adain_snake(&[0.0; 8], s, &[1.0; 2], &[0.0; 2], Some(&[1.0]), None, 1e-5), Err(AdaInError::Length { what: "alpha", .. })));
        assert!(matches!(adain_snake(&[0.0; 8], s, &[1.0; 2], &[0.0; 2], None, Some(&[5]), 1e-5), Err(AdaInError::Lengths { .. })));
    }
}
