//! What a session costs: the CPU time and memory of all its processes,
//! for `webterm sessions` and `/api/sessions`. Read when asked, never
//! sampled in the background.
//!
//! With a cgroup per session the kernel keeps the sums: `cpu.stat` counts
//! every process that ever ran in the group (exited ones too), and
//! `memory.current` where the memory controller is on. Otherwise, and for
//! memory without that controller, the figures are summed over the live
//! process tree: CPU time of processes that exited is then lost, and
//! resident memory shared between processes is counted once per process.

use crate::terminal::Containment;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
}

/// The usage of session `id`, whose leader is `pid`.
pub fn of_session(containment: &Containment, id: &str, pid: u32) -> Usage {
    let group = containment
        .cgroups
        .as_ref()
        .map(|c| c.group_dir(id))
        .filter(|d| d.is_dir());
    let pids = match &group {
        Some(dir) => crate::cgroup::members(dir),
        None => crate::proctree::live_tree(pid as i32),
    };
    let from_group = |file: &str, key: Option<&str>| -> Option<u64> {
        let text = std::fs::read_to_string(group.as_ref()?.join(file)).ok()?;
        match key {
            None => text.trim().parse().ok(),
            Some(k) => text
                .lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse().ok()),
        }
    };
    let cpu_seconds = match from_group("cpu.stat", Some("usage_usec ")) {
        Some(usec) => usec as f64 / 1e6,
        None => pids.iter().filter_map(|&p| cpu_seconds(p as u32)).sum(),
    };
    let memory_bytes = from_group("memory.current", None)
        .unwrap_or_else(|| pids.iter().filter_map(|&p| resident_bytes(p)).sum());
    Usage {
        cpu_seconds,
        memory_bytes,
    }
}

/// User plus system CPU time of one process (all its threads), in seconds.
/// webterm-bench measures servers with it too.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses):
    // state is the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

fn resident_bytes(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_tree_has_cpu_time_and_memory() {
        let me = std::process::id();
        // Burn CPU until a clock tick has been counted (bounded: a figure
        // that never moves is the failure this test is for).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut u = super::of_session(&Default::default(), "none", me);
        while u.cpu_seconds == 0.0 && start.elapsed().as_secs() < 30 {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            u = super::of_session(&Default::default(), "none", me);
        }
        assert!(u.memory_bytes > 1 << 20, "{u:?}");
        assert!(u.cpu_seconds > 0.0, "{u:?}");
    }
}
