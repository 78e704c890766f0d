//! Seccomp: Docker's default profile compiled to a classic BPF program by
//! our own small code generator (no libseccomp), cached under
//! `<root>/cache/seccomp/`, installed just before the capabilities drop.
//!
//! Program shape: check the architecture, load the syscall number, then one
//! block per syscall the profile mentions (`jeq nr` → its rules → `ret`),
//! and the default action (EPERM) at the end. Every block ends in a `ret`,
//! so jumps stay short and forward.

mod profile;
mod x86_64;

use std::collections::BTreeMap;
use std::path::Path;

pub use profile::{Action, ArgCmp, Rule, RULES};

use crate::Error;

/// Bumped whenever the generated program could change for the same input.
const PROGRAM_VERSION: u32 = 1;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

// Classic BPF opcodes.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JGE_K: u16 = 0x35;
const BPF_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn ret(action: Action) -> Insn {
    match action {
        Action::Allow => stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        Action::Errno(e) => stmt(BPF_RET_K, SECCOMP_RET_ERRNO | u32::from(e)),
    }
}

/// Syscall number on this architecture, if the call exists here.
pub fn syscall_nr(name: &str) -> Option<u32> {
    x86_64::SYSCALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// The rules that apply to a container holding `caps` (names like "CAP_SYS_ADMIN").
fn applicable<'a>(caps: &'a [String]) -> impl Iterator<Item = &'static Rule> + 'a {
    let has = move |list: &[&str]| list.iter().any(|c| caps.iter().any(|h| h == c));
    RULES
        .iter()
        .filter(move |r| (r.caps_include.is_empty() || has(r.caps_include)) && !has(r.caps_exclude))
}

/// Where a jump in an argument check goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    Fail,
    Skip(u8),
}

/// Instructions checking one argument comparison; `Fail` leaves the alternative.
fn arg_check(cmp: ArgCmp) -> Vec<(u16, u32, To, To)> {
    const LD: u16 = BPF_LD_W_ABS;
    let lo = |i: u8| OFF_ARGS + 8 * u32::from(i);
    let hi = |i: u8| OFF_ARGS + 8 * u32::from(i) + 4;
    match cmp {
        ArgCmp::Eq(i, v) => vec![
            (LD, hi(i), To::Next, To::Next),
            (BPF_JEQ_K, (v >> 32) as u32, To::Next, To::Fail),
            (LD, lo(i), To::Next, To::Next),
            (BPF_JEQ_K, v as u32, To::Next, To::Fail),
        ],
        ArgCmp::MaskedEq(i, mask, v) => vec![
            (LD, hi(i), To::Next, To::Next),
            (BPF_AND_K, (mask >> 32) as u32, To::Next, To::Next),
            (BPF_JEQ_K, (v >> 32) as u32, To::Next, To::Fail),
            (LD, lo(i), To::Next, To::Next),
            (BPF_AND_K, mask as u32, To::Next, To::Next),
            (BPF_JEQ_K, v as u32, To::Next, To::Fail),
        ],
        // Unsigned 64-bit "less than": decided by the high word unless equal.
        ArgCmp::Lt(i, v) => vec![
            (LD, hi(i), To::Next, To::Next),
            (BPF_JGT_K, (v >> 32) as u32, To::Fail, To::Next),
            (BPF_JEQ_K, (v >> 32) as u32, To::Next, To::Skip(2)),
            (LD, lo(i), To::Next, To::Next),
            (BPF_JGE_K, v as u32, To::Fail, To::Next),
        ],
    }
}

fn is_jump(code: u16) -> bool {
    code & 0x07 == 0x05
}

/// Code for one alternative: its checks, then `ret action`.
fn alternative(args: &[ArgCmp], action: Action) -> Result<Vec<Insn>, Error> {
    let raw: Vec<_> = args.iter().flat_map(|a| arg_check(*a)).collect();
    let len = raw.len();
    let mut out = Vec::with_capacity(len + 1);
    for (idx, (code, k, jt, jf)) in raw.into_iter().enumerate() {
        // Fail lands just after this alternative's `ret`.
        let fail = len - idx;
        let off = |t: To| -> Result<u8, Error> {
            let n = match t {
                To::Next => 0,
                To::Skip(n) => usize::from(n),
                To::Fail => fail,
            };
            u8::try_from(n).map_err(|_| Error::Other(anyhow::anyhow!("seccomp jump too long")))
        };
        if is_jump(code) {
            out.push(Insn {
                code,
                jt: off(jt)?,
                jf: off(jf)?,
                k,
            });
        } else {
            out.push(stmt(code, k));
        }
    }
    out.push(ret(action));
    Ok(out)
}

/// Compile the default profile for a container holding `caps`.
pub fn compile(caps: &[String]) -> Result<Vec<Insn>, Error> {
    // Per syscall: its alternatives in profile order. An unconditional
    // rule makes later alternatives unreachable, so stop there.
    let mut per_nr: BTreeMap<u32, Vec<(&'static [ArgCmp], Action)>> = BTreeMap::new();
    for rule in applicable(caps) {
        for name in rule.names {
            let Some(nr) = syscall_nr(name) else { continue };
            let alts = per_nr.entry(nr).or_default();
            if alts.iter().any(|(args, _)| args.is_empty()) {
                continue;
            }
            alts.push((rule.args, rule.action));
        }
    }
    let default = ret(Action::Errno(profile::DEFAULT_ERRNO));
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        Insn {
            code: BPF_JEQ_K,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH_X86_64,
        },
        default,
        stmt(BPF_LD_W_ABS, OFF_NR),
        // x32 calls share numbers with the bit set: refuse them all.
        Insn {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        default,
    ];
    for (nr, alts) in per_nr {
        let mut block = Vec::new();
        for (args, action) in &alts {
            block.extend(alternative(args, *action)?);
        }
        if alts.iter().all(|(args, _)| !args.is_empty()) {
            block.push(default);
        }
        let skip = u8::try_from(block.len())
            .map_err(|_| Error::Other(anyhow::anyhow!("seccomp block too long for {nr}")))?;
        prog.push(Insn {
            code: BPF_JEQ_K,
            jt: 0,
            jf: skip,
            k: nr,
        });
        prog.extend(block);
    }
    prog.push(default);
    Ok(prog)
}

fn cache_key(caps: &[String]) -> String {
    // FNV-1a: stable across builds, enough to tell capability sets apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut sorted: Vec<&String> = caps.iter().collect();
    sorted.sort();
    let text = format!("v{PROGRAM_VERSION}:{}:{}", std::env::consts::ARCH, {
        sorted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

/// Decode a program from its `struct sock_filter` bytes.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<Insn>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// The compiled profile for `caps`, from `<cache_dir>` when present.
pub fn cached_program(cache_dir: &Path, caps: &[String]) -> Result<Vec<u8>, Error> {
    if std::env::consts::ARCH != "x86_64" {
        return Err(Error::Invalid(format!(
            "the default seccomp profile is only built for x86_64, not {}: \
             use --security-opt seccomp=unconfined",
            std::env::consts::ARCH
        )));
    }
    let path = cache_dir.join(format!("{}.bpf", cache_key(caps)));
    if let Ok(bytes) = std::fs::read(&path) {
        if from_bytes(&bytes).is_some() {
            tracing::info!(target: "explain::seccomp", "default profile from cache {}", path.display());
            return Ok(bytes);
        }
    }
    let prog = compile(caps)?;
    let bytes = to_bytes(&prog);
    tracing::info!(target: "explain::seccomp", "compiled default profile: {} instructions, cached at {}", prog.len(), path.display());
    // Best effort: a cache we cannot write only costs a recompile.
    let _ = crate::state::write_atomic(&path, &bytes);
    Ok(bytes)
}

/// Install a program on the calling thread. Needs CAP_SYS_ADMIN (we do not
/// set no_new_privs, as Docker does not), so call it before dropping caps.
pub fn install(bytes: &[u8]) -> std::io::Result<()> {
    let prog = from_bytes(bytes).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "bad seccomp program")
    })?;
    let filters: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `filters`, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const _,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter, enough to run our programs in tests.
    fn run(prog: &[Insn], nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            match i.code {
                BPF_LD_W_ABS => {
                    let o = i.k as usize;
                    a = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                BPF_AND_K => a &= i.k,
                BPF_RET_K => return i.k,
                BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K => {
                    let t = match i.code {
                        BPF_JEQ_K => a == i.k,
                        BPF_JGT_K => a > i.k,
                        _ => a >= i.k,
                    };
                    pc += usize::from(if t { i.jt } else { i.jf });
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    fn nr(name: &str) -> u32 {
        syscall_nr(name).unwrap()
    }

    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;

    fn docker_caps() -> Vec<String> {
        crate::caps::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn default_profile_allows_and_denies() {
        let p = compile(&docker_caps()).unwrap();
        assert!(p.len() < 4096);
        assert_eq!(run(&p, nr("read"), [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, nr("unshare"), [0; 6]), EPERM);
        assert_eq!(run(&p, nr("mount"), [0; 6]), EPERM);
        assert_eq!(
            run(&p, nr("clone3"), [0; 6]),
            SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(
            run(&p, nr("clone"), [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        let newns = (libc::CLONE_NEWNS | libc::SIGCHLD) as u64;
        assert_eq!(run(&p, nr("clone"), [newns, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&p, nr("socket"), [libc::AF_INET as u64, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(run(&p, nr("socket"), [40, 0, 0, 0, 0, 0]), EPERM); // AF_VSOCK
        assert_eq!(run(&p, nr("socket"), [1 << 32, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&p, nr("personality"), [8, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&p, nr("personality"), [0x0040_0000, 0, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&p, 9999, [0; 6]), EPERM);
        assert_eq!(run(&p, nr("read") | X32_SYSCALL_BIT, [0; 6]), EPERM);
    }

    #[test]
    fn sys_admin_opens_namespaces() {
        let mut caps = docker_caps();
        caps.push("CAP_SYS_ADMIN".into());
        let p = compile(&caps).unwrap();
        assert_eq!(run(&p, nr("unshare"), [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, nr("clone3"), [0; 6]), SECCOMP_RET_ALLOW);
        let newns = (libc::CLONE_NEWNS | libc::SIGCHLD) as u64;
        assert_eq!(
            run(&p, nr("clone"), [newns, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn bytes_round_trip_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = cached_program(dir.path(), &docker_caps()).unwrap();
        let b = cached_program(dir.path(), &docker_caps()).unwrap();
        assert_eq!(a, b);
        assert_eq!(from_bytes(&a).unwrap(), compile(&docker_caps()).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
