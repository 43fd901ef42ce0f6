//! `--device`: which burn backend runs the model.

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::ValueEnum;

/// Backends selectable at run time.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A GPU through wgpu when built with it and an adapter exists, else the CPU.
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
        Ok(match self {
            DeviceChoice::Auto => {
                #[cfg(feature = "wgpu")]
                if let Ok(d) = DeviceChoice::Wgpu.device() {
                    return Ok(d);
                }
                DeviceChoice::Cpu.device()?
            }
            DeviceChoice::Cpu | DeviceChoice::Flex => Device::flex(),
            #[allow(deprecated)]
            DeviceChoice::Ndarray => Device::ndarray(),
            DeviceChoice::Wgpu => wgpu_device()?,
        })
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device> {
    Ok(Device::wgpu(Default::default()))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    bail!("this build has no wgpu backend; rebuild with `--features wgpu`")
}
