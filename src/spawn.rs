//! Starting a session's program on its PTY, and waiting for it.
//!
//! Where the kernel allows, the child is made with our own `clone3` call:
//! `CLONE_INTO_CGROUP` creates it directly inside the session's cgroup, and
//! `CLONE_PIDFD` hands us a pidfd to wait on. Moving a process into a cgroup
//! after fork (writing to `cgroup.procs`) takes the kernel's
//! `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace
//! period: 11 to 16 ms per session start on the machines we measured, and
//! serialised across every start and teardown (docs/performance.md).
//! Created inside the group, the child takes that lock only for reading.
//! On x86_64 the clone is a vfork (`raw_clone3`): nothing of webterm's
//! memory is copied or write-protected for a child that is about to exec.
//!
//! Where `clone3` is refused (kernels before 5.7, a seccomp profile such as
//! older Docker's, an emulator), std's spawn (through async-process) is the
//! fallback, with the child moving itself into the group between fork and
//! exec. The first refusal is logged and remembered.
//!
//! Between fork and exec only async-signal-safe calls are allowed in a
//! multi-threaded process: no allocation, no lock. Everything the child
//! needs (paths, argv, environment) is therefore prepared in the parent as
//! C strings, and the child makes raw system calls only.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use async_io::Async;
use rustix::process::{Pid, WaitOptions};

/// What to start, and how.
pub struct Program<'a> {
    /// argv; the first element is the program, found on PATH if it has no '/'.
    pub argv: &'a [String],
    /// argv[0] as the program sees it, if not the program itself (a login
    /// shell's "-bash").
    pub arg0: Option<String>,
    /// Added to webterm's environment (without its own `WEBTERM_*` settings).
    pub env: &'a [(String, String)],
    /// The open-files soft limit to start with, if not webterm's own.
    pub nofile: Option<u64>,
}

impl Program<'_> {
    fn name(&self) -> io::Result<&String> {
        self.argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))
    }
}

/// A started child: ours (clone3, with a pidfd) or std's (the fallback).
pub enum Child {
    Own(OwnChild),
    Std(async_process::Child),
}

impl Child {
    pub fn id(&self) -> u32 {
        match self {
            Child::Own(c) => c.pid,
            Child::Std(c) => c.id(),
        }
    }

    /// Completes when the child exits, with its status; it is reaped then.
    /// Can be called again (and after being cancelled): the status is kept.
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        match self {
            Child::Own(c) => c.status().await,
            Child::Std(c) => c.status().await,
        }
    }

    /// SIGKILL, unless it has been reaped already.
    pub fn kill(&mut self) -> io::Result<()> {
        match self {
            Child::Own(c) => c.kill(),
            Child::Std(c) => c.kill(),
        }
    }
}

/// Starts `program` with `slave` as its stdin, stdout, stderr and
/// controlling terminal, in a new session (setsid); inside the cgroup whose
/// directory `cgroup` is open, if given. Blocking: called on the spawner
/// thread (see `reaper::spawn_leader`), whose death kills the child
/// (PR_SET_PDEATHSIG).
pub fn start(program: &Program, slave: OwnedFd, cgroup: Option<&OwnedFd>) -> io::Result<Child> {
    static CLONE3_REFUSED: AtomicBool = AtomicBool::new(false);
    if !CLONE3_REFUSED.load(Ordering::Relaxed) {
        match clone3(program, &slave, cgroup) {
            Err(Refused(errno)) => {
                CLONE3_REFUSED.store(true, Ordering::Relaxed);
                log::info!(
                    "clone3 is not available ({errno}); sessions are started with fork{}",
                    if cgroup.is_some() {
                        " and then moved into their cgroups (slower)"
                    } else {
                        ""
                    }
                );
            }
            Ok(started) => return started,
        }
    }
    forked(program, slave, cgroup)
}

/// Which system calls failing mean "no clone3 here", not "this child failed".
struct Refused(rustix::io::Errno);

/// The environment the child gets: webterm's own, without its `WEBTERM_*`
/// settings (the shell's business they are not), with `extra` on top.
fn environment(extra: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !k.as_bytes().starts_with(b"WEBTERM_"))
        .filter(|(k, _)| !extra.iter().any(|(e, _)| OsStr::new(e) == k))
        .collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env
}

fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument or environment value holds a NUL byte",
        )
    })
}

/// The paths to try for `name`, as execvp would: itself if it holds a '/',
/// else each directory of PATH in turn.
fn candidates(name: &str, env: &[(OsString, OsString)]) -> io::Result<Vec<CString>> {
    if name.contains('/') {
        return Ok(vec![c_string(name.into())?]);
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| {
            let dir = if dir.as_os_str().is_empty() {
                ".".into()
            } else {
                dir
            };
            c_string(dir.join(name).into_os_string().into_vec())
        })
        .collect()
}

/// Everything the child needs, prepared before the fork: its system calls
/// may then only read these.
struct Prepared {
    paths: Vec<CString>,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    empty_mask: libc::sigset_t,
    nofile: Option<u64>,
    parent: libc::pid_t,
}

impl Prepared {
    fn new(program: &Program) -> io::Result<Prepared> {
        let name = program.name()?;
        let env = environment(program.env);
        let paths = candidates(name, &env)?;
        let mut argv = Vec::with_capacity(program.argv.len());
        argv.push(c_string(
            program.arg0.clone().unwrap_or_else(|| name.clone()).into(),
        )?);
        for arg in &program.argv[1..] {
            argv.push(c_string(arg.clone().into())?);
        }
        let envp = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                c_string(kv)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let nul_terminated = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        // Safety: sigemptyset only writes the set it is given.
        let empty_mask = unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            set
        };
        Ok(Prepared {
            argv_ptrs: nul_terminated(&argv),
            envp_ptrs: nul_terminated(&envp),
            paths,
            _argv: argv,
            _envp: envp,
            empty_mask,
            nofile: program.nofile,
            parent: std::process::id() as libc::pid_t,
        })
    }
}

/// The kernel's `struct clone_args` (linux/sched.h), up to `cgroup`
/// (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn clone3(
    program: &Program,
    slave: &OwnedFd,
    cgroup: Option<&OwnedFd>,
) -> Result<io::Result<Child>, Refused> {
    let prepared = match Prepared::new(program) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let (slave, report, exec_error) = match fds_for_child(slave) {
        Ok(fds) => fds,
        Err(e) => return Ok(Err(e)),
    };
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    let ctx = ChildContext {
        prepared: &prepared,
        slave: slave.as_raw_fd(),
        report: report.as_raw_fd(),
    };
    let pid = raw_clone3(&mut args, &ctx);
    drop(report);
    if pid < 0 {
        let errno = rustix::io::Errno::from_raw_os_error(-pid as i32);
        return match errno {
            // No clone3 (before 5.3, or an emulator), a seccomp filter that
            // refuses it, or a kernel that does not know a flag (pidfd
            // before 5.3, cgroup before 5.7) or the size of the arguments.
            rustix::io::Errno::NOSYS
            | rustix::io::Errno::PERM
            | rustix::io::Errno::INVAL
            | rustix::io::Errno::TOOBIG => Err(Refused(errno)),
            _ => Ok(Err(errno.into())),
        };
    }
    // Safety: the kernel wrote a new pidfd there, which nothing else owns.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    let child = OwnChild {
        pid: pid as u32,
        pidfd: None,
        status: None,
    };
    Ok(child.started(pidfd, exec_error).map(Child::Own))
}

/// What the child needs, by reference: with CLONE_VM it reads the parent's
/// memory, which stays put while the parent waits (CLONE_VFORK).
struct ChildContext<'a> {
    prepared: &'a Prepared,
    slave: RawFd,
    report: RawFd,
}

/// clone3 as vfork (x86_64): the child shares our memory and runs on a
/// stack of its own until it execs, while this thread waits. Nothing of
/// webterm's memory is copied or write-protected, so a spawn costs the
/// same whatever webterm's size, and neither webterm's other threads (TLB
/// shootdowns) nor its later writes (copy-on-write faults) pay for it, as
/// they do after a fork. Returns the child's pid or a negated errno.
#[cfg(target_arch = "x86_64")]
fn raw_clone3(args: &mut CloneArgs, ctx: &ChildContext) -> i64 {
    const CLONE_VM: u64 = 0x100;
    const CLONE_VFORK: u64 = 0x4000;
    let Some((base, size)) = child_stack() else {
        return -(libc::ENOMEM as i64);
    };
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = base as u64;
    args.stack_size = size as u64;
    // No signal handler of ours may run in the child, on its stack and
    // our memory: everything is blocked until the child has reset every
    // disposition (`in_child`), and here until it has exec'd.
    // Safety: sigfillset and pthread_sigmask only write the sets given.
    let mut all = unsafe { std::mem::zeroed::<libc::sigset_t>() };
    let mut old = unsafe { std::mem::zeroed::<libc::sigset_t>() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let ret: i64;
    // Safety: clone3 with CLONE_VM | CLONE_VFORK and a stack of its own.
    // The parent takes the jump with rax = the pid or -errno, having
    // touched nothing but rax, rcx and r11 (the syscall's). The child
    // starts after `syscall` with rax = 0 on the new stack (rsp = its top,
    // 16-byte aligned, so the call below meets the ABI) and calls
    // `child_entry`, which never returns (exec or _exit); `ud2` is never
    // reached. The stack is the spawner thread's, unused until the next
    // spawn, which cannot start before this child has exec'd or exited.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") ctx as *const ChildContext,
            in("r13") child_entry as extern "C" fn(*const ChildContext) -> !,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    ret
}

/// clone3 as fork, elsewhere: the child gets a copy of our memory. Returns
/// the child's pid or a negated errno.
#[cfg(not(target_arch = "x86_64"))]
fn raw_clone3(args: &mut CloneArgs, ctx: &ChildContext) -> i64 {
    // Safety: without CLONE_VM (and with no stack given) clone3 forks: the
    // child gets a copy of this process's memory and only this thread,
    // and returns 0 here. The child then runs `in_child` only, which makes
    // async-signal-safe calls on memory prepared before the fork, and never
    // returns (exec or _exit).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        child_entry(ctx);
    }
    if pid < 0 {
        -(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL) as i64)
    } else {
        pid as i64
    }
}

extern "C" fn child_entry(ctx: *const ChildContext) -> ! {
    // Safety: only ever called in the child just made by `raw_clone3`,
    // with the context the parent keeps alive meanwhile.
    unsafe {
        let ctx = &*ctx;
        in_child(ctx.prepared, ctx.slave, ctx.report)
    }
}

/// The vfork child's stack: 64 KiB (`in_child` needs a few hundred bytes)
/// above a guard page, mapped once per spawning thread, unmapped with it.
#[cfg(target_arch = "x86_64")]
fn child_stack() -> Option<(*mut u8, usize)> {
    use rustix::mm::{mmap_anonymous, mprotect, munmap, MapFlags, MprotectFlags, ProtFlags};
    const GUARD: usize = 4096;
    const SIZE: usize = 64 * 1024;
    struct Stack(*mut std::ffi::c_void);
    impl Drop for Stack {
        fn drop(&mut self) {
            // Safety: our own mapping, of this size, used by no one now.
            unsafe {
                let _ = munmap(self.0, GUARD + SIZE);
            }
        }
    }
    thread_local! {
        static STACK: Option<Stack> = {
            // Safety: a fresh anonymous mapping, aliasing nothing.
            unsafe {
                mmap_anonymous(
                    std::ptr::null_mut(),
                    GUARD + SIZE,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | MapFlags::STACK,
                )
                .ok()
                .filter(|&base| mprotect(base, GUARD, MprotectFlags::empty()).is_ok())
                .map(Stack)
            }
        };
    }
    STACK.with(|s| {
        s.as_ref()
            .map(|s| (s.0.cast::<u8>().wrapping_add(GUARD), SIZE))
    })
}

/// The slave, and a pipe for the child to report a failed exec on, all
/// above 2 (the child puts the slave on 0, 1 and 2, which must not close
/// either of them) and close-on-exec.
fn fds_for_child(slave: &OwnedFd) -> io::Result<(OwnedFd, OwnedFd, OwnedFd)> {
    let above_stdio = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 3);
    let slave = above_stdio(slave)?;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((slave, above_stdio(&write)?, read))
}

/// In the child, between clone3 and exec.
///
/// # Safety
///
/// Only in a child just forked from a multi-threaded process: it makes raw
/// system calls only (libc's thin wrappers), allocates nothing, takes no
/// lock, and ends in exec or `_exit`.
unsafe fn in_child(p: &Prepared, slave: RawFd, report: RawFd) -> ! {
    let errno = || *libc::__errno_location();
    let fail = |e: i32| -> ! {
        libc::write(report, (&e as *const i32).cast(), 4);
        libc::_exit(127)
    };
    libc::sigprocmask(libc::SIG_SETMASK, &p.empty_mask, std::ptr::null_mut());
    reset_signals();
    for target in 0..3 {
        if libc::dup2(slave, target) < 0 {
            fail(errno());
        }
    }
    if let Err(e) = take_the_terminal(p.nofile, p.parent) {
        fail(e);
    }
    // As execvp: the first path that exists and may be run; EACCES is
    // remembered, and reported if nothing else worked.
    let mut denied = false;
    for path in &p.paths {
        libc::execve(path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr());
        match errno() {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => denied = true,
            e => fail(e),
        }
    }
    fail(if denied { libc::EACCES } else { libc::ENOENT })
}

/// The child's steps after its stdio is the slave, by both ways of
/// starting it: the open-files limit, a new session with the slave as its
/// controlling terminal, and death with webterm (the spawner thread that
/// forked it lives as long as webterm does). Returns the failing errno.
/// `parent` is webterm's pid: if webterm died before the death signal was
/// set, the child's parent is already someone else, and it exits.
///
/// # Safety
///
/// Between fork and exec: raw system calls only (libc's thin wrappers).
unsafe fn take_the_terminal(nofile: Option<u64>, parent: libc::pid_t) -> Result<(), i32> {
    let errno = || *libc::__errno_location();
    if let Some(soft) = nofile {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = soft as libc::rlim_t;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(errno());
            }
        }
    }
    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
        return Err(errno());
    }
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
        return Err(errno());
    }
    if libc::getppid() != parent {
        libc::_exit(127);
    }
    Ok(())
}

/// Signals webterm was started ignoring (nohup ignores SIGHUP; a background
/// job in a script ignores SIGINT and SIGQUIT) would stay ignored across
/// exec: the shell would not hang up when its session ends, nor stop at
/// Ctrl-C. Handlers are reset by exec anyway; this resets what is ignored.
///
/// # Safety
///
/// Between fork and exec: signal(2) is async-signal-safe.
unsafe fn reset_signals() {
    // Realtime ones too; glibc's own two (32, 33) refuse, which is fine.
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// The fallback: std's fork and exec, the child moving itself into the
/// cgroup before anything else.
fn forked(program: &Program, slave: OwnedFd, cgroup: Option<&OwnedFd>) -> io::Result<Child> {
    let name = program.name()?;
    let mut cmd = std::process::Command::new(name);
    cmd.args(&program.argv[1..]);
    if let Some(arg0) = &program.arg0 {
        cmd.arg0(arg0);
    }
    cmd.env_clear().envs(environment(program.env));
    let procs = match cgroup {
        Some(dir) => Some(rustix::fs::openat(
            dir,
            "cgroup.procs",
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?),
        None => None,
    };
    let procs_raw = procs.as_ref().map(AsRawFd::as_raw_fd);
    let nofile = program.nofile;
    let parent = std::process::id() as libc::pid_t;
    // Safety: the closure runs in the child between fork and exec, where
    // only async-signal-safe functions may be called. Everything in it is a
    // raw system call, with no allocation, locking or shared state. By then
    // std has already dup2'ed the slave onto fds 0, 1 and 2. The cgroup.procs
    // descriptor is open in the parent (`procs` keeps it open until the
    // spawn returns) and so in the child.
    unsafe {
        cmd.pre_exec(move || {
            reset_signals();
            if let Some(raw) = procs_raw {
                // Join the session's cgroup before anything else can
                // start: writing 0 to cgroup.procs moves the writer.
                rustix::io::write(BorrowedFd::borrow_raw(raw), b"0")?;
            }
            take_the_terminal(nofile, parent).map_err(io::Error::from_raw_os_error)?;
            Ok(())
        });
    }
    let mut cmd = async_process::Command::from(cmd);
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        // Teardown ends the child deliberately; dropping a Child must not
        // be the mechanism, but if it ever is, it must not leave a zombie.
        .reap_on_drop(true)
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    drop(procs);
    Ok(Child::Std(child))
}

/// A child we cloned ourselves, watched through its pidfd.
pub struct OwnChild {
    pid: u32,
    /// None once reaped (or before `started`).
    pidfd: Option<Async<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl OwnChild {
    /// Waits for the child's exec: the report pipe closes on success, or
    /// brings the errno of the step that failed.
    fn started(mut self, pidfd: OwnedFd, exec_error: OwnedFd) -> io::Result<OwnChild> {
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match rustix::io::read(&exec_error, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    got = 0;
                    log::warn!("cannot read the child's exec report: {e}");
                    break;
                }
            }
        }
        if got == 4 {
            // It failed, and has exited (or is about to): reap it now.
            let _ = rustix::process::waitpid(Pid::from_raw(self.pid as i32), WaitOptions::empty());
            self.status = Some(ExitStatus::from_raw(127 << 8));
            return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)));
        }
        self.pidfd = Some(Async::new(pidfd)?);
        Ok(self)
    }

    async fn status(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pidfd = self
            .pidfd
            .as_ref()
            .ok_or_else(|| io::Error::other("not started"))?;
        let status = exit_of(pidfd, self.pid).await?;
        self.status = Some(status);
        self.pidfd = None;
        Ok(status)
    }

    fn kill(&mut self) -> io::Result<()> {
        match &self.pidfd {
            Some(fd) if self.status.is_none() => {
                match rustix::process::pidfd_send_signal(
                    fd.get_ref(),
                    rustix::process::Signal::KILL,
                ) {
                    // Exited, not reaped yet: nothing to kill.
                    Err(rustix::io::Errno::SRCH) | Ok(()) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// Waits for child `pid`, watched by `pidfd`, to exit, and reaps it. The
/// pidfd turns readable when the child has exited; as it is our child and
/// not yet reaped, its pid cannot have been reused meanwhile.
async fn exit_of(pidfd: &Async<OwnedFd>, pid: u32) -> io::Result<ExitStatus> {
    loop {
        match rustix::process::waitpid(Pid::from_raw(pid as i32), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
            Ok(None) => pidfd.readable().await?,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl Drop for OwnChild {
    /// Teardown ends the child deliberately; if a child is ever dropped
    /// instead, it is killed, and reaped when it has died, so it cannot
    /// linger as a zombie.
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.kill();
        if let Some(pidfd) = self.pidfd.take() {
            let pid = self.pid;
            async_std::task::spawn(async move {
                let _ = exit_of(&pidfd, pid).await;
                crate::reaper::leader_reaped(pid);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PTY pair: the master, and the slave for the child.
    fn pty() -> (OwnedFd, OwnedFd) {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let path = ptsname(&master, Vec::new()).unwrap();
        let slave = rustix::fs::open(
            path.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        (master, slave)
    }

    /// One way to start a child: `own` (clone3) or `forked`.
    type How = fn(&Program, OwnedFd, Option<&OwnedFd>) -> io::Result<Child>;

    /// Everything the child wrote, until it and every holder of the slave
    /// are gone (EIO), and its exit status.
    fn run(how: How, script: &str, cgroup: Option<&OwnedFd>) -> io::Result<(String, ExitStatus)> {
        let argv = ["sh".to_string(), "-c".into(), script.into()];
        run_argv(how, &argv, Some("-sh"), cgroup)
    }

    fn run_argv(
        how: How,
        argv: &[String],
        arg0: Option<&str>,
        cgroup: Option<&OwnedFd>,
    ) -> io::Result<(String, ExitStatus)> {
        let (master, slave) = pty();
        let env = [("WEBTERM_SPAWN_TEST".to_string(), "yes".to_string())];
        let program = Program {
            argv,
            arg0: arg0.map(String::from),
            env: &env,
            nofile: None,
        };
        let mut child = how(&program, slave, cgroup)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(&master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("reading the master: {e}"),
            }
        }
        let status = async_io::block_on(child.status())?;
        Ok((String::from_utf8_lossy(&out).into_owned(), status))
    }

    fn own(p: &Program, slave: OwnedFd, cgroup: Option<&OwnedFd>) -> io::Result<Child> {
        match clone3(p, &slave, cgroup) {
            Ok(started) => started,
            Err(Refused(errno)) => panic!("clone3 refused here ({errno}): this test needs it"),
        }
    }

    /// Both ways of starting a child, or only the fork where this machine
    /// has no clone3 (qemu-user, for one), which is said.
    fn ways() -> Vec<(&'static str, How)> {
        if has_clone3() {
            vec![("clone3", own), ("fork", forked)]
        } else {
            eprintln!("no clone3 here: only the fork path is tested");
            vec![("fork", forked)]
        }
    }

    /// `argv` as it is, with nothing added to the environment.
    fn bare(argv: &[String]) -> Program<'_> {
        Program {
            argv,
            arg0: None,
            env: &[],
            nofile: None,
        }
    }

    /// Whether this machine has clone3 (not under qemu-user, for one).
    fn has_clone3() -> bool {
        let (_master, slave) = pty();
        let argv = ["true".to_string()];
        match clone3(&bare(&argv), &slave, None) {
            Ok(child) => {
                let _ = async_io::block_on(child.unwrap().status());
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn the_child_runs_in_a_new_session_on_the_pty_with_its_environment() {
        let script = r#"[ "$0" = -sh ] || exit 3
            [ "$WEBTERM_SPAWN_TEST" = yes ] || exit 4
            exec 3</dev/tty || exit 5
            [ "$(ps -o sid= -p $$ | tr -d ' ')" = $$ ] || exit 6
            printf 'ok'; exit 7"#;
        for (name, how) in ways() {
            let (out, status) = run(how, script, None).unwrap();
            assert_eq!((out.as_str(), status.code()), ("ok", Some(7)), "{name}");
        }
    }

    /// Both ways block nothing (the vfork way blocks every signal in the
    /// parent around the clone). Skipped under qemu-user, whose
    /// /proc/PID/status shows the emulator's own masks.
    #[test]
    fn the_child_starts_with_no_signal_blocked() {
        for (name, how) in ways() {
            // Not through sh, which clears its mask itself.
            let argv = ["grep", "^SigBlk:", "/proc/self/status"].map(String::from);
            let (out, status) = run_argv(how, &argv, None, None).unwrap();
            assert!(status.success(), "{name}: {status}");
            assert_eq!(
                out.split_whitespace().collect::<Vec<_>>(),
                ["SigBlk:", "0000000000000000"],
                "{name}"
            );
        }
    }

    #[test]
    fn a_program_that_cannot_be_run_is_a_clear_error() {
        for (name, how) in ways() {
            let (_master, slave) = pty();
            let argv = ["webterm-no-such-program".to_string()];
            let err = how(&bare(&argv), slave, None).err().expect(name);
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{name}: {err}");
        }
    }

    #[test]
    fn the_child_starts_inside_the_cgroup() {
        let instance = match crate::cgroup::Instance::detect() {
            Ok(i) => i,
            Err(why) => {
                eprintln!("no cgroup for this test ({why}): nothing to check");
                return;
            }
        };
        for (name, how) in ways() {
            let id = format!("spawn-test-{name}");
            let (group, dir) = instance.session(&id).unwrap();
            let (out, status) = run(how, "cat /proc/self/cgroup", Some(&dir)).unwrap();
            assert!(status.success(), "{name}: {status}");
            let want = format!("/webterm.{}/{id}", std::process::id());
            assert!(
                out.trim_end().ends_with(&want),
                "{name}: {out:?}, want {want}"
            );
            drop(group);
        }
        instance.remove();
    }
}
