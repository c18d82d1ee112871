//! [`ValidConfig`]: a config known to have passed [`AxVMConfig::validate`].
//!
//! A host checks a config early, before it plans images or takes resources, and then hands
//! it to [`AxVM::new_validated`](crate::AxVM::new_validated): the type carries the fact that
//! it was checked, so it is checked once instead of again in every layer it passes through.

use alloc::vec::Vec;
use core::ops::Deref;

use super::{AxVMConfig, ConfigError};
use crate::GuestPhysAddr;

/// An [`AxVMConfig`] that [`AxVMConfig::into_valid`] checked; read it through `Deref`.
///
/// ```
/// use axvm::{AxVMConfig, GuestPhysAddr};
/// let config = AxVMConfig::builder("vm").ram(0, 1 << 20).kernel_at(0x8000).build().unwrap();
/// let valid = config.into_valid().unwrap();
/// assert_eq!(valid.cpu_num, 1);
/// // Moving the entries checks only the entries.
/// assert!(valid.clone().with_entries(GuestPhysAddr::new(0x9000), GuestPhysAddr::new(0x9000)).is_ok());
/// assert!(valid.with_entries(GuestPhysAddr::new(0x20_0000), GuestPhysAddr::new(0x9000)).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidConfig(AxVMConfig);

impl AxVMConfig {
    /// The config as a [`ValidConfig`], or the first problem [`validate`](Self::validate)
    /// finds.
    pub fn into_valid(self) -> Result<ValidConfig, ConfigError> {
        self.validate()?;
        Ok(ValidConfig(self))
    }
}

impl ValidConfig {
    /// The config with the vCPUs entering at `bsp` (vCPU 0) and `ap` (the others), as an
    /// image's own entry point asks; refused, naming the entry, unless they lie in RAM.
    pub fn with_entries(
        mut self,
        bsp: GuestPhysAddr,
        ap: GuestPhysAddr,
    ) -> Result<Self, ConfigError> {
        self.0.cpu_config.bsp_entry = bsp;
        self.0.cpu_config.ap_entry = ap;
        let mut problems = Vec::new();
        self.0.check_entries(&mut problems);
        match problems.into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(self),
        }
    }

    /// The plain config.
    pub fn into_inner(self) -> AxVMConfig {
        self.0
    }
}

impl Deref for ValidConfig {
    type Target = AxVMConfig;

    fn deref(&self) -> &AxVMConfig {
        &self.0
    }
}
