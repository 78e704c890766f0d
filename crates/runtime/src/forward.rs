//! Fork a command and stand in front of it: forward every signal to it and
//! exit with its status. Used by `--init` (we are the container's PID 1 and
//! also reap orphans) and by `exec` (we joined the container's pid namespace
//! and must fork to be in it).

use std::os::fd::RawFd;

use crate::launch::die;

/// Fork; the child restores the signal mask and runs `child_main`, which
/// must not return (it execs, or dies on `status_fd`). The parent closes
/// `status_fd`, forwards signals to the child and exits with its status.
/// With `reap_all`, every other child that exits is reaped too.
///
/// Only for single-threaded processes (a container's init or exec helper).
pub(crate) fn fork_and_forward(
    status_fd: RawFd,
    reap_all: bool,
    child_main: impl FnOnce(),
) -> std::io::Error {
    // SAFETY: signal mask manipulation, fork, waitpid and _exit in a
    // single-threaded process; the child only runs `child_main`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old);
        let child = libc::fork();
        if child < 0 {
            return std::io::Error::last_os_error();
        }
        if child == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            child_main();
            // child_main execs or dies; never fall back into the parent's loop.
            libc::_exit(125);
        }
        libc::close(status_fd);
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(child, sig);
                continue;
            }
            loop {
                let mut st = 0;
                let waited = if reap_all { -1 } else { child };
                let pid = libc::waitpid(waited, &mut st, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let code = if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else {
                        128 + libc::WTERMSIG(st)
                    };
                    libc::_exit(code);
                }
            }
        }
    }
}

/// [`fork_and_forward`], reporting a failed fork on `status_fd`.
pub(crate) fn fork_and_forward_or_die(
    status_fd: RawFd,
    reap_all: bool,
    child_main: impl FnOnce(),
) -> ! {
    let err = fork_and_forward(status_fd, reap_all, child_main);
    die(status_fd, 125, &format!("fork the command: {err}"))
}
