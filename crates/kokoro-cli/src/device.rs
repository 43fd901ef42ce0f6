//! `--device`: which burn backend runs the model.

use anyhow::Result;
#[cfg(not(feature = "wgpu"))]
use anyhow::bail;
use burn::tensor::Device;
use clap::ValueEnum;
use kokoro_engine::Backend;

/// Backends selectable at run time.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A discrete or integrated GPU through wgpu when built with it and one exists, else the CPU.
    /// (A software adapter such as Mesa's lavapipe is slower than the CPU backend: not chosen.)
    Auto,
    /// The fastest CPU backend measured on this model (see docs/performance.md).
    Cpu,
    /// burn's flex CPU backend.
    Flex,
    /// burn's ndarray CPU backend.
    Ndarray,
    /// burn-wgpu (Vulkan, Metal, DX12); needs the `wgpu` feature.
    Wgpu,
}

impl DeviceChoice {
    pub fn device(self) -> Result<Device> {
        self.open().map(|(device, _)| device)
    }

    /// The device, and what kind of backend it turned out to be (`auto` decides here).
    pub fn open(self) -> Result<(Device, Backend)> {
        Ok(match self {
            DeviceChoice::Auto => {
                #[cfg(feature = "wgpu")]
                if let Some(d) = hardware_gpu() {
                    return Ok((d, Backend::Wgpu));
                }
                DeviceChoice::Cpu.open()?
            }
            DeviceChoice::Cpu | DeviceChoice::Flex => (Device::flex(), Backend::Cpu),
            #[allow(deprecated)]
            DeviceChoice::Ndarray => (Device::ndarray(), Backend::Cpu),
            DeviceChoice::Wgpu => (wgpu_device()?, Backend::Wgpu),
        })
    }
}

/// wgpu's preferred adapter (any kind, software ones included).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device> {
    Device::wgpu_options().init().map_err(|e| anyhow::anyhow!("no usable wgpu adapter: {e}"))
}

/// The first discrete, else integrated, GPU that initialises.
#[cfg(feature = "wgpu")]
fn hardware_gpu() -> Option<Device> {
    use burn::tensor::DeviceKind;
    [DeviceKind::DiscreteGpu(0), DeviceKind::IntegratedGpu(0)]
        .into_iter()
        .find_map(|kind| Device::wgpu_options().device_kind(kind).init().ok())
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    bail!("this build has no wgpu backend; rebuild with `--features wgpu`")
}

/// `--precision`: the arithmetic of the generator's resblock convolutions on the CPU backend.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct PrecisionArg {
    /// Precision of the generator's resblock convolutions (~95 % of the model's FLOPs) on the
    /// CPU: f32 (the reference) or int8 (AVX512_VNNI; faster, fidelity in docs/validation.md).
    /// Default: $KOKORO_PRECISION, else f32.
    #[arg(long, env = "KOKORO_PRECISION", default_value = "f32")]
    precision: kokoro_model::ComputePrecision,
}

impl PrecisionArg {
    pub fn precision(self) -> kokoro_model::ComputePrecision {
        self.precision
    }
}

/// Sets the precision for this process (`--precision`, or the server's `engine.precision`), or
/// refuses one the machine or backend lacks.
pub fn apply_precision(precision: kokoro_model::ComputePrecision, backend: Backend) -> Result<()> {
    use kokoro_model::ComputePrecision;
    let unavailable = |needs| crate::say::InputError::PrecisionUnavailable { precision: precision.as_str(), needs };
    match precision {
        ComputePrecision::F32 => {}
        ComputePrecision::Int8 if backend != Backend::Cpu => return Err(unavailable("the CPU backend (--device cpu)").into()),
        ComputePrecision::Int8 if !precision.available() => return Err(unavailable("a CPU with AVX512_VNNI").into()),
        ComputePrecision::Int8 => {}
    }
    kokoro_model::set_compute_precision(precision);
    Ok(())
}
