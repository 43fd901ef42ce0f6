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
