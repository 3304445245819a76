//! The smallest `lambda_v1` guest: no SDK, no JSON, no async runtime; it echoes each event
//! back as the response. The micro-benchmarks run it to separate the host's share of a
//! fresh-instance cycle from the work of a real guest (the SDK echo example).
#![allow(unsafe_code)]

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "lambda_v1")]
unsafe extern "C" {
    safe fn next() -> i32;
    fn event(ptr: *mut u8, len: i32) -> i32;
    fn respond(ptr: *const u8, len: i32) -> i32;
}

#[cfg(target_arch = "wasm32")]
fn main() {
    let mut buf = Vec::new();
    loop {
        let Ok(len) = usize::try_from(next()) else {
            return;
        };
        buf.resize(len, 0);
        // SAFETY: `buf` is ours, initialised and `len` bytes long; the host writes only inside it.
        let copied = unsafe { event(buf.as_mut_ptr(), len as i32) };
        // -1 (no invocation) or a size other than announced: leave it; the host fails it
        // when this loop asks for the next one without answering.
        if usize::try_from(copied) != Ok(len) {
            continue;
        }
        // SAFETY: `buf` is valid for reads of its length during the call.
        unsafe { respond(buf.as_ptr(), buf.len() as i32) };
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("abi-echo is a guest for the wasm host: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
