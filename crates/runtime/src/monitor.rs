//! Watching a running container: copy its output to the JSON log (and to
//! our terminal in the foreground), relay a pty, forward signals, reap it
//! and record how it ended. The CLI does this itself for a foreground
//! `run`; for `run -d` a forked monitor process does it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::logs;

/// What to watch.
pub struct Io {
    /// The container's stdout / stderr pipes (read ends).
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// A pty master (with `-t`): output is logged as stdout.
    pub pty: Option<OwnedFd>,
    /// Copy output to our own stdout / stderr.
    pub echo: bool,
    /// Relay our stdin into the pty (`-it`).
    pub stdin_to_pty: bool,
    /// Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the container.
    pub forward_signals: bool,
}

/// How the container's init ended, as Docker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub oom_killed: bool,
}

fn set_nonblock(fd: RawFd) {
    // SAFETY: fcntl on an fd we hold.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: write from our buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}

/// Read what is available; None at EOF (or EIO: the pty's last slave closed).
fn read_some(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: read into our buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return Some(n as usize);
        }
        if n == 0 {
            return None;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Some(0),
            _ => return None,
        }
    }
}

/// Copy the window size of our terminal onto the pty.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a winsize we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn wait_status(st: i32) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        255
    }
}

/// Watch `pid` until it exits; returns its exit code.
pub fn supervise(pid: i32, io: Io, log: &mut logs::Writer) -> i32 {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if io.forward_signals {
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            mask.add(s);
        }
    }
    if io.pty.is_some() {
        mask.add(Signal::SIGWINCH);
    }
    let _ = mask.thread_block();
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();

    // (fd, stream index, is-pty)
    let mut outputs: Vec<(OwnedFd, usize)> = Vec::new();
    if let Some(fd) = io.out {
        outputs.push((fd, 0));
    }
    if let Some(fd) = io.err {
        outputs.push((fd, 1));
    }
    let pty_raw = io.pty.as_ref().map(|p| p.as_raw_fd());
    if let Some(fd) = io.pty {
        outputs.push((fd, 0));
    }
    for (fd, _) in &outputs {
        set_nonblock(fd.as_raw_fd());
    }
    if let Some(p) = pty_raw {
        copy_winsize(0, p);
    }
    let mut stdin_open = io.stdin_to_pty && pty_raw.is_some();
    let mut buf = vec![0u8; 64 * 1024];
    let mut exit: Option<i32> = None;

    let handle = |stream: usize, data: &[u8], log: &mut logs::Writer| {
        log.feed(stream, data);
        if io.echo {
            write_all(if stream == 0 { 1 } else { 2 }, data);
        }
    };

    loop {
        // SIGCHLD is blocked from here on, so an exit after this check still
        // wakes the poll below; an exit before it is caught here.
        if exit.is_none() {
            let mut st = 0;
            // SAFETY: reap our own child without blocking.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                exit = Some(wait_status(st));
            } else if r < 0 {
                exit = Some(255);
            }
        }
        if exit.is_some() {
            // The namespace is gone: drain what is left, then stop.
            for (fd, stream) in &outputs {
                while let Some(n) = read_some(fd.as_raw_fd(), &mut buf) {
                    if n == 0 {
                        break;
                    }
                    handle(*stream, &buf[..n], log);
                }
            }
            break;
        }
        let mut pfds: Vec<PollFd> = Vec::new();
        for (fd, _) in &outputs {
            pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let sig_index = pfds.len();
        if let Some(s) = &sfd {
            pfds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let stdin_index = pfds.len();
        // SAFETY: fd 0 lives as long as the process.
        let stdin_fd = unsafe { BorrowedFd::borrow_raw(0) };
        if stdin_open {
            pfds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        // With no signalfd, poll with a timeout so we still notice the exit.
        let timeout = if sfd.is_some() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(100u16)
        };
        if poll(&mut pfds, timeout).is_err() {
            continue;
        }
        let ready: Vec<PollFlags> = pfds
            .iter()
            .map(|p| p.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(pfds);
        let mut closed = Vec::new();
        for (i, (fd, stream)) in outputs.iter().enumerate() {
            if ready[i].intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match read_some(fd.as_raw_fd(), &mut buf) {
                    Some(n) => handle(*stream, &buf[..n], log),
                    None => closed.push(i),
                }
            }
        }
        for i in closed.into_iter().rev() {
            outputs.remove(i);
        }
        if stdin_open && ready.get(stdin_index).is_some_and(|r| !r.is_empty()) {
            match read_some(0, &mut buf) {
                Some(n) if n > 0 => {
                    if let Some(p) = pty_raw {
                        write_all(p, &buf[..n]);
                    }
                }
                Some(_) => {}
                None => stdin_open = false,
            }
        }
        if let Some(s) = &sfd {
            if ready.get(sig_index).is_some_and(|r| !r.is_empty()) {
                while let Ok(Some(info)) = s.read_signal() {
                    let sig = info.ssi_signo as i32;
                    if sig == libc::SIGWINCH {
                        if let Some(p) = pty_raw {
                            copy_winsize(0, p);
                        }
                    } else if sig != libc::SIGCHLD {
                        // SAFETY: signalling our own child.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            }
        }
        let mut st = 0;
        // SAFETY: reap our own child without blocking.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            exit = Some(wait_status(st));
        } else if r < 0 {
            exit = Some(255);
        } else if outputs.is_empty() && sfd.is_none() {
            // Nothing left to watch: block until it exits.
            // SAFETY: as above.
            let r = unsafe { libc::waitpid(pid, &mut st, 0) };
            exit = Some(if r == pid { wait_status(st) } else { 255 });
        }
    }
    log.flush();
    let _ = mask.thread_unblock();
    exit.unwrap_or(255)
}
