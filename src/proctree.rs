//! Processes found through the kernel's lists of each process's children
//! (`/proc/PID/task/TID/children`), never by scanning all of /proc: the cost
//! is the size of the tree asked about, not the number of processes on the
//! host, so one ending session cannot slow down another.

/// The direct children of `pid` (of all its threads), zombies included.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// `root` and everything below it that has not exited (zombies left out).
pub fn live_tree(root: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(pid) = frontier.pop() {
        if is_live(pid) {
            found.push(pid);
        }
        frontier.extend(children(pid));
    }
    found
}

/// Whether `pid` exists and has not exited (a zombie has).
pub fn is_live(pid: i32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // itself contain spaces or parentheses: parse from the last ')'.
    let state = stat
        .iter()
        .rposition(|&b| b == b')')
        .and_then(|close| stat.get(close + 2).copied());
    !matches!(state, None | Some(b'Z') | Some(b'X'))
}

/// Whether `pid`'s environment holds exactly `entry` (`NAME=value`); None
/// when it reads empty, as it does for a moment while the process execs
/// (and for good after `env -i`). Unreadable (gone, or not ours): false.
pub fn has_env(pid: i32, entry: &str) -> Option<bool> {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return Some(false);
    };
    if env.is_empty() {
        return None;
    }
    Some(env.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_and_its_environment() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("WEBTERM_SESSION", "probe")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let me = std::process::id() as i32;
        assert!(children(me).contains(&pid));
        assert!(live_tree(me).contains(&pid));
        // spawn() returns once exec has begun; the kernel fills in the new
        // program's environment a moment later (until then it reads empty).
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while has_env(pid, "WEBTERM_SESSION=probe") != Some(true) {
            assert!(
                std::time::Instant::now() < until,
                "the child's environment never showed the mark"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(has_env(pid, "WEBTERM_SESSION=prob"), Some(false));
        child.kill().unwrap();
        // Killed but not reaped: a zombie, still a child, no longer live.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_live(pid) {
            assert!(
                std::time::Instant::now() < until,
                "the killed child lives on"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(children(me).contains(&pid));
        child.wait().unwrap();
        assert!(!children(me).contains(&pid));
    }

    #[test]
    fn an_empty_environment_cannot_be_told() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env_clear()
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // spawn() returns once the new program is mapped: empty while exec
        // fills it in, and after, with nothing in it: None either way.
        assert_eq!(has_env(pid, "WEBTERM_SESSION=probe"), None);
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone: unreadable, so not ours.
        assert_eq!(has_env(pid, "WEBTERM_SESSION=probe"), Some(false));
    }
}
