//! Netlink (rtnetlink): bridges, veth pairs, addresses and routes, on the
//! host or inside a network namespace. Every change is logged at
//! `explain::netlink`.

mod addr;
mod bridge;
mod route;
mod veth;

use std::os::fd::AsFd;
use std::path::Path;

use anyhow::Context as _;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_MULTIPART, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::LinkUnspec;

use crate::Error;

pub use addr::host_ipv4_nets;
pub use bridge::ensure_bridge;
pub use route::{default_route_mtu, host_routes};
pub use veth::{create_veth, VethRequest};

/// A failed netlink request: the kernel's errno (positive), or 0 when the
/// socket itself failed or the reply made no sense.
#[derive(Debug)]
pub struct NlError {
    pub errno: i32,
    pub message: String,
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NlError {}

impl NlError {
    fn io(e: std::io::Error) -> NlError {
        NlError {
            errno: e.raw_os_error().unwrap_or(0),
            message: e.to_string(),
        }
    }
}

/// A blocking rtnetlink socket bound to one network namespace. Plain
/// syscalls, no async runtime: it works in any process, including a
/// container's monitor that closed every fd it inherited (a tokio runtime
/// there would reuse the signal pipe tokio keeps in process-wide statics).
pub struct Netlink {
    socket: Socket,
    seq: std::cell::Cell<u32>,
}

/// Kinds of request: what flags go with it and what ends its reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One object: a single reply message.
    Get,
    /// Every object: multipart replies until DONE.
    Dump,
    /// A change: an ACK (or an error).
    Change { create: bool },
}

impl Netlink {
    fn open() -> Result<Netlink, Error> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("opening netlink socket")?;
        socket.bind_auto().context("binding netlink socket")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("connecting netlink socket")?;
        Ok(Netlink {
            socket,
            seq: std::cell::Cell::new(1),
        })
    }

    /// The caller's namespace.
    pub fn host() -> Result<Netlink, Error> {
        Self::open()
    }

    /// Inside the namespace at `path`: the socket is opened by a short-lived
    /// thread that joined the namespace, and stays bound to it.
    pub fn in_netns(path: &Path) -> Result<Netlink, Error> {
        let ns = std::fs::File::open(path)
            .with_context(|| format!("opening network namespace {}", path.display()))?;
        std::thread::spawn(move || -> Result<Netlink, Error> {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .context("joining the network namespace")?;
            Self::open()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netlink thread panicked"))?
    }

    /// Send one request and collect the messages of its reply.
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        kind: Kind,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST
            | match kind {
                Kind::Get => 0,
                Kind::Dump => NLM_F_DUMP,
                Kind::Change { create: true } => NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                Kind::Change { create: false } => NLM_F_ACK,
            };
        req.header.sequence_number = seq;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(NlError::io)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full().map_err(NlError::io)?;
            let mut off = 0;
            while off < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| NlError {
                        errno: 0,
                        message: format!("decoding a netlink reply: {e}"),
                    })?;
                let len = msg.header.length as usize;
                off += (len + 3) & !3;
                if len == 0 {
                    break;
                }
                if msg.header.sequence_number != seq {
                    continue; // a late reply to an earlier request
                }
                let multipart = msg.header.flags & NLM_F_MULTIPART != 0;
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => {
                                let errno = -code.get();
                                Err(NlError {
                                    errno,
                                    message: std::io::Error::from_raw_os_error(errno).to_string(),
                                })
                            }
                        }
                    }
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if kind == Kind::Get && !multipart {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                    _ => {}
                }
            }
        }
    }

    /// A request that changes something (acknowledged).
    fn change(&self, msg: RouteNetlinkMessage, create: bool) -> Result<(), NlError> {
        self.request(msg, Kind::Change { create }).map(|_| ())
    }

    /// A dump of every object of a kind.
    fn dump(&self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.request(msg, Kind::Dump)
    }

    /// A link by name, or None.
    pub fn link(&self, name: &str) -> Result<Option<LinkMessage>, Error> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
            .with_context(|| format!("looking up link {name}"))
            .map_err(Error::from)
    }

    fn get_link(&self, msg: LinkMessage) -> Result<Option<LinkMessage>, NlError> {
        match self.request(RouteNetlinkMessage::GetLink(msg), Kind::Get) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Index of a link that must exist.
    pub fn index(&self, name: &str) -> Result<u32, Error> {
        match self.link(name)? {
            Some(l) => Ok(l.header.index),
            None => Err(anyhow::anyhow!("network device {name} does not exist").into()),
        }
    }

    pub fn set_up(&self, name: &str) -> Result<(), Error> {
        let index = self.index(name)?;
        tracing::info!(target: "explain::netlink", "RTM_NEWLINK {name} up");
        self.set_link(LinkUnspec::new_with_index(index).up().build())
            .with_context(|| format!("setting {name} up"))?;
        Ok(())
    }

    /// RTM_NEWLINK on an existing link (as `rtnetlink`'s set request).
    fn set_link(&self, msg: LinkMessage) -> Result<(), NlError> {
        self.change(RouteNetlinkMessage::SetLink(msg), false)
    }

    /// Delete a link if it exists (deleting one end of a veth deletes both).
    pub fn delete_link(&self, name: &str) -> Result<bool, Error> {
        let Some(link) = self.link(name)? else {
            return Ok(false);
        };
        tracing::info!(target: "explain::netlink", "RTM_DELLINK {name}");
        let mut msg = LinkMessage::default();
        msg.header.index = link.header.index;
        match self.change(RouteNetlinkMessage::DelLink(msg), false) {
            Ok(()) => Ok(true),
            Err(e) if e.errno == libc::ENODEV => Ok(false),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("deleting {name}"))
                .into()),
        }
    }

    /// MTU of a link.
    pub fn mtu(&self, index: u32) -> Result<Option<u32>, Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let link = self.get_link(msg).context("looking up link")?;
        Ok(link.and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        }))
    }
}
