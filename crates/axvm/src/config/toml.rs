//! Config files in the ArceOS hypervisor's TOML format, read unchanged.
//!
//! [`AxVMCrateConfig`] mirrors the file (`[base]`, `[kernel]`, `[devices]`); it keeps what
//! only the host needs (image file paths) and converts into an [`AxVMConfig`] with
//! [`AxVMCrateConfig::into_vm_config`]. Unknown keys and wrong types are refused with the
//! line they are on, so a typo never silently drops a setting.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use core::fmt;
use core::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{
    AxVCpuConfig, AxVMConfig, ConfigError, DeviceBackend, EmulatedDeviceConfig, EmulatedDeviceType,
    MacAddress, MappingFlags, NetBackend, PassThroughDeviceConfig, VMImageConfig, VMInterruptMode,
    VmMemConfig, VmMemMappingType,
};
use crate::{GuestPhysAddr, HostPhysAddr};

/// A config file as written: the seed's `AxVMCrateConfig`.
///
/// ```
/// use axvm::config::toml::AxVMCrateConfig;
/// let text = r#"
/// [base]
/// id = 1
/// name = "hello"
/// vm_type = 1
/// cpu_num = 1
/// [kernel]
/// entry_point = 0x8000
/// kernel_path = "hello.bin"
/// kernel_load_addr = 0x8000
/// memory_regions = [[0x0, 0x100_0000, 0x7, 0]]
/// [devices]
/// emu_devices = []
/// passthrough_devices = []
/// "#;
/// let file = AxVMCrateConfig::from_toml(text).unwrap();
/// assert_eq!(file.kernel.kernel_path, "hello.bin");
/// let config = file.into_vm_config().unwrap();
/// assert_eq!(config.memory_regions[0].size, 0x100_0000);
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxVMCrateConfig {
    /// `[base]`: identity and vCPUs.
    pub base: VMBaseConfig,
    /// `[kernel]`: images, entry and memory.
    pub kernel: VMKernelConfig,
    /// `[devices]`: emulated and pass-through devices.
    #[serde(default)]
    pub devices: VMDevicesConfig,
}

/// The `[base]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VMBaseConfig {
    /// VM id.
    pub id: usize,
    /// VM name.
    pub name: String,
    /// ArceOS VM type (0 host VM, 1 RTOS, 2 Linux).
    #[serde(default = "default_vm_type")]
    pub vm_type: usize,
    /// Number of vCPUs.
    pub cpu_num: usize,
    /// Physical CPU id per vCPU.
    pub phys_cpu_ids: Option<Vec<usize>>,
    /// Physical CPU affinity mask per vCPU.
    pub phys_cpu_sets: Option<Vec<usize>>,
}

fn default_vm_type() -> usize {
    1
}

/// The `[kernel]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VMKernelConfig {
    /// Where vCPUs start (for images whose format does not say).
    pub entry_point: u64,
    /// `"fs"` or `"memory"`; axvm always reads the files named here.
    pub image_location: Option<String>,
    /// The kernel image file, relative to the config file.
    pub kernel_path: String,
    /// Where the kernel image is loaded.
    pub kernel_load_addr: u64,
    /// A BIOS image file.
    pub bios_path: Option<String>,
    /// Where the BIOS image is loaded.
    pub bios_load_addr: Option<u64>,
    /// A device tree blob file.
    pub dtb_path: Option<String>,
    /// Where the device tree blob is loaded.
    pub dtb_load_addr: Option<u64>,
    /// A ramdisk file.
    pub ramdisk_path: Option<String>,
    /// Where the ramdisk is loaded.
    pub ramdisk_load_addr: Option<u64>,
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// A disk image file: the disk of the first virtio block device (`emu_type` 0xE1) that
    /// has no `[devices.backends]` entry.
    pub disk_path: Option<String>,
    /// `[gpa, size, flags, map_type]` rows.
    #[serde(deserialize_with = "rows")]
    pub memory_regions: Vec<RawMemRegion>,
}

/// One `memory_regions` row as written.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct RawMemRegion {
    /// Guest-physical start.
    pub gpa: u64,
    /// Size in bytes.
    pub size: u64,
    /// MappingFlags bits.
    pub flags: u64,
    /// 0 MapAlloc, 1 MapIdentical, 2 MapReserved.
    pub map_type: u64,
}

/// The `[devices]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VMDevicesConfig {
    /// `[name, base_gpa, length, irq_id, emu_type, cfg_list]` rows.
    #[serde(default, deserialize_with = "rows")]
    pub emu_devices: Vec<RawEmuDevice>,
    /// `[name, base_gpa, base_hpa, length, irq_id]` rows.
    #[serde(default, deserialize_with = "rows")]
    pub passthrough_devices: Vec<RawPassThroughDevice>,
    /// `"no_irq"`, `"emu"`, `"passthrough"` or their aliases.
    #[serde(default)]
    pub interrupt_mode: Option<String>,
    /// ArceOS: device-tree nodes kept from the guest (no meaning without a device tree).
    #[serde(default)]
    pub excluded_devices: Vec<Vec<String>>,
    /// ArceOS: guest-physical ranges passed through at the same host-physical address.
    #[serde(default)]
    pub passthrough_addresses: Vec<RawPassThroughAddress>,
    /// axvm's extension: what each device is connected to, keyed by its `emu_devices` name
    /// (see [`RawBackend`]).
    #[serde(default)]
    pub backends: BTreeMap<String, RawBackend>,
}

/// One `emu_devices` row as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawEmuDevice {
    /// Name.
    pub name: String,
    /// Guest-physical base.
    pub base_gpa: u64,
    /// Length in bytes.
    pub length: u64,
    /// Interrupt line.
    pub irq_id: u64,
    /// Device type number.
    pub emu_type: u64,
    /// Device settings.
    #[serde(default)]
    pub cfg_list: Vec<u64>,
}

/// One `[devices.backends]` entry as written: `{ path = "disk.img", read_only = true }` for
/// a disk, `{ net = "switch:lan", mac = "52:54:00:12:34:56" }` for a network.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// A disk image file or block device, relative to the config file.
    pub path: Option<String>,
    /// Whether the disk is read-only for the guest.
    pub read_only: Option<bool>,
    /// `"tap:NAME"` or `"switch:NAME"`.
    pub net: Option<String>,
    /// The network device's MAC address.
    pub mac: Option<String>,
}

impl RawBackend {
    /// The backend this entry describes: a disk or a network, never both.
    pub fn to_backend(&self) -> Result<DeviceBackend, String> {
        match (&self.path, &self.net) {
            (Some(path), None) if self.mac.is_none() => Ok(DeviceBackend::Disk {
                path: path.clone(),
                read_only: self.read_only.unwrap_or(false),
            }),
            (None, Some(net)) if self.read_only.is_none() => Ok(DeviceBackend::Net {
                network: NetBackend::parse(net)?,
                mac: self.mac.as_deref().map(MacAddress::parse).transpose()?,
            }),
            (Some(_), None) => Err("a disk (`path`) has no `mac`".into()),
            (None, Some(_)) => Err("a network (`net`) has no `read_only`".into()),
            _ => Err(
                "give a disk (`path = \"disk.img\"`) or a network (`net = \"switch:lan\"`), exactly one"
                    .into(),
            ),
        }
    }
}

/// One `passthrough_devices` row as written.
#[derive(Clone, Debug, Deserialize)]
pub struct RawPassThroughDevice {
    /// Name.
    pub name: String,
    /// Guest-physical base.
    pub base_gpa: u64,
    /// Host-physical base.
    pub base_hpa: u64,
    /// Length in bytes.
    pub length: u64,
    /// Interrupt line.
    #[serde(default)]
    pub irq_id: u64,
}

/// One `passthrough_addresses` entry as written.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassThroughAddress {
    /// Guest- and host-physical base.
    pub base_gpa: u64,
    /// Length in bytes.
    pub length: u64,
}

/// Deserializes a list of rows, refusing a row array with more elements than its struct
/// has fields: serde's derived code stops reading after the last field, which would drop the
/// extra value silently.
fn rows<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let rows = Vec::<Row<T>>::deserialize(deserializer)?;
    Ok(rows.into_iter().map(|row| row.0).collect())
}

/// One row of [`rows`]: an array (checked for extra elements) or a table.
struct Row<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Row<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RowVisitor(PhantomData))
    }
}

struct RowVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for RowVisitor<T> {
    type Value = Row<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row: an array or a table")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut counted = Counted {
            seq: &mut seq,
            count: 0,
        };
        let value = T::deserialize(SeqAccessDeserializer::new(&mut counted))?;
        let used = counted.count;
        let mut len = used;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        if len > used {
            let expected = format!("at most {used} elements");
            return Err(de::Error::invalid_length(len, &expected.as_str()));
        }
        Ok(Row(value))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Row)
    }
}

/// A [`SeqAccess`] that counts the elements read through it.
struct Counted<'a, A> {
    seq: &'a mut A,
    count: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Counted<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let element = self.seq.next_element_seed(seed)?;
        self.count += usize::from(element.is_some());
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

impl AxVMCrateConfig {
    /// Parses a config file's text. Syntax errors, unknown keys and wrong types are refused
    /// with their line and column.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        ::toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((0, 0));
            let message = err.message().trim();
            let message = match err.span().and_then(|span| offending_line(text, span.start)) {
                Some(source) => format!("{message} (in `{source}`)"),
                None => message.to_string(),
            };
            ConfigError::Parse {
                line,
                column,
                message,
            }
        })
    }

    /// The [`AxVMConfig`] this file describes, checked with [`AxVMConfig::validate`].
    pub fn into_vm_config(self) -> Result<AxVMConfig, ConfigError> {
        let config = self.to_vm_config_unchecked()?;
        config.validate()?;
        Ok(config)
    }

    /// The [`AxVMConfig`] this file describes, refusing only values that have no meaning
    /// (unknown flag bits, map types, interrupt modes); for tools that want to list every
    /// problem with [`AxVMConfig::problems`] instead of stopping at the first.
    pub fn to_vm_config_unchecked(&self) -> Result<AxVMConfig, ConfigError> {
        let kernel = &self.kernel;
        let entry = GuestPhysAddr::new(kernel.entry_point);
        let memory_regions = kernel
            .memory_regions
            .iter()
            .enumerate()
            .map(|(index, raw)| convert_region(index, raw))
            .collect::<Result<Vec<_>, _>>()?;
        let interrupt_mode = match &self.devices.interrupt_mode {
            None => VMInterruptMode::default(),
            Some(name) => VMInterruptMode::from_name(name).ok_or_else(|| {
                ConfigError::invalid(
                    "devices.interrupt_mode",
                    format!("\"{name}\" is not a mode: use \"no_irq\", \"emu\" or \"passthrough\""),
                )
            })?,
        };
        Ok(AxVMConfig {
            id: self.base.id,
            name: self.base.name.clone(),
            vm_type: self.base.vm_type,
            cpu_num: self.base.cpu_num,
            phys_cpu_ids: self.base.phys_cpu_ids.clone(),
            phys_cpu_sets: self.base.phys_cpu_sets.clone(),
            cpu_config: AxVCpuConfig {
                bsp_entry: entry,
                ap_entry: entry,
            },
            image_config: VMImageConfig {
                kernel_load_gpa: GuestPhysAddr::new(kernel.kernel_load_addr),
                bios_load_gpa: kernel.bios_load_addr.map(GuestPhysAddr::new),
                dtb_load_gpa: kernel.dtb_load_addr.map(GuestPhysAddr::new),
                ramdisk_load_gpa: kernel.ramdisk_load_addr.map(GuestPhysAddr::new),
            },
            cmdline: kernel.cmdline.clone(),
            memory_regions,
            emu_devices: self.emu_devices()?,
            pass_through_devices: self.pass_through_devices(),
            interrupt_mode,
        })
    }

    /// The `emu_devices` rows, each with its backend: its `[devices.backends]` entry, or
    /// `kernel.disk_path` for the first virtio block device without one.
    fn emu_devices(&self) -> Result<Vec<EmulatedDeviceConfig>, ConfigError> {
        let mut devices: Vec<_> = self.devices.emu_devices.iter().map(convert_emu).collect();
        for (name, raw) in &self.devices.backends {
            let field = || format!("devices.backends.{name}");
            let mut rows = devices.iter_mut().filter(|d| &d.name == name);
            let device = rows.next().ok_or_else(|| {
                ConfigError::invalid(
                    field(),
                    "names no emu_devices row: a backend belongs to the row with this name",
                )
            })?;
            device.backend = Some(
                raw.to_backend()
                    .map_err(|m| ConfigError::invalid(field(), m))?,
            );
            if rows.next().is_some() {
                return Err(ConfigError::invalid(
                    field(),
                    "two emu_devices rows have this name: give each device its own name",
                ));
            }
        }
        if let Some(path) = &self.kernel.disk_path {
            let first_disk = devices
                .iter_mut()
                .find(|d| d.emu_type == EmulatedDeviceType::VirtioBlk && d.backend.is_none());
            if let Some(device) = first_disk {
                device.backend = Some(DeviceBackend::Disk {
                    path: path.clone(),
                    read_only: false,
                });
            }
        }
        Ok(devices)
    }

    fn pass_through_devices(&self) -> Vec<PassThroughDeviceConfig> {
        let devices = self
            .devices
            .passthrough_devices
            .iter()
            .map(|raw| PassThroughDeviceConfig {
                name: raw.name.clone(),
                base_gpa: GuestPhysAddr::new(raw.base_gpa),
                base_hpa: HostPhysAddr::new(raw.base_hpa),
                length: raw.length,
                irq_id: raw.irq_id,
            });
        let addresses =
            self.devices
                .passthrough_addresses
                .iter()
                .enumerate()
                .map(|(index, raw)| PassThroughDeviceConfig {
                    name: format!("passthrough_addresses[{index}]"),
                    base_gpa: GuestPhysAddr::new(raw.base_gpa),
                    base_hpa: HostPhysAddr::new(raw.base_gpa),
                    length: raw.length,
                    irq_id: 0,
                });
        devices.chain(addresses).collect()
    }
}

fn convert_region(index: usize, raw: &RawMemRegion) -> Result<VmMemConfig, ConfigError> {
    let field = || format!("kernel.memory_regions[{index}]");
    let flags = MappingFlags::from_bits(raw.flags).ok_or_else(|| {
        ConfigError::invalid(
            field(),
            format!(
                "flags {:#x} has unknown bits; valid bits are READ 0x1, WRITE 0x2, EXECUTE 0x4, USER 0x8, DEVICE 0x10, UNCACHED 0x20",
                raw.flags
            ),
        )
    })?;
    let map_type = VmMemMappingType::from_raw(raw.map_type).ok_or_else(|| {
        ConfigError::invalid(
            field(),
            format!(
                "map_type {} is unknown: use 0 (MapAlloc), 1 (MapIdentical) or 2 (MapReserved)",
                raw.map_type
            ),
        )
    })?;
    Ok(VmMemConfig {
        gpa: GuestPhysAddr::new(raw.gpa),
        size: raw.size,
        flags,
        map_type,
    })
}

fn convert_emu(raw: &RawEmuDevice) -> EmulatedDeviceConfig {
    EmulatedDeviceConfig {
        name: raw.name.clone(),
        base_gpa: GuestPhysAddr::new(raw.base_gpa),
        length: raw.length,
        irq_id: raw.irq_id,
        emu_type: EmulatedDeviceType::from_raw(raw.emu_type),
        cfg_list: raw.cfg_list.clone(),
        backend: None,
    }
}

/// The text of the line holding byte `offset`, trimmed, when it is short enough to quote:
/// it shows the key a type error is about, which the parser's message does not name.
fn offending_line(text: &str, offset: usize) -> Option<&str> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |p| p + 1);
    let line = text[start..].lines().next()?.trim();
    (!line.is_empty() && line.len() <= 80).then_some(line)
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset.min(text.len()) - line_start + 1)
}
