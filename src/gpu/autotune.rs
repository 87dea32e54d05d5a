//! Kernel-variant choice by measurement, remembered per adapter and driver.
//!
//! Where an op has several variants that compute the same sums in the same
//! order (so that which one runs never changes a result, only its speed), the
//! first call of a new shape times each once and keeps the fastest; winners
//! are written to `<cache dir>/autotune/<adapter>.txt` (named by the adapter
//! and, for a CPU adapter, the host CPU; atomically, after each new winner),
//! so a second run does not tune again. Ops whose variants
//! differ in rounding are not tuned: a run's numbers must not depend on the
//! machine's mood. `CONDENSER_AUTOTUNE=0` turns tuning off (the ops' own
//! heuristics choose); a missing, unreadable or malformed file is ignored and
//! rewritten.

use std::collections::BTreeMap;
use std::path::PathBuf;

const HEADER: &str = "# condenser autotune v1: key <tab> variant";
/// Bounds what is read back (a file of this size is no file of ours).
const MAX_BYTES: u64 = 1 << 20;

#[derive(Default)]
pub(crate) struct Tuner {
    path: Option<PathBuf>,
    winners: BTreeMap<String, String>,
    /// Variant timings done by this process (tests check that a second
    /// process with the same cache does none).
    pub tunings: usize,
}

/// A file name from the adapter's identity: letters, digits, '-' only. A CPU
/// adapter (llvmpipe) names itself the same on every CPU, but its winners
/// depend on the CPU (what LLVM makes of a load differs with and without
/// AVX-512): its file name carries the host CPU's identity too.
fn file_name(info: &wgpu::AdapterInfo) -> String {
    let cpu = match info.device_type {
        wgpu::DeviceType::Cpu => format!("-{}", host_cpu_tag()),
        _ => String::new(),
    };
    let raw = format!(
        "{}-{:?}-{}-{}{cpu}",
        info.name, info.backend, info.driver, info.driver_info
    );
    let clean: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{}.txt", clean.chars().take(160).collect::<String>())
}

impl Tuner {
    pub fn new(info: &wgpu::AdapterInfo) -> Self {
        let path = super::registry::cache_dir().map(|d| d.join("autotune").join(file_name(info)));
        let winners = path
            .as_ref()
            .and_then(|p| crate::fsutil::read_regular(p, MAX_BYTES).ok())
            .map(|bytes| parse(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        Tuner {
            path,
            winners,
            tunings: 0,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.winners.get(key).map(String::as_str)
    }

    /// Remembers `winner` for `key` and rewrites the file. A cache that
    /// cannot be written (read-only home, full disk) costs only a re-tune
    /// next run, so that is not an error.
    pub fn put(&mut self, key: &str, winner: &str) {
        self.tunings += 1;
        self.winners.insert(key.to_string(), winner.to_string());
        let Some(path) = &self.path else { return };
        let mut text = format!("{HEADER}\n");
        for (k, v) in &self.winners {
            text.push_str(&format!("{k}\t{v}\n"));
        }
        if let Err(e) = crate::fsutil::write_atomic(path, text.as_bytes()) {
            eprintln!("warning: the autotune cache was not saved ({e})");
        }
    }
}

/// Lines `key<TAB>variant` after the header; anything else drops the file.
fn parse(text: &str) -> BTreeMap<String, String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for line in lines {
        match line.split_once('\t') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() && !v.contains('\t') => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => return BTreeMap::new(),
        }
    }
    out
}

/// The host CPU's identity as 16 hex digits: a hash (FNV-1a) of its first
/// /proc/cpuinfo entry's vendor, family, model, name and flags; where there is
/// no /proc/cpuinfo, of the architecture alone.
fn host_cpu_tag() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_tag(&info)
}

fn cpu_tag(cpuinfo: &str) -> String {
    const KEYS: [&str; 5] = ["vendor_id", "cpu family", "model", "model name", "flags"];
    let mut text = String::from(std::env::consts::ARCH);
    // The first processor's entry: fields up to the first blank line.
    for line in cpuinfo.lines().take_while(|l| !l.trim().is_empty()) {
        if let Some((k, v)) = line.split_once(':')
            && KEYS.contains(&k.trim())
        {
            text.push('|');
            text.push_str(v.trim());
        }
    }
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Whether tuning is on: `CONDENSER_AUTOTUNE` unset or `1` (`0` turns it off).
pub(crate) fn enabled() -> bool {
    std::env::var("CONDENSER_AUTOTUNE").map_or(true, |v| v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_well_formed_files_and_drops_others() {
        let good = format!("{HEADER}\nmatmul:m1\tCpuTexture\nmatmul:m2\tCpuSubgroup\n");
        let w = parse(&good);
        assert_eq!(w.len(), 2);
        assert_eq!(w["matmul:m1"], "CpuTexture");
        assert!(parse("garbage").is_empty());
        assert!(parse(&format!("{HEADER}\nno tab here\n")).is_empty());
        assert!(parse(&format!("{HEADER}\n\tempty key\n")).is_empty());
        assert!(parse("").is_empty());
    }

    #[test]
    fn cpu_tag_tells_cpus_apart_by_their_first_entry() {
        let zen3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
                    model name\t: AMD EPYC\nflags\t\t: fpu avx avx2\n\nprocessor\t: 1\nflags\t\t: x\n";
        let zen4 = zen3.replace("avx avx2", "avx avx2 avx512f");
        // The second processor's entry and fields not listed do not count.
        let zen3b = zen3
            .replace("flags\t\t: x", "flags\t\t: y")
            .replace("processor\t: 0", "processor\t: 7");
        assert_ne!(cpu_tag(zen3), cpu_tag(&zen4));
        assert_eq!(cpu_tag(zen3), cpu_tag(&zen3b));
        assert_eq!(cpu_tag(zen3).len(), 16);
        assert_eq!(cpu_tag(""), cpu_tag("no colon here"));
    }
}
