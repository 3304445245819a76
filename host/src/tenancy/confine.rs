//! Landlock confinement of a native execution environment: its processes may read (and
//! execute) the function's folder and the system's libraries and tools, and write only
//! their own scratch folder and the harmless devices; where the kernel has Landlock scopes
//! they may not signal, nor reach the abstract sockets of, processes outside it (Landlock
//! also refuses them `ptrace` of those, so `/proc/PID/mem` of another environment). All environments run as the host's
//! user, so without it one tenant's process could read another's scratch. The ruleset is
//! built in the host, before the fork; the child only applies it (two system calls, safe
//! between fork and exec). Where the kernel has no Landlock, that is logged once and the
//! environment runs unconfined.

use std::path::{Path, PathBuf};
use std::sync::Once;

use landlock::{
    ABI, Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetError, Scope,
};

/// The ABI asked for: file access rights of Linux 5.19 (refer) and 6.2 (truncate); older
/// kernels get what they support (best effort).
const WANTED: ABI = ABI::V3;

/// System folders a function may read and execute from: libraries, interpreters, tools,
/// configuration, and the kernel's views of itself.
const SYSTEM_READ: &[&str] = &[
    "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev",
];
/// Devices every program expects to write.
const DEVICES_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

static UNAVAILABLE: Once = Once::new();
static ENFORCED: Once = Once::new();

/// The ruleset of one environment: `read` folders read-only, `scratch` read-write.
/// `None` when the kernel cannot enforce Landlock (logged once).
pub fn ruleset(read: &[PathBuf], scratch: &Path) -> Option<RulesetCreated> {
    match build(read, scratch) {
        Ok(r) => {
            ENFORCED.call_once(|| {
                tracing::info!(
                    abi = kernel_abi(),
                    "Landlock confines native environments to their own scratch folder"
                );
            });
            Some(r)
        }
        Err(e) => {
            UNAVAILABLE.call_once(|| {
                tracing::warn!(
                    "Landlock is unavailable ({e}); native environments are not confined to \
                     their own scratch folder"
                );
            });
            None
        }
    }
}

/// Whether this kernel enforces Landlock at all (its ABI version, when it does).
pub fn kernel_abi() -> Option<i32> {
    // SAFETY: the version query takes no pointer (NULL, size 0) and changes nothing.
    #[allow(unsafe_code)]
    let v = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    (v > 0).then_some(v as i32)
}

fn build(read: &[PathBuf], scratch: &Path) -> Result<RulesetCreated, String> {
    if kernel_abi().is_none() {
        return Err("the kernel does not enforce it".into());
    }
    let all = AccessFs::from_all(WANTED);
    let read_only = AccessFs::from_read(WANTED);
    // Signals to and abstract sockets of processes outside the environment (another
    // environment's, the host's) are refused too where the kernel can (Linux 6.12).
    let mut created = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.scope(Scope::from_all(ABI::V6)))
        .and_then(Ruleset::create)
        .map_err(|e: RulesetError| e.to_string())?;
    let system = SYSTEM_READ.iter().map(PathBuf::from);
    for path in read.iter().cloned().chain(system) {
        // A folder this system lacks is simply not granted.
        if let Ok(fd) = PathFd::new(&path) {
            created = created
                .add_rule(PathBeneath::new(fd, read_only))
                .map_err(|e| e.to_string())?;
        }
    }
    for dev in DEVICES_WRITE {
        if let Ok(fd) = PathFd::new(dev) {
            let rw = AccessFs::ReadFile | AccessFs::WriteFile;
            created = created
                .add_rule(PathBeneath::new(fd, rw))
                .map_err(|e| e.to_string())?;
        }
    }
    let fd = PathFd::new(scratch).map_err(|e| e.to_string())?;
    created
        .add_rule(PathBeneath::new(fd, all))
        .map_err(|e| e.to_string())
}
