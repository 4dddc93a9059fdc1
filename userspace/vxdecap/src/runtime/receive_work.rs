//! Where the kernel's receive work for the capture interface runs (so a
//! worker that shares its core sleeps instead of spinning), and the
//! device's interrupt deferral while workers busy-poll it.

use std::fmt;
use std::path::Path;

/// The device settings that keep interrupts (on veth, NAPI scheduling) off
/// while a worker busy-polls: set when they are unset, put back on drop.
#[derive(Debug)]
pub struct NapiDeferral {
    interface: String,
    /// (file, value before) for each setting changed.
    changed: Vec<(&'static str, String)>,
}

/// Consecutive NAPI polls that may find work before the device's
/// interrupt is raised again.
const DEFER_HARD_IRQS: &str = "2";
/// How long a deferral lasts without a poll (ns): the longest a worker may
/// go between kicks before the kernel takes over the queue again.
pub const GRO_FLUSH_TIMEOUT_NS: u64 = 200_000;

impl NapiDeferral {
    /// Sets `napi_defer_hard_irqs` and `gro_flush_timeout` on `interface`
    /// where they are 0. Settings an administrator made are left alone.
    pub fn apply(interface: &str) -> std::io::Result<Self> {
        let mut deferral = Self {
            interface: interface.to_owned(),
            changed: Vec::new(),
        };
        // sysfs shows the network namespace it was mounted in, which need not
        // be this thread's (a library caller that entered a namespace with
        // setns): touch the device only when it is the one named here.
        let ifindex = nix::net::if_::if_nametoindex(interface).map_err(std::io::Error::from)?;
        let shown = std::fs::read_to_string(deferral.path("ifindex"))?;
        if shown.trim() != ifindex.to_string() {
            return Err(std::io::Error::other(format!(
                "/sys/class/net/{interface} is another namespace's device (ifindex {} here, {} there)",
                ifindex,
                shown.trim()
            )));
        }
        let timeout = GRO_FLUSH_TIMEOUT_NS.to_string();
        for (file, value) in [
            ("napi_defer_hard_irqs", DEFER_HARD_IRQS),
            ("gro_flush_timeout", timeout.as_str()),
        ] {
            let path = deferral.path(file);
            let before = std::fs::read_to_string(&path)?.trim().to_owned();
            if before == "0" {
                std::fs::write(&path, value)?;
                deferral.changed.push((file, before));
            }
        }
        Ok(deferral)
    }

    fn path(&self, file: &str) -> String {
        format!("/sys/class/net/{}/{file}", self.interface)
    }
}

impl Drop for NapiDeferral {
    fn drop(&mut self) {
        for (file, before) in &self.changed {
            // The device may be gone (hot-plug): nothing to put back then.
            let _ = std::fs::write(self.path(file), before);
        }
    }
}

/// Where the kernel's receive work for a device can run: the CPUs of its
/// threaded NAPI kthreads, of its interrupts (MSI IRQs' effective
/// affinity) and of its VMBus channels (netvsc). softirq work runs where
/// the interrupt was taken, and so does `ksoftirqd` when it takes over.
/// A device with none of these (veth, without threaded NAPI) does its
/// receive work on the sender's CPU, which is unknown: treated as not
/// shared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiveWork {
    /// CPUs where the receive work can run.
    pub cpus: Vec<usize>,
    /// What put them there, for the log: `napi/eth1-262`, `IRQ 45`, `VMBus channel 14`.
    pub sources: Vec<String>,
}

impl ReceiveWork {
    /// Looks at `interface` (this network namespace's sysfs) and `/proc`.
    pub fn find(interface: &str) -> Self {
        Self::find_in(Path::new("/sys"), Path::new("/proc"), interface)
    }

    /// As [`ReceiveWork::find`], with sysfs mounted at `sys` and procfs at
    /// `proc` (a test's tree).
    pub fn find_in(sys: &Path, proc: &Path, interface: &str) -> Self {
        let mut work = Self::default();
        let dev = sys.join("class/net").join(interface);
        let dev = dev.display();
        // Threaded NAPI: kthreads named napi/<interface>-<id> (the name
        // cut to 15 bytes, like every thread name).
        let threaded =
            std::fs::read_to_string(format!("{dev}/threaded")).is_ok_and(|t| t.trim() != "0");
        if threaded {
            let prefix = format!("napi/{interface}-");
            let cut = &prefix[..prefix.len().min(15)];
            for entry in std::fs::read_dir(proc).into_iter().flatten().flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                if !comm.trim_end().starts_with(cut) {
                    continue;
                }
                let status =
                    std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
                if let Some(list) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                {
                    work.add(parse_cpu_list(list.trim()), comm.trim_end().to_owned());
                }
            }
        }
        for entry in std::fs::read_dir(format!("{dev}/device/msi_irqs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let irq = entry.file_name().to_string_lossy().into_owned();
            let irq_dir = proc.join("irq").join(&irq);
            let affinity = std::fs::read_to_string(irq_dir.join("effective_affinity_list"))
                .or_else(|_| std::fs::read_to_string(irq_dir.join("smp_affinity_list")));
            if let Ok(list) = affinity {
                work.add(parse_cpu_list(list.trim()), format!("IRQ {irq}"));
            }
        }
        for entry in std::fs::read_dir(format!("{dev}/device/channels"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(cpu) = std::fs::read_to_string(entry.path().join("cpu")) {
                let channel = entry.file_name().to_string_lossy().into_owned();
                work.add(
                    parse_cpu_list(cpu.trim()),
                    format!("VMBus channel {channel}"),
                );
            }
        }
        work
    }

    fn add(&mut self, cpus: Vec<usize>, source: String) {
        for cpu in cpus {
            if !self.cpus.contains(&cpu) {
                self.cpus.push(cpu);
            }
        }
        self.cpus.sort_unstable();
        self.sources.push(source);
    }

    /// True when the receive work can run on `cpu`.
    pub fn shares(&self, cpu: usize) -> bool {
        self.cpus.contains(&cpu)
    }
}

impl fmt::Display for ReceiveWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sources.is_empty() {
            return f.write_str(
                "no interrupt or NAPI thread of its own (receive work on the sender's CPU)",
            );
        }
        let shown: Vec<&str> = self.sources.iter().take(4).map(String::as_str).collect();
        let more = self.sources.len().saturating_sub(4);
        write!(f, "{}", shown.join(", "))?;
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        let cpus: Vec<String> = self.cpus.iter().map(usize::to_string).collect();
        write!(f, " on CPU(s) {}", cpus.join(","))
    }
}

/// Parses a kernel CPU list (`0-3,5`); bad parts are skipped.
pub fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                if let (Ok(lo), Ok(hi)) = (lo.parse::<usize>(), hi.parse::<usize>()) {
                    // A list of this machine's CPUs: bounded, but keep it so.
                    cpus.extend(lo..=hi.min(lo + 4096));
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3,5"), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("x,2"), vec![2]);
        let mut work = ReceiveWork::default();
        work.add(vec![1], "napi/eth1-262".into());
        assert!(work.shares(1) && !work.shares(0));
        assert_eq!(work.to_string(), "napi/eth1-262 on CPU(s) 1");
    }
}
