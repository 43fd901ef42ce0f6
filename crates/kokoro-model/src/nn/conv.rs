//! Small constructors for the PyTorch-style convolutions Kokoro uses everywhere.

use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};
use burn::tensor::{Device, Tensor};

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
