//! Invokers own the runners that take invocations from the Dispatcher: `native` starts and
//! supervises bootstrap processes, `wasm` runs `bootstrap.wasm` instances in wasmtime.

pub mod native;
pub mod wasm;
