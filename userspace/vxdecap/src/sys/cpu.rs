//! The machine's CPUs: how many are online, and pinning a thread to one.

/// Number of CPUs online (not just those this process may run on now).
pub fn online_cpus() -> usize {
    let from_sysfs = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| {
            list.trim()
                .split(',')
                .map(|part| match part.split_once('-') {
                    Some((_, hi)) => hi.parse::<usize>().ok().map(|h| h + 1),
                    None => part.parse::<usize>().ok().map(|v| v + 1),
                })
                .max()
                .flatten()
        });
    from_sysfs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}
