//! What a bootstrap leaves behind when it ends. Each bootstrap runs in its own session and
//! process group, which a reset kills as a whole; a child that left both (`setsid`,
//! double-fork daemons) is found here instead: the host is a child subreaper, so such
//! orphans are re-parented to it when their bootstrap dies, and every process whose parent
//! is the host but which is not a live bootstrap is killed and reaped.
//!
//! An orphan that kept a live bootstrap's session (a double fork without `setsid`) is left
//! to that bootstrap; one that also left the session cannot be told apart, so any sweep
//! (after any bootstrap's end) kills it, even while the bootstrap that started it lives.
//!
//! What remains: when the host itself is killed with SIGKILL, each bootstrap dies with it
//! (`PR_SET_PDEATHSIG`), but nothing is left to kill the bootstrap's own children; they are
//! re-parented to the next subreaper or init. In a container the host is usually PID 1 and
//! its death ends the whole PID namespace, so only a host started outside one leaves them.

use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The bootstraps that are running (or exited and not yet reaped by their supervisor):
/// children of the host that a sweep must not touch.
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// How long a sweep waits for one killed orphan to be reapable.
const REAP_WAIT: Duration = Duration::from_secs(1);
/// Sweeps stop after this many rounds (each kill may orphan the next generation).
const ROUNDS: usize = 16;

fn live() -> MutexGuard<'static, Vec<i32>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes the host the reaper of its descendants' orphans, once.
pub fn adopt() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(
                "cannot become a child subreaper ({e}): processes a bootstrap detaches with \
                 setsid outlive it"
            );
        }
    });
}

/// Starts a bootstrap with `spawn` and records it as live, in one step, so that a sweep
/// running beside it never takes the new bootstrap for an orphan.
pub fn spawn_live<T>(
    spawn: impl FnOnce() -> std::io::Result<(T, Option<u32>)>,
) -> std::io::Result<T> {
    let mut live = live();
    let (child, pid) = spawn()?;
    if let Some(pid) = pid {
        live.push(pid as i32);
    }
    Ok(child)
}

/// Forgets a bootstrap once it has been reaped.
pub fn forget(pid: Option<u32>) {
    if let Some(pid) = pid {
        live().retain(|p| *p != pid as i32);
    }
}

/// Kills and reaps every orphan re-parented to the host; returns how many. Blocking: it
/// reads `/proc` and waits for the killed processes.
pub fn sweep() -> usize {
    let host = std::process::id() as i32;
    let mut swept = 0;
    for _ in 0..ROUNDS {
        let found: Vec<i32> = {
            let live = live();
            children_of(host)
                .into_iter()
                // An orphan still in a live bootstrap's session (a double fork without
                // setsid) belongs to that bootstrap: it dies with that session.
                .filter(|(pid, session)| !live.contains(pid) && !live.contains(session))
                .map(|(pid, _)| pid)
                .collect()
        };
        if found.is_empty() {
            break;
        }
        for &pid in &found {
            // ESRCH: it ended on its own meanwhile (still to be reaped below).
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for &pid in &found {
            reap(pid);
        }
        swept += found.len();
    }
    swept
}

/// Reaps the orphans that have exited on their own (zombies re-parented to the host), so
/// that a bootstrap that detaches short-lived processes on every invocation cannot fill the
/// process table between sweeps. Never kills anything. Blocking: it reads `/proc`.
pub fn reap_exited() -> usize {
    let host = std::process::id() as i32;
    let exited: Vec<i32> = {
        let live = live();
        children_of(host)
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|pid| !live.contains(pid))
            .collect()
    };
    reap_zombies(&exited)
}

/// Reaps those of `pids` that are zombies; returns how many.
fn reap_zombies(pids: &[i32]) -> usize {
    let zombies: Vec<i32> = pids.iter().copied().filter(|p| is_zombie(*p)).collect();
    for &pid in &zombies {
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    }
    zombies.len()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Waits a little for a killed orphan to become a zombie and reaps it.
fn reap(pid: i32) {
    let step = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    while waited < REAP_WAIT {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            // Reaped, or not our child any more.
            _ => return,
        }
        std::thread::sleep(step);
        waited += step;
    }
}

/// The processes whose parent is `parent`, with their session, from `/proc/<pid>/stat`.
fn children_of(parent: i32) -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| match parent_and_session(pid) {
            Some((p, session)) if p == parent => Some((pid, session)),
            _ => None,
        })
        .collect()
}

fn parent_and_session(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(1);
    let parent = fields.next()?.parse().ok()?;
    let session = fields.nth(1)?.parse().ok()?;
    Some((parent, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exited_orphan_is_reaped_and_a_live_one_left_alone() {
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        let mut running = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let (exited_pid, running_pid) = (exited.id() as i32, running.id() as i32);
        while !is_zombie(exited_pid) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Only these two: other tests' children are theirs to wait for.
        assert_eq!(reap_zombies(&[exited_pid, running_pid]), 1);
        assert!(
            std::fs::metadata(format!("/proc/{exited_pid}")).is_err(),
            "reaped"
        );
        assert!(!is_zombie(running_pid), "left running");
        assert!(exited.try_wait().is_err(), "no longer a child to wait for");
        running.kill().unwrap();
        running.wait().unwrap();
    }

    #[test]
    fn reads_the_parent_and_session_of_a_process() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        let session = nix::unistd::getsid(None).unwrap().as_raw();
        assert_eq!(parent_and_session(me), Some((parent, session)));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(children_of(me).contains(&(child.id() as i32, session)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
