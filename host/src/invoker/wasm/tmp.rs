//! The writable `/tmp` of a WASI environment and its size cap (`WASM_TMP_LIMIT`). The folder
//! is a host scratch folder preopened as `/tmp`; the cap is kept by metering the guest's
//! writes: `fd_write` and `fd_pwrite` on any file (not stdin/stdout/stderr) are checked
//! against the folder's usage on disk before they run, and fail with ENOSPC past the cap.
//! The only writable preopen is `/tmp`, so every file write lands there; the host's disk is
//! never filled beyond the cap. The unmetered originals stay linked under [`ORIGINAL`], where
//! no guest import can reach them (the module has been linked by then).

use std::sync::Arc;

use wasmtime::{Caller, Linker, Store, TypedFunc};

use super::abi::Guest;
use crate::tenancy::scratch::Scratch;

/// Where the unmetered WASI functions stay linked, for the metered ones to call.
const ORIGINAL: &str = "aws_custom_runtime_unmetered";
const WASI: &str = "wasi_snapshot_preview1";
/// WASI's `errno::nospc`.
const ENOSPC: i32 = 51;
/// The three standard streams, which are pipes, not files.
const STDIO: i32 = 2;

type Write = TypedFunc<(i32, i32, i32, i32), i32>;
type PWrite = TypedFunc<(i32, i32, i32, i64, i32), i32>;

/// One instance's metered `/tmp`.
pub struct TmpQuota {
    scratch: Arc<Scratch>,
    limit: u64,
    write: Write,
    pwrite: PWrite,
}

/// Replaces `fd_write` and `fd_pwrite` on `linker` (which already has WASI) with metered
/// ones.
pub fn add_to_linker(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    linker.alias_module(WASI, ORIGINAL)?;
    linker.allow_shadowing(true);
    linker.func_wrap_async(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, Guest>, (fd, iovs, n, out): (i32, i32, i32, i32)| {
            Box::new(async move {
                let Some(q) = caller.data().tmp.as_ref() else {
                    wasmtime::bail!("no metered /tmp in this store");
                };
                let write = q.write.clone();
                if fd > STDIO && over(&mut caller, iovs, n) {
                    return Ok(ENOSPC);
                }
                write.call_async(&mut caller, (fd, iovs, n, out)).await
            })
        },
    )?;
    linker.func_wrap_async(
        WASI,
        "fd_pwrite",
        |mut caller: Caller<'_, Guest>, (fd, iovs, n, offset, out): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                let Some(q) = caller.data().tmp.as_ref() else {
                    wasmtime::bail!("no metered /tmp in this store");
                };
                let pwrite = q.pwrite.clone();
                if fd > STDIO && over(&mut caller, iovs, n) {
                    return Ok(ENOSPC);
                }
                pwrite
                    .call_async(&mut caller, (fd, iovs, n, offset, out))
                    .await
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Meters `store`'s writes against `scratch`, at most `limit` bytes.
pub fn install(
    linker: &Linker<Guest>,
    store: &mut Store<Guest>,
    scratch: Arc<Scratch>,
    limit: usize,
) -> wasmtime::Result<()> {
    let func = |store: &mut Store<Guest>, name: &str| {
        linker
            .get(&mut *store, ORIGINAL, name)
            .ok()
            .and_then(|e| e.into_func())
            .ok_or_else(|| wasmtime::format_err!("WASI {name} is not linked"))
    };
    let write = func(store, "fd_write")?.typed(&*store)?;
    let pwrite = func(store, "fd_pwrite")?.typed(&*store)?;
    store.data_mut().tmp = Some(TmpQuota {
        scratch,
        limit: limit as u64,
        write,
        pwrite,
    });
    Ok(())
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
