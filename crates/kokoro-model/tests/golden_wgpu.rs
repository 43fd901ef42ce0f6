//! The golden comparison on burn-wgpu (Vulkan, Metal or DX12; Mesa's lavapipe CPU adapter in CI),
//! with the same tolerances as on the CPU. Built only with `--features wgpu`.
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::Device;

#[test]
fn golden_hello_af_heart_on_wgpu() {
    let device = Device::wgpu_options().init().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
    let kokoro = common::load(&device);
    common::check("hello_af_heart", &kokoro, &device);
}
