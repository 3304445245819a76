//! The writable `/tmp` of a WASI environment and its size cap (`WASM_TMP_LIMIT`). The folder
//! is a host scratch folder preopened as `/tmp`; the cap is kept by metering the guest's
//! writes: `fd_write` and `fd_pwrite` on any file (not stdin/stdout/stderr) are checked
//! against the folder's usage on disk before they run, and fail with ENOSPC past the cap.
//! The only writable preopen is `/tmp`, so every file write lands there; the host's disk is
//! never filled beyond the cap.
//!
//! The metered imports are WASI's own `fd_write` and `fd_pwrite` with a check in front: an
//! allowed write runs wasmtime-wasi's implementation on the guest's memory, as the linker
//! it replaces would, in the same call (no second instance, no second stack).

use std::sync::Arc;

use wasmtime::{AsContextMut, Caller, Extern, Linker, Store};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as wasi, WasiSnapshotPreview1};

use super::abi::Guest;
use crate::dispatch::RunnerId;
use crate::tenancy::scratch::Scratch;

const WASI: &str = "wasi_snapshot_preview1";
/// WASI's `errno::nospc`.
const ENOSPC: i32 = 51;
/// The three standard streams, which are pipes, not files.
const STDIO: i32 = 2;

/// One instance's metered `/tmp`.
pub struct TmpQuota {
    scratch: Arc<Scratch>,
    limit: u64,
}

/// Replaces `fd_write` and `fd_pwrite` on `linker` (which already has WASI) with metered
/// ones.
pub fn add_to_linker(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap_async(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, Guest>, (fd, iovs, n, out): (i32, i32, i32, i32)| {
            Box::new(async move {
                if fd > STDIO && over(&mut caller, iovs, n) {
                    return Ok(ENOSPC);
                }
                let (mut memory, guest) = wasi_view(&mut caller)?;
                wasi::fd_write(&mut guest.wasi, &mut memory, fd, iovs, n, out).await
            })
        },
    )?;
    linker.func_wrap_async(
        WASI,
        "fd_pwrite",
        |mut caller: Caller<'_, Guest>, (fd, iovs, n, offset, out): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                if fd > STDIO && over(&mut caller, iovs, n) {
                    return Ok(ENOSPC);
                }
                let (mut memory, guest) = wasi_view(&mut caller)?;
                wasi::fd_pwrite(&mut guest.wasi, &mut memory, fd, iovs, n, offset, out).await
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The guest's memory and state as WASI's own imports see them, with the call's fuel (the
/// bound on what one host call may copy) handed to WASI as its linker does.
fn wasi_view<'a>(
    caller: &'a mut Caller<'_, Guest>,
) -> wasmtime::Result<(wiggle::GuestMemory<'a>, &'a mut Guest)> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("missing required memory export");
    };
    let (bytes, guest) = memory.data_and_store_mut(caller);
    guest.wasi.set_hostcall_fuel(fuel);
    Ok((wiggle::GuestMemory::Unshared(bytes), guest))
}

/// Meters `store`'s writes against `scratch`, at most `limit` bytes.
pub fn install(store: &mut Store<Guest>, scratch: Arc<Scratch>, limit: usize) {
    store.data_mut().tmp = Some(TmpQuota {
        scratch,
        limit: limit as u64,
    });
}

/// The scratch folder (`/tmp`) of instance slot `runner`; `None`, logged, when the host
/// cannot make one.
pub fn scratch(runner: RunnerId) -> Option<Arc<Scratch>> {
    match Scratch::create(&format!("wasm-{runner}")) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::error!(instance = runner, "no /tmp for this instance slot: {e}");
            None
        }
    }
}

/// Empties the scratch folder of instance slot `runner` (off the async worker when the
/// guest left anything there).
pub async fn clear(scratch: &Option<Arc<Scratch>>, runner: RunnerId) {
    if let Some(s) = scratch
        && let Err(e) = s.empty().await
    {
        tracing::error!(instance = runner, "cannot empty /tmp: {e}");
    }
}

/// Whether writing the `n` buffers at `iovs` would take `/tmp` past its cap.
fn over(caller: &mut Caller<'_, Guest>, iovs: i32, n: i32) -> bool {
    let wanted = requested(caller, iovs, n);
    let Some(q) = caller.data().tmp.as_ref() else {
        return false;
    };
    q.scratch.usage().saturating_add(wanted) > q.limit
}

/// The total length of the `n` iovecs at `iovs` (WASI's `ciovec`: pointer, length; both
/// u32). Unreadable ones count as nothing: the real write then fails on them itself.
fn requested(caller: &mut Caller<'_, Guest>, iovs: i32, n: i32) -> u64 {
    let Some(wasmtime::Extern::Memory(mem)) = caller.get_export("memory") else {
        return 0;
    };
    let data = mem.data(&*caller);
    let start = iovs as u32 as usize;
    (0..n as u32 as usize)
        .filter_map(|i| {
            let at = start.checked_add(i * 8 + 4)?;
            let len = data.get(at..at + 4)?;
            Some(u64::from(u32::from_le_bytes(len.try_into().ok()?)))
        })
        .sum()
}
