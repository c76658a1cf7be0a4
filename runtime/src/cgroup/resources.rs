//! The OCI `linux.resources` object on cgroup v2.
//!
//! [`WireResources`] mirrors the JSON with fixed capacities (`MAX_*`) and
//! borrowed, still escaped strings, so `config.json`'s wire struct can embed it;
//! [`Resources::from_wire`] converts it once into [`Resources`]. The OCI object
//! was designed for cgroup v1: values are converted as runc and crun do, and a
//! property cgroup v2 cannot honour is an error naming it.
//!
//! As in runc, zero means "unset" for the memory, cpu, pids and block I/O
//! limits and weights (Go tools write zero values), and -1 means "max".

use std::fmt;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json_core::str::EscapedStr;

use super::devices::{Access, DeviceRule, DeviceType, MAX_MAJOR, MAX_MINOR};
use super::CgroupError;
use crate::wire::{unescape, CappedMap, Field, HeapCapped, WireError, HAS_NUL};

/// Most entries in `linux.resources.devices`.
pub const MAX_DEVICE_RULES: usize = 64;
/// Most entries in each per-device list of `linux.resources.blockIO`.
pub const MAX_BLOCK_DEVICES: usize = 16;
/// Most entries in `linux.resources.hugepageLimits`.
pub const MAX_HUGEPAGE_LIMITS: usize = 8;
/// Most entries in `linux.resources.unified`.
pub const MAX_UNIFIED: usize = 32;
/// Longest key of `linux.resources.unified`, in bytes.
pub const MAX_UNIFIED_KEY: usize = 64;
/// Longest value of `linux.resources.unified`, in bytes.
pub const MAX_UNIFIED_VALUE: usize = 4096;
/// Longest `cpus` or `mems` list, in bytes.
pub const MAX_CPU_LIST: usize = 1024;
/// Longest short string: a device type or access, a huge page size.
pub const MAX_TOKEN: usize = 16;

/// Validated `linux.resources`: what the cgroup's interface files are set to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `devices`, in order; `None` when absent or empty (the container then
    /// gets the default rules only, where the kernel can enforce them).
    pub devices: Option<Vec<DeviceRule>>,
    /// Not from `linux.resources`: rules after `devices` and before the
    /// defaults that do not count as rules asked for. The runtime adds `m`
    /// for the nodes `linux.devices` lists, so that the init, already in the
    /// cgroup, can make them.
    pub implied_devices: Vec<DeviceRule>,
    /// `memory`.
    pub memory: Memory,
    /// `pids.limit` as `pids.max`.
    pub pids_max: Option<Limit>,
    /// `cpu`.
    pub cpu: Cpu,
    /// `blockIO`.
    pub io: Io,
    /// `hugepageLimits`, in order.
    pub hugetlb: Vec<HugepageLimit>,
    /// `unified`, in order: written last, so they override the properties above.
    pub unified: Vec<(UnifiedKey, String)>,
}

/// A limit file's value: a number or `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit: `max`.
    Max,
    /// This many bytes, processes, microseconds...
    Value(u64),
}

/// The memory controller's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// `memory.max`, from `limit`.
    pub max: Option<Limit>,
    /// `memory.low`, from `reservation`.
    pub low: Option<Limit>,
    /// `memory.swap.max`: OCI's `swap` (memory + swap) minus `limit`.
    pub swap_max: Option<Limit>,
}

/// The cpu and cpuset controllers' settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    /// `cpu.weight`, 1 to 10000, from `shares`.
    pub weight: Option<u64>,
    /// `cpu.max`, from `quota` and `period`.
    pub max: Option<CpuMax>,
    /// `cpu.max.burst`, from `burst`.
    pub burst: Option<u64>,
    /// `cpu.idle`, from `idle`.
    pub idle: Option<bool>,
    /// `cpuset.cpus`, from `cpus`.
    pub cpus: Option<CpuList>,
    /// `cpuset.mems`, from `mems`.
    pub mems: Option<CpuList>,
}

/// The value of `cpu.max`: `<quota|max> [period]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// Microseconds of CPU time per period, or `max`.
    pub quota: Limit,
    /// The period in microseconds; the kernel keeps its current one if `None`.
    pub period: Option<u64>,
}

/// A list of CPU or memory node numbers and ranges, such as `0-3,6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(String);

/// The io controller's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Io {
    /// The default `io.weight`, 1 to 10000, from `weight`.
    pub weight: Option<u64>,
    /// Per-device `io.weight` lines, from `weightDevice`.
    pub device_weights: Vec<DeviceWeight>,
    /// `io.max` lines, from the four `throttle*Device` lists.
    pub throttles: Vec<Throttle>,
}

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceNumber {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// One device's `io.weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceWeight {
    /// The device.
    pub device: DeviceNumber,
    /// 1 to 10000.
    pub weight: u64,
}

/// One device's `io.max` limit of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// The device.
    pub device: DeviceNumber,
    /// What is limited.
    pub kind: ThrottleKind,
    /// The limit.
    pub rate: Limit,
}

/// The keys of an `io.max` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    /// `rbps`: read bytes per second (`throttleReadBpsDevice`).
    ReadBps,
    /// `wbps`: write bytes per second (`throttleWriteBpsDevice`).
    WriteBps,
    /// `riops`: read operations per second (`throttleReadIOPSDevice`).
    ReadIops,
    /// `wiops`: write operations per second (`throttleWriteIOPSDevice`).
    WriteIops,
}

/// One `hugetlb.<size>.max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugepageLimit {
    /// The huge page size.
    pub page_size: PageSize,
    /// The limit in bytes.
    pub limit: u64,
}

/// A huge page size the way the kernel names it: `2MB`, `64KB`, `1GB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSize(String);

/// An interface file name `<controller>.<name>` that `unified` may write: no
/// `/` or `..`, and no cgroup core file husk manages itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedKey(String);

/// One interface file and the value to write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The file name, such as `memory.max`.
    pub file: String,
    /// The value, such as `max`.
    pub value: String,
}

/// Validates the JSON text of a `linux.resources` object.
pub fn parse_resources(json: &[u8]) -> Result<Resources, CgroupError> {
    let (wire, _) = serde_json_core::from_slice::<WireResources<'_>>(json).map_err(|e| {
        match crate::wire::duplicate_key(json) {
            Some(duplicate) => CgroupError::DuplicateKey(duplicate),
            None => CgroupError::Json(e),
        }
    })?;
    Resources::from_wire(wire)
}

impl Resources {
    /// Validates the wire form; properties are checked in the spec's order.
    pub fn from_wire(wire: WireResources<'_>) -> Result<Self, CgroupError> {
        let devices = wire.devices.map(convert_devices).transpose()?.flatten();
        let memory = wire.memory.map(convert_memory).transpose()?;
        let cpu = wire.cpu.map(convert_cpu).transpose()?;
        let io = wire.block_io.map(convert_block_io).transpose()?;
        let hugetlb = wire
            .hugepage_limits
            .map(convert_hugepage_limits)
            .transpose()?;
        if wire.network.is_some() {
            return Err(CgroupError::NotOnV2(Field::new("linux.resources.network")));
        }
        let pids_max = match wire.pids {
            Some(pids) => convert_pids(pids)?,
            None => None,
        };
        if wire.rdma.is_some() {
            return Err(CgroupError::Unsupported(Field::new("linux.resources.rdma")));
        }
        let unified = wire.unified.map(convert_unified).transpose()?;
        Ok(Self {
            devices,
            implied_devices: Vec::new(),
            memory: memory.unwrap_or_default(),
            pids_max,
            cpu: cpu.unwrap_or_default(),
            io: io.unwrap_or_default(),
            hugetlb: hugetlb.unwrap_or_default(),
            unified: unified.unwrap_or_default(),
        })
    }

    /// Whether these resources ask anything of a cgroup: limits or device
    /// rules. `implied_devices` alone does not.
    pub fn asks_for_anything(&self) -> bool {
        let asked = Self {
            implied_devices: Vec::new(),
            ..self.clone()
        };
        asked != Self::default()
    }

    /// The interface files to write and their values, in the order to write them.
    pub fn settings(&self) -> Vec<Setting> {
        let mut settings = Vec::new();
        let mut set = |file: &str, value: String| {
            settings.push(Setting {
                file: file.to_owned(),
                value,
            });
        };
        let memory = &self.memory;
        for (file, value) in [
            ("memory.max", memory.max),
            ("memory.low", memory.low),
            ("memory.swap.max", memory.swap_max),
        ] {
            if let Some(value) = value {
                set(file, value.to_string());
            }
        }
        if let Some(max) = self.pids_max {
            set("pids.max", max.to_string());
        }
        let cpu = &self.cpu;
        if let Some(weight) = cpu.weight {
            set("cpu.weight", weight.to_string());
        }
        if let Some(max) = cpu.max {
            set("cpu.max", max.to_string());
        }
        // After cpu.max: the kernel refuses a burst above the quota.
        if let Some(burst) = cpu.burst {
            set("cpu.max.burst", burst.to_string());
        }
        // After cpu.weight: the kernel refuses a weight for an idle group.
        if let Some(idle) = cpu.idle {
            set("cpu.idle", u8::from(idle).to_string());
        }
        if let Some(cpus) = &cpu.cpus {
            set("cpuset.cpus", cpus.0.clone());
        }
        if let Some(mems) = &cpu.mems {
            set("cpuset.mems", mems.0.clone());
        }
        if let Some(weight) = self.io.weight {
            set("io.weight", format!("default {weight}"));
        }
        for device in &self.io.device_weights {
            set("io.weight", format!("{} {}", device.device, device.weight));
        }
        for throttle in &self.io.throttles {
            let key = throttle.kind.key();
            set(
                "io.max",
                format!("{} {key}={}", throttle.device, throttle.rate),
            );
        }
        for limit in &self.hugetlb {
            set(
                &format!("hugetlb.{}.max", limit.page_size.0),
                limit.limit.to_string(),
            );
        }
        for (key, value) in &self.unified {
            set(&key.0, value.clone());
        }
        settings
    }
}

/// The controllers `settings` write files of, in order of first use: the part
/// of each file name before the first `.`, except `cgroup` (core files).
pub(super) fn controllers(settings: &[Setting]) -> Vec<&str> {
    let mut controllers: Vec<&str> = Vec::new();
    for setting in settings {
        let controller = setting.file.split('.').next().unwrap_or_default();
        if controller != "cgroup" && !controllers.contains(&controller) {
            controllers.push(controller);
        }
    }
    controllers
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Max => f.write_str("max"),
            Self::Value(value) => value.fmt(f),
        }
    }
}

impl fmt::Display for CpuMax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.quota.fmt(f)?;
        match self.period {
            Some(period) => write!(f, " {period}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl CpuList {
    /// The list, as written to `cpuset.cpus` or `cpuset.mems`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PageSize {
    /// The size, such as `2MB`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UnifiedKey {
    /// The file name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ThrottleKind {
    /// The key in an `io.max` line.
    pub fn key(self) -> &'static str {
        match self {
            Self::ReadBps => "rbps",
            Self::WriteBps => "wbps",
            Self::ReadIops => "riops",
            Self::WriteIops => "wiops",
        }
    }
}

// The wire layer. Field names follow the spec (camelCase); `Option<IgnoredAny>`
// marks properties that are rejected whatever their value.

/// The OCI `linux.resources` object as JSON: a bounded serde-json-core
/// struct that borrows from the input. Convert it with [`Resources::from_wire`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireResources<'a> {
    #[serde(borrow)]
    devices: Option<HeapCapped<WireDeviceRule<'a>, MAX_DEVICE_RULES>>,
    memory: Option<WireMemory>,
    #[serde(borrow)]
    cpu: Option<WireCpu<'a>>,
    #[serde(rename = "blockIO")]
    block_io: Option<WireBlockIo>,
    #[serde(borrow)]
    hugepage_limits: Option<HeapCapped<WireHugepageLimit<'a>, MAX_HUGEPAGE_LIMITS>>,
    network: Option<IgnoredAny>,
    pids: Option<WirePids>,
    rdma: Option<IgnoredAny>,
    #[serde(borrow)]
    unified: Option<CappedMap<'a, MAX_UNIFIED>>,
}

#[derive(Deserialize)]
struct WireDeviceRule<'a> {
    allow: Option<bool>,
    #[serde(borrow, rename = "type")]
    kind: Option<EscapedStr<'a>>,
    major: Option<i64>,
    minor: Option<i64>,
    #[serde(borrow)]
    access: Option<EscapedStr<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMemory {
    limit: Option<i64>,
    reservation: Option<i64>,
    swap: Option<i64>,
    kernel: Option<i64>,
    #[serde(rename = "kernelTCP")]
    kernel_tcp: Option<i64>,
    swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller")]
    disable_oom_killer: Option<bool>,
    use_hierarchy: Option<bool>,
    check_before_update: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCpu<'a> {
    shares: Option<u64>,
    quota: Option<i64>,
    burst: Option<u64>,
    period: Option<u64>,
    realtime_runtime: Option<i64>,
    realtime_period: Option<u64>,
    #[serde(borrow)]
    cpus: Option<EscapedStr<'a>>,
    #[serde(borrow)]
    mems: Option<EscapedStr<'a>>,
    idle: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBlockIo {
    weight: Option<u16>,
    leaf_weight: Option<u16>,
    weight_device: Option<HeapCapped<WireWeightDevice, MAX_BLOCK_DEVICES>>,
    throttle_read_bps_device: Option<HeapCapped<WireThrottleDevice, MAX_BLOCK_DEVICES>>,
    throttle_write_bps_device: Option<HeapCapped<WireThrottleDevice, MAX_BLOCK_DEVICES>>,
    #[serde(rename = "throttleReadIOPSDevice")]
    throttle_read_iops_device: Option<HeapCapped<WireThrottleDevice, MAX_BLOCK_DEVICES>>,
    #[serde(rename = "throttleWriteIOPSDevice")]
    throttle_write_iops_device: Option<HeapCapped<WireThrottleDevice, MAX_BLOCK_DEVICES>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireWeightDevice {
    major: Option<i64>,
    minor: Option<i64>,
    weight: Option<u16>,
    leaf_weight: Option<u16>,
}

#[derive(Deserialize)]
struct WireThrottleDevice {
    major: Option<i64>,
    minor: Option<i64>,
    rate: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHugepageLimit<'a> {
    #[serde(borrow)]
    page_size: Option<EscapedStr<'a>>,
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct WirePids {
    limit: Option<i64>,
}

/// Validates the rules as runc does: `type` defaults to `a`, an absent or -1
/// `major` or `minor` means any, `access` defaults to `rwm`. An empty list is
/// no rules.
fn convert_devices(
    devices: HeapCapped<WireDeviceRule<'_>, MAX_DEVICE_RULES>,
) -> Result<Option<Vec<DeviceRule>>, CgroupError> {
    const DEVICES: Field = Field::new("linux.resources.devices");
    let rules = devices.into_items(DEVICES)?;
    if rules.is_empty() {
        return Ok(None);
    }
    let mut converted = Vec::with_capacity(rules.len());
    for (i, rule) in rules.into_iter().enumerate() {
        let field = DEVICES.at(i);
        let allow = required(field.member("allow"), rule.allow)?;
        let kind = rule
            .kind
            .map(|k| unescape(field.member("type"), k, MAX_TOKEN))
            .transpose()?;
        let kind = match kind.as_deref() {
            None | Some("a") => DeviceType::All,
            Some("c") => DeviceType::Char,
            Some("b") => DeviceType::Block,
            Some(_) => return Err(invalid(field.member("type"), "must be a, b or c")),
        };
        let number = |member: &'static str, value: Option<i64>, max: u32| match value {
            None | Some(-1) => Ok(None),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|&n| n <= max)
                .map(Some)
                .ok_or_else(|| invalid(field.member(member), "must be -1 or a device number")),
        };
        let major = number("major", rule.major, MAX_MAJOR)?;
        let minor = number("minor", rule.minor, MAX_MINOR)?;
        let access = match rule.access {
            None => Access::ALL,
            Some(a) => Access::parse(&unescape(field.member("access"), a, MAX_TOKEN)?)
                .ok_or_else(|| invalid(field.member("access"), "must be letters of rwm"))?,
        };
        converted.push(DeviceRule {
            allow,
            kind,
            major,
            minor,
            access,
        });
    }
    Ok(Some(converted))
}

fn convert_memory(wire: WireMemory) -> Result<Memory, CgroupError> {
    const MEMORY: Field = Field::new("linux.resources.memory");
    if wire.kernel.is_some_and(|v| v != 0) {
        return Err(CgroupError::NotOnV2(MEMORY.member("kernel")));
    }
    if wire.kernel_tcp.is_some_and(|v| v != 0) {
        return Err(CgroupError::NotOnV2(MEMORY.member("kernelTCP")));
    }
    if wire.swappiness.is_some() {
        return Err(CgroupError::NotOnV2(MEMORY.member("swappiness")));
    }
    if wire.disable_oom_killer == Some(true) {
        return Err(CgroupError::NotOnV2(MEMORY.member("disableOOMKiller")));
    }
    if wire.use_hierarchy == Some(false) {
        return Err(CgroupError::NotOnV2(MEMORY.member("useHierarchy")));
    }
    if wire.check_before_update == Some(true) {
        return Err(CgroupError::Unsupported(MEMORY.member("checkBeforeUpdate")));
    }
    let limit = wire.limit.unwrap_or(0);
    let max = limit_of(MEMORY.member("limit"), limit)?;
    let low = limit_of(MEMORY.member("reservation"), wire.reservation.unwrap_or(0))?;
    // OCI's swap is memory + swap (cgroup v1's memsw); v2 limits swap alone.
    let swap = MEMORY.member("swap");
    let swap_max = match wire.swap.unwrap_or(0) {
        0 => None,
        -1 => Some(Limit::Max),
        total if total < -1 => return Err(invalid(swap, LIMIT_RANGE)),
        _ if limit <= 0 => {
            return Err(invalid(
                swap,
                "needs a memory.limit: it is the memory+swap total",
            ))
        }
        total if total < limit => {
            return Err(invalid(
                swap,
                "must be at least memory.limit: it is the memory+swap total",
            ))
        }
        total => Some(Limit::Value(total.abs_diff(limit))),
    };
    Ok(Memory { max, low, swap_max })
}

fn convert_pids(wire: WirePids) -> Result<Option<Limit>, CgroupError> {
    match wire.limit {
        None => Ok(None),
        Some(0 | -1) => Ok(Some(Limit::Max)),
        Some(limit) => u64::try_from(limit)
            .map(|limit| Some(Limit::Value(limit)))
            .map_err(|_| {
                invalid(
                    Field::new("linux.resources.pids.limit"),
                    "must be -1 or 0 (unlimited), or positive",
                )
            }),
    }
}

fn convert_cpu(wire: WireCpu<'_>) -> Result<Cpu, CgroupError> {
    const CPU: Field = Field::new("linux.resources.cpu");
    if wire.realtime_runtime.is_some_and(|v| v != 0) {
        return Err(CgroupError::NotOnV2(CPU.member("realtimeRuntime")));
    }
    if wire.realtime_period.is_some_and(|v| v != 0) {
        return Err(CgroupError::NotOnV2(CPU.member("realtimePeriod")));
    }
    let weight = wire.shares.filter(|&s| s != 0).map(shares_to_weight);
    let quota = limit_of(CPU.member("quota"), wire.quota.unwrap_or(0))?;
    let period = wire.period.filter(|&p| p != 0);
    let max = (quota.is_some() || period.is_some()).then(|| CpuMax {
        quota: quota.unwrap_or(Limit::Max),
        period,
    });
    let idle = match wire.idle {
        None => None,
        Some(0) => Some(false),
        Some(1) => Some(true),
        Some(_) => return Err(invalid(CPU.member("idle"), "must be 0 or 1")),
    };
    if idle == Some(true) && weight.is_some() {
        return Err(invalid(
            CPU.member("idle"),
            "cannot be 1 with cpu.shares set",
        ));
    }
    Ok(Cpu {
        weight,
        max,
        burst: wire.burst,
        idle,
        cpus: cpu_list(CPU.member("cpus"), wire.cpus)?,
        mems: cpu_list(CPU.member("mems"), wire.mems)?,
    })
}

/// cgroup v1 `cpu.shares` (2 to 262144, default 1024) as `cpu.weight` (1 to
/// 10000, default 100), by the map crun 1.23 and runc 1.3.2 moved to: with
/// `l = log2(shares)`, `ceil(10^((l² + 125 l) / 612 - 7/34))`, a curve through
/// both ranges' ends and their defaults (the old linear map made 1024 a weight
/// of 39, below every process outside the container). Values outside the
/// range are clamped.
///
/// Computed in fixed point (no libm: `pow` and `log2` with their tables were
/// ~11 KB of armv7's husk): the weight is the least `w` with
/// `log2(w) >= y = log2(10) (l² + 125 l - 126) / 612`. Where the curve is not
/// exactly on an integer, it is at least 4e-10 (relative) away from one, far
/// more than the fixed point's error (~2^-46), and where it is exactly on one
/// (shares 2, 1024, 262144) [`LOG2_SLACK`] absorbs that error; the tests
/// check every shares value against the f64 formula.
fn shares_to_weight(shares: u64) -> u64 {
    let l = log2_fixed(shares.clamp(2, 262_144));
    let l_squared = (l * l) >> LOG2_FRAC;
    let numerator = (l_squared + 125 * l).saturating_sub(126 << LOG2_FRAC);
    let y = ((numerator * log2_fixed(10)) / 612) >> LOG2_FRAC;
    // Binary search for the least weight whose log2 reaches y.
    let (mut low, mut high) = (1u64, 10_000u64);
    while low < high {
        let mid = (low + high) / 2;
        if log2_fixed(mid) + LOG2_SLACK >= y {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

/// Fractional bits of [`log2_fixed`].
const LOG2_FRAC: u32 = 48;
/// 2^-40: more than log2_fixed's error, less than the curve's distance from
/// any integer it does not hit exactly.
const LOG2_SLACK: u128 = 1 << (LOG2_FRAC - 40);

/// log2(n) for n >= 1, with [`LOG2_FRAC`] fractional bits (truncated): the
/// integer part from the highest bit, then one fractional bit per squaring
/// of the mantissa (held with 62 fractional bits, so squares fit in u128).
fn log2_fixed(n: u64) -> u128 {
    let int = 63 - n.max(1).leading_zeros();
    let mut log = u128::from(int) << LOG2_FRAC;
    let mut mantissa = (u128::from(n) << 62) >> int;
    for bit in (0..LOG2_FRAC).rev() {
        mantissa = (mantissa * mantissa) >> 62;
        if mantissa >= 2 << 62 {
            mantissa >>= 1;
            log |= 1 << bit;
        }
    }
    log
}

/// crun's and runc's linear map of cgroup v1 `blkio.weight` (10 to 1000) onto
/// `io.weight` (1 to 10000).
fn blkio_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight) - 10) * 9999 / 990
}

fn cpu_list(field: Field, list: Option<EscapedStr<'_>>) -> Result<Option<CpuList>, CgroupError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let list = unescape(field, list, MAX_CPU_LIST)?;
    if list.is_empty() {
        // Empty means "as the parent": nothing to write.
        return Ok(None);
    }
    if !list
        .chars()
        .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
    {
        return Err(invalid(
            field,
            "must be a list of numbers and ranges like 0-3,6",
        ));
    }
    Ok(Some(CpuList(list)))
}

fn convert_block_io(wire: WireBlockIo) -> Result<Io, CgroupError> {
    const BLOCK_IO: Field = Field::new("linux.resources.blockIO");
    let weight = match wire.weight {
        None | Some(0) => None,
        Some(weight @ 10..=1000) => Some(blkio_to_io_weight(weight)),
        Some(_) => return Err(invalid(BLOCK_IO.member("weight"), WEIGHT_RANGE)),
    };
    if wire.leaf_weight.is_some_and(|w| w != 0) {
        return Err(CgroupError::NotOnV2(BLOCK_IO.member("leafWeight")));
    }
    let mut device_weights = Vec::new();
    if let Some(devices) = wire.weight_device {
        const WEIGHT_DEVICE: Field = Field::new("linux.resources.blockIO.weightDevice");
        for (i, device) in devices.into_items(WEIGHT_DEVICE)?.into_iter().enumerate() {
            let field = WEIGHT_DEVICE.at(i);
            let number = device_number(field, device.major, device.minor)?;
            if device.leaf_weight.is_some_and(|w| w != 0) {
                return Err(CgroupError::NotOnV2(field.member("leafWeight")));
            }
            match device.weight {
                None | Some(0) => {}
                Some(weight @ 10..=1000) => device_weights.push(DeviceWeight {
                    device: number,
                    weight: blkio_to_io_weight(weight),
                }),
                Some(_) => return Err(invalid(field.member("weight"), WEIGHT_RANGE)),
            }
        }
    }
    let mut throttles = Vec::new();
    for (name, kind, devices) in [
        (
            "linux.resources.blockIO.throttleReadBpsDevice",
            ThrottleKind::ReadBps,
            wire.throttle_read_bps_device,
        ),
        (
            "linux.resources.blockIO.throttleWriteBpsDevice",
            ThrottleKind::WriteBps,
            wire.throttle_write_bps_device,
        ),
        (
            "linux.resources.blockIO.throttleReadIOPSDevice",
            ThrottleKind::ReadIops,
            wire.throttle_read_iops_device,
        ),
        (
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            ThrottleKind::WriteIops,
            wire.throttle_write_iops_device,
        ),
    ] {
        let Some(devices) = devices else { continue };
        let list = Field::new(name);
        for (i, device) in devices.into_items(list)?.into_iter().enumerate() {
            let field = list.at(i);
            let rate = required(field.member("rate"), device.rate)?;
            throttles.push(Throttle {
                device: device_number(field, device.major, device.minor)?,
                kind,
                // The kernel refuses 0; in cgroup v1 it removed the limit.
                rate: if rate == 0 {
                    Limit::Max
                } else {
                    Limit::Value(rate)
                },
            });
        }
    }
    Ok(Io {
        weight,
        device_weights,
        throttles,
    })
}

fn device_number(
    field: Field,
    major: Option<i64>,
    minor: Option<i64>,
) -> Result<DeviceNumber, CgroupError> {
    let number = |member, n: Option<i64>| {
        u32::try_from(required(field.member(member), n)?)
            .map_err(|_| invalid(field.member(member), "must be a device number"))
    };
    Ok(DeviceNumber {
        major: number("major", major)?,
        minor: number("minor", minor)?,
    })
}

fn convert_hugepage_limits(
    wire: HeapCapped<WireHugepageLimit<'_>, MAX_HUGEPAGE_LIMITS>,
) -> Result<Vec<HugepageLimit>, CgroupError> {
    const HUGEPAGE_LIMITS: Field = Field::new("linux.resources.hugepageLimits");
    wire.into_items(HUGEPAGE_LIMITS)?
        .into_iter()
        .enumerate()
        .map(|(i, wire)| {
            let field = HUGEPAGE_LIMITS.at(i).member("pageSize");
            let size = unescape(field, required(field, wire.page_size)?, MAX_TOKEN)?;
            let valid = ["KB", "MB", "GB"].iter().any(|unit| {
                size.strip_suffix(unit).is_some_and(|n| {
                    !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
                })
            });
            if !valid {
                return Err(invalid(field, "must be a size like 64KB, 2MB or 1GB"));
            }
            Ok(HugepageLimit {
                page_size: PageSize(size),
                limit: required(HUGEPAGE_LIMITS.at(i).member("limit"), wire.limit)?,
            })
        })
        .collect()
}

/// Core files `unified` may set; every other `cgroup.*` file is husk's to manage.
const UNIFIED_CORE_FILES: &[&str] = &["cgroup.max.depth", "cgroup.max.descendants"];

fn convert_unified(
    wire: CappedMap<'_, MAX_UNIFIED>,
) -> Result<Vec<(UnifiedKey, String)>, CgroupError> {
    const UNIFIED: Field = Field::new("linux.resources.unified");
    let entries = wire.into_entries(UNIFIED)?;
    let mut unified = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let key = match unescape(UNIFIED, key, MAX_UNIFIED_KEY) {
            Err(WireError::TooLong { max, .. }) => {
                return Err(CgroupError::UnifiedTooLong {
                    key: truncate(key.0, MAX_UNIFIED_KEY),
                    what: "key",
                    max,
                });
            }
            other => other?,
        };
        let refuse = |reason| CgroupError::Unified {
            key: key.clone(),
            reason,
        };
        if key.contains('/') {
            return Err(refuse("must not contain '/'"));
        }
        if key.contains("..") {
            return Err(refuse("must not contain '..'"));
        }
        let well_formed = key.split_once('.').is_some_and(|(controller, name)| {
            !controller.is_empty()
                && !name.is_empty()
                && !name.starts_with('.')
                && !name.ends_with('.')
                && controller
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        });
        if !well_formed {
            return Err(refuse("must have the form <controller>.<file>"));
        }
        if key.starts_with("cgroup.") && !UNIFIED_CORE_FILES.contains(&key.as_str()) {
            return Err(refuse("is a cgroup core file husk manages itself"));
        }
        let value = match unescape(UNIFIED, value, MAX_UNIFIED_VALUE) {
            Ok(value) => value,
            Err(WireError::TooLong { max, .. }) => {
                return Err(CgroupError::UnifiedTooLong {
                    key,
                    what: "value",
                    max,
                });
            }
            Err(WireError::Invalid {
                reason: HAS_NUL, ..
            }) => {
                return Err(refuse("has a value that contains a NUL byte"));
            }
            Err(_) => return Err(refuse("has a value with an invalid escape sequence")),
        };
        unified.push((UnifiedKey(key), value));
    }
    Ok(unified)
}

/// The first `max` bytes of `text` (fewer at a character boundary), then "...".
fn truncate(text: &str, max: usize) -> String {
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &text[..end])
}

const LIMIT_RANGE: &str = "must be -1 (unlimited), 0 (unset) or positive";
const WEIGHT_RANGE: &str = "must be 0 (unset) or from 10 to 1000";

/// A limit in OCI's convention: 0 unset, -1 `max`.
fn limit_of(field: Field, value: i64) -> Result<Option<Limit>, CgroupError> {
    match value {
        0 => Ok(None),
        -1 => Ok(Some(Limit::Max)),
        value => u64::try_from(value)
            .map(|value| Some(Limit::Value(value)))
            .map_err(|_| invalid(field, LIMIT_RANGE)),
    }
}

fn required<T>(field: Field, value: Option<T>) -> Result<T, CgroupError> {
    value.ok_or(CgroupError::Missing(field))
}

fn invalid(field: Field, reason: &'static str) -> CgroupError {
    CgroupError::Invalid { field, reason }
}

#[cfg(test)]
mod tests;
