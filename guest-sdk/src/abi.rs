//! The `lambda_v1` host ABI (see `ABI.md`): the only module that declares or calls the host's
//! imports, and so the only `unsafe` in the crate. It moves bytes across the boundary and
//! returns the raw ABI codes; it must not interpret them (that is `runtime`'s job).
#![allow(unsafe_code)]

/// The host as the invocation loop sees it. Each method is one ABI call and returns the raw ABI
/// code, so the loop owns what the codes mean and tests can drive it with a fake host.
pub(crate) trait Host {
    /// `next()`: blocks until an invocation is assigned; its payload length, or < 0 on shutdown.
    fn next(&mut self) -> i32;
    /// `event(ptr, len)`: copies the payload into `buf` if it fits; the payload length or -1.
    fn event(&mut self, buf: &mut [u8]) -> i32;
    /// `context(ptr, len)`: copies the context JSON into `buf` if it fits; its length or -1.
    fn context(&mut self, buf: &mut [u8]) -> i32;
    /// `respond(ptr, len)`: 0, or -1 when there is no current invocation.
    fn respond(&mut self, body: &[u8]) -> i32;
    /// `fail(type, message)`: 0, or -1 when there is no current invocation.
    fn fail(&mut self, error_type: &str, error_message: &str) -> i32;
}

/// The streaming imports (additive to `lambda_v1`): each returns the raw ABI code.
pub(crate) trait StreamHost: Host {
    /// `stream_start(ptr, len)`: 0; -1 no current invocation; -2 malformed prelude.
    fn stream_start(&mut self, prelude: &[u8]) -> i32;
    /// `stream_write(ptr, len)`: 0; -1 no stream or the caller is gone; -2 past the limit.
    fn stream_write(&mut self, chunk: &[u8]) -> i32;
    /// `stream_error(type, message)`: 0, or -1 when there is no stream.
    fn stream_error(&mut self, error_type: &str, error_message: &str) -> i32;
    /// `stream_end()`: 0, or -1 when there is no stream.
    fn stream_end(&mut self) -> i32;
}

/// The real host: the imports of the `aws-custom-runtime` wasm host.
#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
pub(crate) struct WasmHost;

#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
mod imports {
    // The module name carries the ABI version: a host that does not speak `lambda_v1` refuses
    // the module at link time instead of misreading its calls.
    #[link(wasm_import_module = "lambda_v1")]
    unsafe extern "C" {
        // No pointers, nothing the host can misuse: safe to call.
        pub(super) safe fn next() -> i32;
        pub(super) fn event(ptr: *mut u8, len: i32) -> i32;
        pub(super) fn context(ptr: *mut u8, len: i32) -> i32;
        pub(super) fn respond(ptr: *const u8, len: i32) -> i32;
        pub(super) fn fail(
            type_ptr: *const u8,
            type_len: i32,
            msg_ptr: *const u8,
            msg_len: i32,
        ) -> i32;
        pub(super) fn init_error(
            type_ptr: *const u8,
            type_len: i32,
            msg_ptr: *const u8,
            msg_len: i32,
        ) -> i32;
        pub(super) fn stream_start(ptr: *const u8, len: i32) -> i32;
        pub(super) fn stream_write(ptr: *const u8, len: i32) -> i32;
        pub(super) fn stream_error(
            type_ptr: *const u8,
            type_len: i32,
            msg_ptr: *const u8,
            msg_len: i32,
        ) -> i32;
        pub(super) safe fn stream_end() -> i32;
    }
}

/// WASI's environment calls, which std makes through wasi-libc's `getenv` otherwise.
#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
mod wasi {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        pub(super) fn environ_sizes_get(count: *mut u32, size: *mut u32) -> i32;
        pub(super) fn environ_get(pointers: *mut *mut u8, block: *mut u8) -> i32;
    }
}

/// The environment as WASI hands it over: a block holding every variable as `key=value`
/// followed by a NUL, and where in it each variable starts (empty when the host refuses
/// either call). Two calls and two allocations: `getenv` compares every entry byte by byte
/// until its name matches (five lookups were ≈ 15k of the guest's instructions per instance).
#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
pub(crate) fn environment() -> (Vec<u8>, Vec<usize>) {
    let (mut count, mut size) = (0_u32, 0_u32);
    // SAFETY: both pointers are to our own `u32`s, valid for one write each.
    if unsafe { wasi::environ_sizes_get(&mut count, &mut size) } != 0 {
        return (Vec::new(), Vec::new());
    }
    let mut pointers = vec![std::ptr::null_mut::<u8>(); count as usize];
    let mut block = vec![0_u8; size as usize];
    // SAFETY: the host writes `count` pointers and `size` bytes, the sizes it just gave, into
    // buffers of exactly those sizes, and keeps nothing.
    if unsafe { wasi::environ_get(pointers.as_mut_ptr(), block.as_mut_ptr()) } != 0 {
        return (Vec::new(), Vec::new());
    }
    let base = block.as_ptr() as usize;
    let starts = pointers
        .iter()
        .map(|p| (*p as usize).wrapping_sub(base))
        .filter(|&start| start < block.len())
        .collect();
    (block, starts)
}

/// A slice length as the ABI's `i32`. It cannot saturate on wasm32: a slice holds at most
/// `isize::MAX` bytes, which is `i32::MAX` there.
#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
fn abi_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
impl Host for WasmHost {
    fn next(&mut self) -> i32 {
        imports::next()
    }

    fn event(&mut self, buf: &mut [u8]) -> i32 {
        // SAFETY: `buf` is an exclusively borrowed, initialised region of our own linear memory,
        // valid for writes of `buf.len()` bytes; the host writes only inside [ptr, ptr + len)
        // and keeps no pointer after returning.
        unsafe { imports::event(buf.as_mut_ptr(), abi_len(buf.len())) }
    }

    fn context(&mut self, buf: &mut [u8]) -> i32 {
        // SAFETY: as for `event`.
        unsafe { imports::context(buf.as_mut_ptr(), abi_len(buf.len())) }
    }

    fn respond(&mut self, body: &[u8]) -> i32 {
        // SAFETY: `body` is valid for reads of `body.len()` bytes for the whole call; the host
        // only reads [ptr, ptr + len) and copies what it keeps.
        unsafe { imports::respond(body.as_ptr(), abi_len(body.len())) }
    }

    fn fail(&mut self, error_type: &str, error_message: &str) -> i32 {
        // SAFETY: as for `respond`, for both strings.
        unsafe {
            imports::fail(
                error_type.as_ptr(),
                abi_len(error_type.len()),
                error_message.as_ptr(),
                abi_len(error_message.len()),
            )
        }
    }
}

#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
impl StreamHost for WasmHost {
    fn stream_start(&mut self, prelude: &[u8]) -> i32 {
        // SAFETY: as for `respond`.
        unsafe { imports::stream_start(prelude.as_ptr(), abi_len(prelude.len())) }
    }

    fn stream_write(&mut self, chunk: &[u8]) -> i32 {
        // SAFETY: as for `respond`; the host copies the chunk before it returns.
        unsafe { imports::stream_write(chunk.as_ptr(), abi_len(chunk.len())) }
    }

    fn stream_error(&mut self, error_type: &str, error_message: &str) -> i32 {
        // SAFETY: as for `respond`, for both strings.
        unsafe {
            imports::stream_error(
                error_type.as_ptr(),
                abi_len(error_type.len()),
                error_message.as_ptr(),
                abi_len(error_message.len()),
            )
        }
    }

    fn stream_end(&mut self) -> i32 {
        imports::stream_end()
    }
}

/// `init_error(type, message)`: tells the host the function could not start.
#[cfg(all(target_arch = "wasm32", not(target_env = "p2")))]
pub(crate) fn init_error(error_type: &str, error_message: &str) -> i32 {
    // SAFETY: as for `WasmHost::respond`, for both strings.
    unsafe {
        imports::init_error(
            error_type.as_ptr(),
            abi_len(error_type.len()),
            error_message.as_ptr(),
            abi_len(error_message.len()),
        )
    }
}
