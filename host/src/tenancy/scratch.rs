//! The writable scratch folder of one execution environment: what a Lambda function expects
//! at `/tmp`. A native environment gets it as `TMPDIR`, a WASI environment as its `/tmp`
//! preopen. Private to the host's user (mode 0700), emptied whenever the environment is
//! reset, removed with the host. Plain file operations; it decides nothing about when.
//!
//! Every folder lives under the host's own folder in the system's temp folder, which the host
//! holds an advisory lock on (`flock`) while it lives. A host that was killed (SIGKILL, OOM)
//! cannot remove its folder; the next host to start on the same temp folder does: a folder
//! of that name that nobody holds, whose process is gone, is a leftover.

use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the host's own folders are called: `aws-custom-runtime-<pid>`, or
/// `aws-custom-runtime-<pid>-<n>` when another host holds that name (one with the same PID in
/// another PID namespace, sharing this temp folder).
const ROOT_PREFIX: &str = "aws-custom-runtime-";

/// One environment's scratch folder; removed on drop.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    /// Set by whatever let a guest put an entry in the folder since it was last emptied (see
    /// [`Scratch::touch`]).
    touched: AtomicBool,
}

impl Scratch {
    /// Creates the scratch folder `name` under the host's own folder in the system's temp
    /// folder (`<tmp>/aws-custom-runtime-<pid>/`, both 0700); an old one of that name is
    /// emptied.
    pub fn create(name: &str) -> io::Result<Scratch> {
        let path = in_host_root(name)?;
        let scratch = Scratch {
            path,
            touched: AtomicBool::new(false),
        };
        scratch.clear()?;
        Ok(scratch)
    }

    /// No folder at all, where the host can make none (a read-only root file system without
    /// a writable temp folder): the guest then has no `/tmp`, and metering finds nothing.
    pub fn none() -> Scratch {
        Scratch {
            path: std::path::PathBuf::new(),
            touched: AtomicBool::new(false),
        }
    }

    /// Notes that a guest may have created an entry in the folder (a WASI 0.2 call that can
    /// create one ran), so that emptying it cannot be skipped.
    pub fn touch(&self) {
        self.touched.store(true, Ordering::Relaxed);
    }

    /// Whether the folder was touched since the last call; clears the mark.
    pub fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes everything in the folder (the folder stays, still 0700).
    pub fn clear(&self) -> io::Result<()> {
        clear(&self.path)
    }

    /// [`Scratch::clear`] on a blocking thread: a function may have left many files, and an
    /// async worker must not wait on the file system for them.
    pub async fn clear_off_thread(&self) -> io::Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || clear(&path))
            .await
            .map_err(io::Error::other)?
    }

    /// Empties the folder of a WASI environment, whose guest cannot change the folder's mode:
    /// an empty folder costs one directory read on this thread, one that holds anything is
    /// emptied on a blocking thread.
    pub async fn empty(&self) -> io::Result<()> {
        if std::fs::read_dir(&self.path)?.next().is_none() {
            return Ok(());
        }
        self.clear_off_thread().await
    }

    /// Bytes the folder takes on disk (allocated blocks, so a sparse file counts what it
    /// uses), plus a block per entry so that empty files are not free.
    pub fn usage(&self) -> u64 {
        usage(&self.path)
    }
}

fn clear(path: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        // Never follows a symlink the function left: it is removed, not its target.
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    private_dir(path)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        if let Some(root) = self.path.parent() {
            // Only once every environment's folder is gone; not while one is being made.
            let _held = HELD.lock();
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// The host's own folder while it has one: its path, the identity of the folder locked, the lock.
struct Held {
    path: PathBuf,
    id: (u64, u64),
    _lock: File,
}

static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// Makes the folder `name` in the host's own folder, which it makes (again, if the last
/// environment removed it) and holds. The first call picks the host folder's name and removes
/// the leftovers of hosts that are gone.
fn in_host_root(name: &str) -> io::Result<PathBuf> {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let root = held_root(&mut held)?;
    let path = root.join(name);
    private_dir(&path)?;
    Ok(path)
}

fn held_root(held: &mut Option<Held>) -> io::Result<PathBuf> {
    if let Some(h) = held.as_mut() {
        private_dir(&h.path)?;
        let meta = std::fs::symlink_metadata(&h.path)?;
        if (meta.dev(), meta.ino()) != h.id {
            let lock = hold(&h.path)?.ok_or_else(|| {
                io::Error::other(format!("{} is held by another process", h.path.display()))
            })?;
            h.id = (meta.dev(), meta.ino());
            h._lock = lock;
        }
        return Ok(h.path.clone());
    }
    let tmp = std::env::temp_dir();
    // Once per process: where no host folder can be made (a read-only temp folder), every
    // sandbox asks again, and must not read the temp folder each time.
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| remove_leftovers(&tmp));
    let pid = std::process::id();
    for n in 0..64 {
        let name = match n {
            0 => format!("{ROOT_PREFIX}{pid}"),
            n => format!("{ROOT_PREFIX}{pid}-{n}"),
        };
        let path = tmp.join(name);
        private_dir(&path)?;
        let Some(lock) = hold(&path)? else { continue };
        let meta = std::fs::symlink_metadata(&path)?;
        let id = (meta.dev(), meta.ino());
        *held = Some(Held {
            path: path.clone(),
            id,
            _lock: lock,
        });
        return Ok(path);
    }
    Err(io::Error::other(format!(
        "every folder name {ROOT_PREFIX}{pid}-* in {} is held by another process",
        tmp.display()
    )))
}

/// An exclusive lock on the folder `path`, or `None` when another process holds it.
fn hold(path: &Path) -> io::Result<Option<File>> {
    let dir = File::open(path)?;
    match dir.try_lock() {
        Ok(()) => Ok(Some(dir)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Removes, from the temp folder `tmp`, the folders of hosts of this user that are gone: named
/// like a host's, held by no process (a live host holds its own), and whose PID names no live
/// process (a host of a version without the lock). Best effort: what cannot be removed stays.
fn remove_leftovers(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(leftover_pid) else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || process_exists(pid) {
            continue;
        }
        // Held while it is removed, so that no host picks the name meanwhile and keeps it.
        if let Ok(Some(_lock)) = hold(&path) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!("removed {}, left by a host that is gone", path.display()),
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

/// The PID in the name of a host's folder (`aws-custom-runtime-<pid>` or `-<pid>-<n>`).
fn leftover_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(ROOT_PREFIX)?;
    let (pid, n) = rest.split_once('-').unwrap_or((rest, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// Whether a process `pid` exists (one of another user counts: it may not be signalled).
fn process_exists(pid: i32) -> bool {
    use nix::errno::Errno;
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path)?;
            if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
                return Err(io::Error::other(format!(
                    "{} exists and is not a folder of this user",
                    path.display()
                )));
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

fn usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += (meta.blocks() * 512).max(512);
        if meta.is_dir() {
            total += usage(&entry.path());
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::{Scratch, leftover_pid};

    #[test]
    fn only_the_names_of_host_folders_are_leftovers() {
        assert_eq!(leftover_pid("aws-custom-runtime-42"), Some(42));
        assert_eq!(leftover_pid("aws-custom-runtime-42-3"), Some(42));
        for other in [
            "aws-custom-runtime-cache",
            "aws-custom-runtime-",
            "aws-custom-runtime-0",
            "aws-custom-runtime-42-",
            "aws-custom-runtime-42-x",
            "aws-custom-runtime-4 2",
            "aws-custom-runtime-99999999999",
            "other-42",
        ] {
            assert_eq!(leftover_pid(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn empty_removes_what_a_guest_left_and_keeps_the_folder() {
        let s = Scratch::create(&format!("empty-test-{}", std::process::id())).unwrap();
        s.empty().await.unwrap();
        std::fs::create_dir_all(s.path().join("a/b")).unwrap();
        std::fs::write(s.path().join("a/b/f"), b"x").unwrap();
        std::fs::write(s.path().join("g"), b"y").unwrap();
        s.empty().await.unwrap();
        assert!(s.path().is_dir());
        assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 0);
    }
}
