//! A cgroup (v2) per session, where the host lets webterm make one: the
//! only boundary a process cannot leave by itself. `setsid`, a daemon's
//! double fork or `nohup` take a process out of the terminal's session and
//! process group, but not out of its cgroup, so teardown finds and kills
//! every process the session started, wherever it went.
//!
//! Layout: webterm's own cgroup gets a child `webterm.<pid>` for this
//! instance, and that one a child per session. Nothing is limited (no
//! controller is enabled); the groups only contain. The instance group lets
//! everything of this webterm be killed in one write, by the keeper when
//! webterm itself dies.
//!
//! Where no cgroup can be made (cgroup v1 only, a read-only cgroupfs in a
//! container, no permission), `Instance::detect` says so and sessions fall
//! back to the process tree (see `terminal`).

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// This webterm's cgroup, under which each session gets its own.
#[derive(Debug)]
pub struct Instance {
    dir: PathBuf,
}

impl Instance {
    /// Makes `webterm.<pid>` under webterm's own cgroup, or says why not.
    pub fn detect() -> Result<Instance, String> {
        let mount = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("this process is in no cgroup v2 group")?;
        let dir = mount
            .join(own.trim_start_matches('/'))
            .join(format!("webterm.{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
        // Creating is not enough: a group we cannot move processes into is
        // no use (a delegated subtree can allow one and not the other).
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
        Ok(Instance { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty group for one session, and its directory open: the
    /// child is created inside it (`spawn`).
    pub fn session(&self, id: &str) -> io::Result<(Group, OwnedFd)> {
        let group = Group {
            dir: self.group_dir(id),
        };
        std::fs::create_dir(&group.dir)?;
        // On failure, dropping the group removes the directory again.
        let dir = rustix::fs::open(
            &group.dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok((group, dir))
    }

    /// Where session `id`'s group is (or would be).
    pub fn group_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// SIGKILLs every process of every session at once (`cgroup.kill`
    /// on the instance group), for a shutdown that ran out of time.
    pub fn kill_all(&self) {
        if let Err(e) = std::fs::write(self.dir.join("cgroup.kill"), "1") {
            log::warn!("cannot kill {}: {e}", self.dir.display());
        }
    }

    /// Removes the instance group at shutdown (it is empty by then).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Pids of the live processes in the group at `dir`.
pub fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// One session's cgroup. Dropping it removes the (empty) directory: a
/// blocking call that takes the kernel's cgroup lock, so teardown drops it
/// off the async threads.
#[derive(Debug)]
pub struct Group {
    dir: PathBuf,
}

impl Group {
    /// Pids of the live processes in the group.
    pub fn members(&self) -> Vec<i32> {
        members(&self.dir)
    }

    /// SIGKILLs every process in the group (`cgroup.kill`, Linux 5.14+);
    /// on older kernels, each member in turn.
    pub fn kill_all(&self) -> usize {
        let members = self.members();
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_err() {
            for &pid in &members {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        members.len()
    }
}

impl Drop for Group {
    /// An empty group is removed; a populated one cannot be, and is left
    /// for the instance's keeper.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_cgroup2_mount_when_there_is_one() {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(
            super::cgroup2_mount().is_some(),
            info.contains(" - cgroup2 ")
        );
    }
}
