//! STFT and inverse STFT with n_fft 20, hop 5 and a periodic Hann window, as fixed-basis
//! convolutions (n_fft 20 is not a power of two, and a 20-point DFT is a tiny matmul anyway).
//!
//! They follow `torch.stft(center=True, pad_mode="reflect", onesided=True)` and `torch.istft`
//! (`center=True`), including istft's division by the summed squared window.

use burn::tensor::module::{conv_transpose1d, conv1d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor, TensorData};

/// Magnitude below which a bin of [`Stft::magnitude_phase`] counts as zero and gets phase 0.
///
/// The harmonic source is constant in unvoiced frames, so bins 2..10 are exactly zero in exact
/// arithmetic and hold ~3e-8 of rounding noise in f32, whose phase is arbitrary and differs between
/// implementations (onnxruntime's STFT, torch's FFT, this convolution). The decoder reads those
/// phases, so left alone they make unvoiced audio implementation-defined. Snapping them to
/// `angle(0) = 0` is the exact-arithmetic value; `scripts/make_goldens.py` applies the same rule
/// to the reference. Genuine bins are far above this: a phase error of ~0.03 rad at 1e-6.
pub const ZERO_BIN: f32 = 1e-6;

/// A one-sided STFT / iSTFT pair.
#[derive(Debug, Clone)]
pub struct Stft {
    pub n_fft: usize,
    pub hop: usize,
}

impl Stft {
    /// Frequency bins of the one-sided spectrum.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    fn window(&self) -> Vec<f64> {
        let n = self.n_fft as f64;
        (0..self.n_fft).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos()).collect()
    }

    /// `[2 * bins, 1, n_fft]`: rows `k` give `w[n] cos(2 pi k n / N)`, rows `bins + k` give
    /// `-w[n] sin(2 pi k n / N)` (real and imaginary parts of the windowed DFT).
    fn forward_basis(&self, device: &Device) -> Tensor<3> {
        let (n, bins, w) = (self.n_fft, self.bins(), self.window());
        let mut basis = vec![0f32; 2 * bins * n];
        for k in 0..bins {
            for t in 0..n {
                let a = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                basis[k * n + t] = (w[t] * a.cos()) as f32;
                // DC and Nyquist are real for a real signal: exact zeros, as an FFT gives
                // (sin(pi t) in floating point is not exactly 0).
                let real_bin = k == 0 || 2 * k == n;
                basis[(bins + k) * n + t] = if real_bin { 0.0 } else { (-w[t] * a.sin()) as f32 };
            }
        }
        Tensor::from_data(TensorData::new(basis, [2 * bins, 1, n]), device)
    }

    /// `[2 * bins, 1, n_fft]`: windowed inverse real DFT. Upstream's irfft ignores the imaginary
    /// parts of the DC and Nyquist bins; their sine rows are zero here, which does the same.
    fn inverse_basis(&self, device: &Device) -> Tensor<3> {
        let (n, bins, w) = (self.n_fft, self.bins(), self.window());
        let mut basis = vec![0f32; 2 * bins * n];
        for k in 0..bins {
            let c = if k == 0 || 2 * k == n { 1.0 } else { 2.0 };
            for t in 0..n {
                let a = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                let (s, co) = if k == 0 || 2 * k == n { (0.0, a.cos()) } else { a.sin_cos() };
                basis[k * n + t] = (c * co * w[t] / n as f64) as f32;
                basis[(bins + k) * n + t] = (-c * s * w[t] / n as f64) as f32;
            }
        }
        Tensor::from_data(TensorData::new(basis, [2 * bins, 1, n]), device)
    }

    /// Magnitude and phase of the centred, reflect-padded STFT.
    ///
    /// # Shapes
    /// - x: `[batch, samples]`
    /// - output: `[batch, 2 * bins, samples / hop + 1]`, magnitudes then phases (atan2)
    pub fn magnitude_phase(&self, x: Tensor<2>) -> Tensor<3> {
        let [batch, len] = x.dims();
        let pad = self.n_fft / 2;
        assert!(len > pad, "STFT input of {len} samples is too short for reflect padding {pad}");
        // Reflect padding: x[pad..1] ++ x ++ x[len-2..len-2-pad].
        let left = x.clone().slice([0..batch, 1..pad + 1]).flip([1]);
        let right = x.clone().slice([0..batch, len - pad - 1..len - 1]).flip([1]);
        let padded = Tensor::cat(vec![left, x, right], 1).unsqueeze_dim::<3>(1);
        let basis = self.forward_basis(&padded.device());
        let spec = conv1d(padded, basis, None, ConvOptions::new([self.hop], [0], [1], 1));
        let bins = self.bins();
        let frames = spec.dims()[2];
        let re = spec.clone().slice([0..batch, 0..bins, 0..frames]);
        let im = spec.slice([0..batch, bins..2 * bins, 0..frames]);
        let mag = (re.clone() * re.clone() + im.clone() * im.clone()).sqrt();
        // Phase where float rounding, not the signal, would decide it (see `ZERO_BIN`):
        // torch.angle(x + 0i) is +pi for x < 0 whatever the sign of the zero (atan2 gives -pi for
        // -0, and the sign of a zero sum depends on the data), and bins below ZERO_BIN get phase 0.
        let negative_real_axis = im.clone().equal_elem(0.0).bool_and(re.clone().lower_elem(0.0));
        let zero_bin = mag.clone().lower_elem(ZERO_BIN);
        let phase = im.atan2(re).mask_fill(negative_real_axis, std::f32::consts::PI).mask_fill(zero_bin, 0.0);
        Tensor::cat(vec![mag, phase], 1)
    }

    /// Inverse STFT of `magnitude * exp(i * phase)`.
    ///
    /// # Shapes
    /// - magnitude, phase: `[batch, bins, frames]`
    /// - output: `[batch, hop * (frames - 1)]`
    pub fn inverse(&self, magnitude: Tensor<3>, phase: Tensor<3>) -> Tensor<2> {
        let [batch, _, frames] = magnitude.dims();
        let device = magnitude.device();
        let re = magnitude.clone() * phase.clone().cos();
        let im = magnitude * phase.sin();
        let spec = Tensor::cat(vec![re, im], 1);
        let y = conv_transpose1d(
            spec,
            self.inverse_basis(&device),
            None,
            ConvTransposeOptions::new([self.hop], [0], [0], [1], 1),
        ); // [b, 1, n_fft + hop * (frames - 1)]
        let start = self.n_fft / 2;
        let out_len = self.hop * (frames - 1);
        let envelope = self.window_envelope(frames, start, out_len);
        let y = y.slice([0..batch, 0..1, start..start + out_len]).reshape([batch, out_len]);
        y / Tensor::<1>::from_data(TensorData::new(envelope, [out_len]), &device).unsqueeze::<2>()
    }

    /// Sum of squared windows over the overlapping frames, for output samples `start..start+len`.
    fn window_envelope(&self, frames: usize, start: usize, len: usize) -> Vec<f32> {
        let w = self.window();
        let mut env = vec![0f64; self.n_fft + self.hop * (frames - 1)];
        for f in 0..frames {
            for (t, wt) in w.iter().enumerate() {
                env[f * self.hop + t] += wt * wt;
            }
        }
        env[start..start + len].iter().map(|&e| e.max(1e-11) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_forward_reconstructs_the_signal() {
        // A full-length STFT round trip must give back the input (torch.istft(torch.stft(x)) == x).
        let d = Device::ndarray();
        let stft = Stft { n_fft: 20, hop: 5 };
        let x: Vec<f32> = (0..100).map(|i| ((i as f32) * 0.37).sin() + 0.1 * (i as f32 * 1.3).cos()).collect();
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [1, 100]), &d);
        let mp = stft.magnitude_phase(xt);
        assert_eq!(mp.dims(), [1, 22, 21]);
        let mag = mp.clone().slice([0..1, 0..11]);
        let ph = mp.slice([0..1, 11..22]);
        let y = stft.inverse(mag, ph).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y.len(), 100);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn envelope_is_one_point_five_inside() {
        // Periodic Hann(20)^2 at hop 5 sums to 1.5 where four frames overlap, 1.25 at the first
        // kept sample (w^2 at 10, 5, 0 = 1 + 0.25 + 0).
        let stft = Stft { n_fft: 20, hop: 5 };
        let env = stft.window_envelope(10, 10, 45);
        assert!((env[0] - 1.25).abs() < 1e-6);
        assert!((env[20] - 1.5).abs() < 1e-6);
    }
}
