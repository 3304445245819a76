//! The writable `/tmp` of a WASI environment and its size cap (`WASM_TMP_LIMIT`). The folder
//! is a host scratch folder preopened as `/tmp`; the cap is kept by metering the guest's
//! writes: `fd_write` and `fd_pwrite` on any file (not stdin/stdout/stderr) are checked
//! against the folder's usage on disk before they run, and fail with ENOSPC past the cap.
//! The only writable preopen is `/tmp`, so every file write lands there; the host's disk is
//! never filled beyond the cap.
//!
//! The metered imports hand an allowed write to WASI's own, which stay linked under
//! [`ORIGINAL`]. WASI's functions find the guest's memory through their caller, so they are
//! called through a two-function relay module instantiated beside the guest on its memory
//! ([`RELAY`]), not straight from the host.

use std::sync::Arc;

use wasmtime::{Caller, Engine, Extern, Instance, Linker, Module, Store, TypedFunc};

use super::abi::Guest;
use crate::dispatch::RunnerId;
use crate::tenancy::scratch::Scratch;

/// Where the unmetered WASI functions stay linked, for the relay to call.
const ORIGINAL: &str = "aws_custom_runtime_unmetered";
const WASI: &str = "wasi_snapshot_preview1";
/// WASI's `errno::nospc`.
const ENOSPC: i32 = 51;
/// WASI's `errno::io`: a write that cannot be relayed.
const EIO: i32 = 29;
/// The three standard streams, which are pipes, not files.
const STDIO: i32 = 2;

/// Re-exports the guest's memory and calls WASI's writes on it.
const RELAY: &str = r#"
(module
  (import "guest" "memory" (memory 0))
  (import "wasi" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (export "memory" (memory 0))
  (func (export "fd_write") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $write)
  (func (export "fd_pwrite") (param i32 i32 i32 i64 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 local.get 4 call $pwrite))
"#;

type Write = TypedFunc<(i32, i32, i32, i32), i32>;
type PWrite = TypedFunc<(i32, i32, i32, i64, i32), i32>;

/// One instance's metered `/tmp`.
pub struct TmpQuota {
    scratch: Arc<Scratch>,
    limit: u64,
    /// The relay's functions, once the guest is instantiated.
    relay: Option<(Write, PWrite)>,
}

/// The compiled relay, made once per function.
pub struct Relay(Module);

impl Relay {
    pub fn new(engine: &Engine) -> anyhow::Result<Relay> {
        let bytes = wat::parse_str(RELAY)?;
        Ok(Relay(Module::new(engine, bytes)?))
    }

    /// Instantiates the relay on the memory of the guest `instance`.
    pub async fn attach(
        &self,
        linker: &Linker<Guest>,
        store: &mut Store<Guest>,
        instance: &Instance,
    ) -> wasmtime::Result<()> {
        let Some(memory) = instance.get_memory(&mut *store, "memory") else {
            return Ok(()); // WASI cannot run it either; its own error says so.
        };
        let original = |store: &mut Store<Guest>, name: &str| -> wasmtime::Result<Extern> {
            linker
                .get(&mut *store, ORIGINAL, name)
                .map_err(|e| wasmtime::format_err!("WASI {name} is not linked: {e}"))
        };
        let write = original(store, "fd_write")?;
        let pwrite = original(store, "fd_pwrite")?;
        let relay =
            Instance::new_async(&mut *store, &self.0, &[memory.into(), write, pwrite]).await?;
        let write = relay.get_typed_func(&mut *store, "fd_write")?;
        let pwrite = relay.get_typed_func(&mut *store, "fd_pwrite")?;
        if let Some(q) = store.data_mut().tmp.as_mut() {
            q.relay = Some((write, pwrite));
        }
        Ok(())
    }
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
                let Some((write, _)) = relay(&caller) else {
                    return Ok(EIO);
                };
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
                let Some((_, pwrite)) = relay(&caller) else {
                    return Ok(EIO);
                };
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

fn relay(caller: &Caller<'_, Guest>) -> Option<(Write, PWrite)> {
    caller.data().tmp.as_ref()?.relay.clone()
}

/// Meters `store`'s writes against `scratch`, at most `limit` bytes.
pub fn install(store: &mut Store<Guest>, scratch: Arc<Scratch>, limit: usize) {
    store.data_mut().tmp = Some(TmpQuota {
        scratch,
        limit: limit as u64,
        relay: None,
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

pub fn clear(scratch: &Option<Arc<Scratch>>, runner: RunnerId) {
    if let Some(s) = scratch
        && let Err(e) = s.clear()
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
