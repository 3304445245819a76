//! Invokers own the runners that take invocations from the Dispatcher: `native` starts and
//! supervises bootstrap processes.

pub mod native;
