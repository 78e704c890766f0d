//! `-t`: the pty is allocated INSIDE the container, from its own devpts
//! (so `tty` names a device that exists there, as runc's console socket
//! does), and the master is sent back to the parent over a unix socket.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// A connected pair: the parent keeps the first, the container side the second.
pub fn pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the console")
}

/// Container side: open a pty in /dev/pts, hand the master to `sock`, make
/// the slave our stdin/stdout/stderr (owned by `uid:gid`).
pub fn open_and_send(sock: RawFd, uid: u32, gid: u32) -> Result<()> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("open /dev/ptmx in the container")?;
    nix::pty::grantpt(&master).context("grantpt")?;
    nix::pty::unlockpt(&master).context("unlockpt")?;
    let name = nix::pty::ptsname_r(&master).context("ptsname")?;
    let c = std::ffi::CString::new(name.clone())?;
    // SAFETY: open/fchown/dup2 on fds we own.
    unsafe {
        let slave = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if slave < 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("open {name}"));
        }
        libc::fchown(slave, uid, gid);
        let fds = [master.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(sock, &[IoSlice::new(b"t")], &cmsg, MsgFlags::empty(), None)
            .context("send the console to the parent")?;
        for fd in 0..3 {
            libc::dup2(slave, fd);
        }
        libc::close(slave);
    }
    crate::explain!(
        "exec",
        "console {name} (allocated in the container's devpts)"
    );
    Ok(())
}

/// Parent side: receive the pty master.
pub fn receive(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive the console")?;
    for c in msg.cmsgs().context("read the console message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this fd.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    anyhow::bail!("the container did not send its console")
}
