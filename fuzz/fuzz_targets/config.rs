//! A config file's text: parsing, conversion, validation and (for a config that passes) the
//! plan `axvm check` and `axvm run` start from, with a one-byte kernel and no host limits.
//! Nothing may panic; `validate` refuses exactly when `problems` lists something, with the
//! first of them; every error displays.
#![no_main]

use axvm::config::toml::AxVMCrateConfig;
use axvm_kvm::{BootImages, VmPlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = match AxVMCrateConfig::from_toml(text) {
        Ok(file) => file,
        Err(err) => return drop(err.to_string()),
    };
    let config = match file.to_vm_config_unchecked() {
        Ok(config) => config,
        Err(err) => return drop(err.to_string()),
    };
    let problems = config.problems();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    match config.validate() {
        Ok(()) => assert!(problems.is_empty(), "validate passed over {messages:?}"),
        Err(err) => assert_eq!(
            Some(&err.to_string()),
            messages.first(),
            "validate's refusal is not the first problem"
        ),
    }
    let images = BootImages {
        kernel: vec![0xf4],
        ..Default::default()
    };
    let _ = VmPlan::sketch(&config, &images);
    if problems.is_empty() {
        if let Err(err) = VmPlan::for_valid_config_on(&config, &images, None) {
            drop(err.to_string());
        }
    }
});
