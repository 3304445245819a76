//! Swap for the tests of what a host must do while the kernel can swap its pages out: a swap
//! file turned on for the test's duration, and the pages of a running host pushed out to it
//! (`process_madvise(MADV_PAGEOUT)`). Both need root; where the machine cannot (not root, a
//! file system without swap files), the test is skipped with a note, unless `TEST_SWAP` is
//! `required` (CI), where it fails.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Command;

/// A swap file of the test's own, on for as long as it lives (beside any swap the machine
/// already has).
pub struct Swap {
    file: PathBuf,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

impl Swap {
    /// Swap that is on, or `None` (the test is skipped) where it cannot be turned on.
    pub fn on() -> Option<Swap> {
        let file = super::target_dir().join(format!("test-swap-{}", std::process::id()));
        let path = file.to_string_lossy().into_owned();
        let made = (|| {
            std::fs::write(&file, vec![0u8; 64 << 20]).map_err(|e| e.to_string())?;
            run("chmod", &["600", &path])?;
            run("mkswap", &[&path])?;
            run("swapon", &[&path])
        })();
        match made {
            Ok(()) => Some(Swap { file }),
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                let msg = format!("cannot turn swap on ({e}): run as root on ext4 or similar");
                assert!(
                    std::env::var("TEST_SWAP").as_deref() != Ok("required"),
                    "{msg}"
                );
                eprintln!("skipped: {msg}");
                None
            }
        }
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        if let Err(e) = run("swapoff", &[&self.file.to_string_lossy()]) {
            eprintln!("{e}");
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Asks the kernel to swap out every private writable page of process `pid` now; answers
/// how many bytes it reclaimed.
pub fn page_out(pid: u32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    // SAFETY: plain system calls on a descriptor this function owns; the iovecs only name
    // ranges of the other process, never memory of this one.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor just opened and owned by nothing else; closed when dropped.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let mut reclaimed = 0u64;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some("rw-p")) = (fields.next(), fields.next()) else {
            continue;
        };
        if line.contains("[v") {
            continue; // [vvar], [vsyscall]
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = usize::from_str_radix(start, 16).unwrap();
        let end = usize::from_str_radix(end, 16).unwrap();
        let iov = libc::iovec {
            iov_base: start as *mut libc::c_void,
            iov_len: end - start,
        };
        // SAFETY: as above.
        let n = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd.as_raw_fd(),
                &iov as *const libc::iovec,
                1usize,
                libc::MADV_PAGEOUT,
                0u32,
            )
        };
        if n > 0 {
            reclaimed += n as u64;
        }
    }
    reclaimed
}
