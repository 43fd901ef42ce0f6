//! Small constructors for the PyTorch-style convolutions Kokoro uses everywhere.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};
use burn::tensor::{DType, Device, Tensor, TensorData};
use kokoro_kernels::{Conv1dShape, Isa};

/// `nn.Conv1d(c_in, c_out, kernel, stride, padding, dilation)` with a bias.
pub fn conv1d(c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize, dilation: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(c_in, c_out, kernel)
        .with_stride(stride)
        .with_padding(PaddingConfig1d::Explicit(padding, padding))
        .with_dilation(dilation)
        .init(device)
}

/// `nn.ConvTranspose1d(c_in, c_out, kernel, stride, padding, output_padding, groups)` with a bias.
pub fn conv_transpose1d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
    groups: usize,
    device: &Device,
) -> ConvTranspose1d {
    ConvTranspose1dConfig::new([c_in, c_out], kernel)
        .with_stride(stride)
        .with_padding(padding)
        .with_padding_out(output_padding)
        .with_groups(groups)
        .init(device)
}

/// Which implementation runs the generator's hot loops (its convolutions and AdaIN -> Snake
/// pairs) on the CPU backend (burn-flex).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuKernels {
    /// kokoro-kernels: the direct convolution (AVX-512 or AVX2 + FMA micro-kernels) and the
    /// fused AdaIN + Snake, where the CPU has one of those micro-kernels; burn's ops otherwise.
    #[default]
    Kokoro,
    /// burn-flex's own ops everywhere (the reference, and `kokoro bench --compare-kernels`).
    Burn,
}

static BURN_KERNELS: AtomicBool = AtomicBool::new(false);

/// Chooses the CPU kernels for the whole process (a property of the machine, not of one model).
pub fn set_cpu_kernels(choice: CpuKernels) {
    BURN_KERNELS.store(choice == CpuKernels::Burn, Ordering::Relaxed);
}

/// The CPU kernels in use.
pub fn cpu_kernels() -> CpuKernels {
    if BURN_KERNELS.load(Ordering::Relaxed) { CpuKernels::Burn } else { CpuKernels::Kokoro }
}

/// The arithmetic of the generator's resblock convolutions (about 52 of Kokoro's ~55 GFLOP per
/// second of audio) on the CPU backend. Everything else stays float32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputePrecision {
    /// Float32 throughout (the reference).
    #[default]
    F32,
    /// int8 resblock convolutions: weights quantised per output channel, each convolution's
    /// input per window of time, exact int32 sums (kokoro-kernels' `Isa::Avx512Vnni` natively,
    /// `Isa::Simd128Int8` in the browser). Fidelity against float32: docs/validation.md. Where
    /// neither kernel runs, or on another backend, the convolutions stay float32
    /// ([`ComputePrecision::available`] says which).
    Int8,
}

impl ComputePrecision {
    pub const ALL: [ComputePrecision; 2] = [ComputePrecision::F32, ComputePrecision::Int8];

    pub fn as_str(self) -> &'static str {
        match self {
            ComputePrecision::F32 => "f32",
            ComputePrecision::Int8 => "int8",
        }
    }

    /// Whether this machine's CPU backend computes in this precision (float32 always; int8
    /// needs AVX512_VNNI, or WebAssembly SIMD128).
    pub fn available(self) -> bool {
        match self {
            ComputePrecision::F32 => true,
            ComputePrecision::Int8 => int8_isa().is_some(),
        }
    }
}

impl std::str::FromStr for ComputePrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown precision {s:?}: expected one of f32, int8"))
    }
}

/// The int8 micro-kernel this machine runs, if any.
fn int8_isa() -> Option<Isa> {
    [Isa::Avx512Vnni, Isa::Simd128Int8].into_iter().find(|isa| isa.available())
}

static INT8: AtomicBool = AtomicBool::new(false);

/// Chooses the resblock convolutions' precision for the whole process (like
/// [`set_cpu_kernels`]: one choice per deployment, read on every convolution).
pub fn set_compute_precision(precision: ComputePrecision) {
    INT8.store(precision == ComputePrecision::Int8, Ordering::Relaxed);
}

/// The resblock convolutions' precision in use.
pub fn compute_precision() -> ComputePrecision {
    if INT8.load(Ordering::Relaxed) { ComputePrecision::Int8 } else { ComputePrecision::F32 }
}

/// Whether kokoro-kernels take this tensor: float32 on the CPU backend, kernels chosen, and a
/// CPU with a vector micro-kernel (AVX-512, AVX2 + FMA, WebAssembly SIMD128; the portable one
/// is slower than burn-flex, so other architectures keep burn's ops).
pub(crate) fn kernels_take(x: &Tensor<3>) -> bool {
    cpu_kernels() == CpuKernels::Kokoro
        && x.dtype() == DType::F32
        && kokoro_kernels::detected_isa() != Isa::Portable
        && x.device() == Device::flex()
}

/// A float32 tensor's values (moved out without a copy when it is uniquely owned).
pub(crate) fn f32_values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("kernels_take checked float32")
}

/// `conv.forward(x)`, through kokoro-kernels' direct convolution when [`kernels_take`] the input
/// and the convolution has stride 1, one group and symmetric padding
/// (every convolution of the generator); burn's general path otherwise (the GPU, the browser,
/// strided convolutions).
///
/// On burn-flex, `into_data` of a uniquely owned contiguous tensor and `from_data` of a `Vec`
/// move the buffer without copying; the weights are copied and packed per call, about 1 % of
/// the convolution's own time at these sizes.
///
/// # Shapes
/// - x: `[batch, c_in, time]`
/// - output: `[batch, c_out, time_out]`
pub fn conv1d_forward(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    conv1d_forward_at(conv, x, ComputePrecision::F32)
}

/// [`conv1d_forward`] in a chosen precision: int8 where [`ComputePrecision::available`] and the
/// kernels take the input (and the sum is short enough for int32), float32 otherwise.
pub fn conv1d_forward_at(conv: &Conv1d, x: Tensor<3>, precision: ComputePrecision) -> Tensor<3> {
    let device = x.device();
    let padding = match conv.padding {
        PaddingConfig1d::Explicit(left, right) if left == right => left,
        _ => return conv.forward(x),
    };
    let [batch, c_in, t_in] = x.dims();
    let [c_out, w_in, kernel] = conv.weight.dims();
    let shape = Conv1dShape { batch, c_in, c_out, t_in, kernel, padding, dilation: conv.dilation };
    // Everything the kernel would refuse is checked before `x` is consumed.
    let applies = conv.stride == 1
        && conv.groups == 1
        && w_in == c_in
        && batch > 0
        && t_in > 0
        && shape.t_out().is_some()
        && conv.weight.val().dtype() == DType::F32
        && conv.bias.as_ref().is_none_or(|b| b.val().dtype() == DType::F32)
        && kernels_take(&x);
    let Some(t_out) = shape.t_out().filter(|_| applies) else {
        return conv.forward(x);
    };
    let input = f32_values(x);
    let weight = f32_values(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| f32_values(b.val()));
    let isa = match (precision, int8_isa()) {
        (ComputePrecision::Int8, Some(isa)) if c_in * kernel <= kokoro_kernels::MAX_INT8_TERMS => isa,
        _ => kokoro_kernels::detected_isa(),
    };
    let output = kokoro_kernels::conv1d_with(isa, &input, &weight, bias.as_deref(), shape).expect("a conv module's shapes, checked above");
    Tensor::from_data(TensorData::new(output, [batch, c_out, t_out]), &device)
}

/// `F.interpolate(x, scale_factor=2, mode='nearest')` on the last axis.
///
/// # Shapes
/// - x: `[batch, channels, time]`
/// - output: `[batch, channels, 2 * time]`
pub fn upsample_nearest2(x: Tensor<3>) -> Tensor<3> {
    let [b, c, t] = x.dims();
    x.unsqueeze_dim::<4>(3).expand([b, c, t, 2]).reshape([b, c, 2 * t])
}

/// Snake activation `x + 1/alpha * sin(alpha * x)^2`, per channel.
///
/// # Shapes
/// - x: `[batch, channels, time]`
/// - alpha: `[1, channels, 1]`
pub fn snake(x: Tensor<3>, alpha: Tensor<3>) -> Tensor<3> {
    let s = (x.clone() * alpha.clone()).sin();
    x + alpha.recip() * s.clone() * s
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn nearest_doubles_each_frame() {
        let d = Device::ndarray();
        let y = upsample_nearest2(Tensor::from_floats([[[1.0, 2.0]]], &d));
        y.into_data().assert_eq(&TensorData::from([[[1.0f32, 1.0, 2.0, 2.0]]]), false);
    }

    #[test]
    fn snake_of_half_pi_with_unit_alpha() {
        // x = pi/2, alpha = 1: pi/2 + sin(pi/2)^2 = 1.570796 + 1 = 2.570796.
        let d = Device::ndarray();
        let y = snake(Tensor::from_floats([[[std::f32::consts::FRAC_PI_2]]], &d), Tensor::ones([1, 1, 1], &d));
        y.into_data().assert_approx_eq::<f32>(&TensorData::from([[[2.570796f32]]]), Default::default());
    }
}
