//! CPU placement: which CPU each worker and analyzer thread runs on.

use crate::runtime::config::CaptureConfig;
use crate::runtime::error::SetupError;
use crate::sys::cpu::online_cpus;

/// Checks that every CPU of `cpus` exists on this machine.
pub fn check_cpus(cpus: &[usize]) -> Result<(), SetupError> {
    let cores = online_cpus();
    if let Some(&cpu) = cpus.iter().find(|&&c| c >= cores) {
        return Err(SetupError::NoCpu {
            cpu,
            last: cores - 1,
        });
    }
    Ok(())
}

pub(crate) fn resolve_cpus(
    config: &CaptureConfig,
    queues: &[u32],
) -> Result<Vec<Option<usize>>, SetupError> {
    let cores = online_cpus();
    if let Some(cpus) = &config.cpus {
        if cpus.len() < queues.len() {
            return Err(SetupError::TooFewCpus {
                cpus: cpus.len(),
                queues: queues.len(),
            });
        }
        check_cpus(cpus)?;
        Ok(cpus.iter().take(queues.len()).map(|&c| Some(c)).collect())
    } else {
        Ok(default_cpus(queues.len(), cores)
            .into_iter()
            .map(Some)
            .collect())
    }
}

/// The workers' CPUs without `--cpus`: one per queue in order, skipping
/// CPU 0 when there are more `cores` than `queues`.
pub fn default_cpus(queues: usize, cores: usize) -> Vec<usize> {
    let cores = cores.max(1);
    let skip_zero = usize::from(cores > queues);
    (0..queues).map(|i| (i + skip_zero) % cores).collect()
}

/// The analyzer threads' CPUs: free ones other than CPU 0 (where
/// interrupts and other work tend to land) while there are any, then the
/// last worker's. Left to the scheduler, an analyzer was seen sharing the
/// busiest core and losing frames to backpressure that a shared worker core
/// did not lose.
pub(crate) fn analyzer_cpus(workers: &[Option<usize>], analyzers: usize) -> Vec<Option<usize>> {
    let used: Vec<usize> = workers.iter().flatten().copied().collect();
    let mut free = (1..online_cpus()).filter(|c| !used.contains(c));
    std::iter::repeat_with(|| free.next().or_else(|| used.last().copied()))
        .take(analyzers)
        .collect()
}
