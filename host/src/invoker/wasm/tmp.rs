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

use wasmtime::{AsContextMut, Caller, Linker, Store};
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
#[derive(Clone)]
pub struct TmpQuota {
    scratch: Arc<Scratch>,
    limit: u64,
}

impl TmpQuota {
    pub fn new(scratch: Arc<Scratch>, limit: usize) -> TmpQuota {
        TmpQuota {
            scratch,
            limit: limit as u64,
        }
    }

    /// Notes that the guest may have created an entry in `/tmp` (see [`Entries::WhenTouched`]).
    pub fn touch(&self) {
        self.scratch.touch();
    }

    /// Whether `wanted` more bytes keep the folder within its cap.
    pub fn allows(&self, wanted: u64) -> bool {
        self.scratch.usage().saturating_add(wanted) <= self.limit
    }
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
    let memory = super::abi::memory(caller)?;
    let (bytes, guest) = memory.data_and_store_mut(caller);
    guest.wasi.set_hostcall_fuel(fuel);
    Ok((wiggle::GuestMemory::Unshared(bytes), guest))
}

/// Meters `store`'s writes against `scratch`, at most `limit` bytes.
pub fn install(store: &mut Store<Guest>, scratch: Arc<Scratch>, limit: usize) {
    store.data_mut().tmp = Some(TmpQuota::new(scratch, limit));
}

/// The WASI calls through which a guest can put an entry in a folder. A module that imports
/// none of them can never leave anything in its `/tmp`: it gets no descriptor of a file there
/// (its `/tmp` is empty when it starts), and the host's other imports touch no file.
const CREATING_CALLS: [&str; 5] = [
    "path_open",
    "path_create_directory",
    "path_symlink",
    "path_link",
    "path_rename",
];

/// Whether `module` imports a WASI call that can create an entry in `/tmp`.
pub fn can_create_entries(module: &wasmtime::Module) -> bool {
    module
        .imports()
        .any(|i| i.module() == WASI && CREATING_CALLS.contains(&i.name()))
}

/// Whether a guest can leave anything in its `/tmp`, which decides whether the folder is
/// read again to empty it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    /// Never (see [`can_create_entries`]): the folder stays as empty as it was made.
    Never,
    /// Whenever it ran.
    Always,
    /// Only where a call that can create an entry marked the folder ([`TmpQuota::touch`]:
    /// WASI 0.2 components, tmp_component.rs).
    WhenTouched,
}

/// The `/tmp` of one instance slot: its scratch folder (`None`, logged, when the host cannot
/// make one), emptied between environments.
pub struct SlotTmp {
    pub scratch: Option<Arc<Scratch>>,
    runner: RunnerId,
    entries: Entries,
}

impl SlotTmp {
    /// Makes (and empties) the scratch folder of slot `runner`.
    pub fn new(runner: RunnerId, entries: Entries) -> SlotTmp {
        let scratch = match Scratch::create(&format!("wasm-{runner}")) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::error!(instance = runner, "no /tmp for this instance slot: {e}");
                None
            }
        };
        SlotTmp {
            scratch,
            runner,
            entries,
        }
    }

    /// Empties the folder (off the async worker when the guest left anything there).
    pub async fn clear(&self) {
        let Some(s) = &self.scratch else {
            return;
        };
        let left_any = match self.entries {
            Entries::Never => false,
            Entries::Always => true,
            Entries::WhenTouched => s.take_touched(),
        };
        if left_any && let Err(e) = s.empty().await {
            tracing::error!(instance = self.runner, "cannot empty /tmp: {e}");
        }
    }
}

/// Whether writing the `n` buffers at `iovs` would take `/tmp` past its cap.
fn over(caller: &mut Caller<'_, Guest>, iovs: i32, n: i32) -> bool {
    let wanted = requested(caller, iovs, n);
    caller
        .data()
        .tmp
        .as_ref()
        .is_some_and(|q| !q.allows(wanted))
}

/// The total length of the `n` iovecs at `iovs` (WASI's `ciovec`: pointer, length; both
/// u32). Unreadable ones count as nothing: the real write then fails on them itself.
fn requested(caller: &mut Caller<'_, Guest>, iovs: i32, n: i32) -> u64 {
    let Ok(mem) = super::abi::memory(caller) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn module(imports: &str) -> wasmtime::Module {
        let engine = wasmtime::Engine::default();
        let wasm = wat::parse_str(format!("(module {imports})")).unwrap();
        wasmtime::Module::new(&engine, wasm).unwrap()
    }

    #[test]
    fn only_a_module_importing_a_creating_call_can_leave_entries_in_tmp() {
        let harmless = r#"
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "path_unlink_file" (func (param i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "fd_readdir" (func (param i32 i32 i32 i64 i32) (result i32)))
            (import "lambda_v1" "path_open" (func))"#;
        assert!(!can_create_entries(&module(harmless)));
        for call in CREATING_CALLS {
            let m = module(&format!(
                r#"{harmless} (import "wasi_snapshot_preview1" "{call}" (func))"#
            ));
            assert!(can_create_entries(&m), "{call}");
        }
    }
}
