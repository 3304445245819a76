//! A core module's environment (`environ_sizes_get`, `environ_get`), answered from a block
//! laid out once: the `k=v\0` strings as WASI hands them to the guest, and where each
//! starts. wasmtime-wasi's own imports copy the context's variables twice for every
//! instance (once per call, a `String` per key and per value) and write them a few bytes at
//! a time; a fresh instance per invocation paid that at every invocation (≈ 9k
//! instructions of the 140k a `WASM_ISOLATION=invocation` invocation runs). The variables
//! and their order are the ones the context would have held; out-of-bounds or misaligned
//! pointers trap, as in wasmtime-wasi (which looks at no pointer when there is nothing to
//! write).

use wasmtime::{Caller, Linker};

use super::abi::Guest;

const WASI: &str = "wasi_snapshot_preview1";
/// WASI's `errno::success`.
const SUCCESS: i32 = 0;

/// The environment of an instance, in the layout `environ_get` writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Environ {
    /// Every variable as `key=value\0`, one after the other.
    block: Vec<u8>,
    /// Where each variable starts in `block`.
    starts: Vec<u32>,
}

impl Environ {
    /// `vars` in their order.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(vars: impl IntoIterator<Item = (K, V)>) -> Environ {
        let mut env = Environ::default();
        env.extend(vars);
        env
    }

    /// This environment with `vars` after its own.
    pub fn with<K: AsRef<str>, V: AsRef<str>>(
        &self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Environ {
        let mut env = self.clone();
        env.extend(vars);
        env
    }

    fn extend<K: AsRef<str>, V: AsRef<str>>(&mut self, vars: impl IntoIterator<Item = (K, V)>) {
        for (k, v) in vars {
            self.starts.push(self.block.len() as u32);
            self.block.extend_from_slice(k.as_ref().as_bytes());
            self.block.push(b'=');
            self.block.extend_from_slice(v.as_ref().as_bytes());
            self.block.push(0);
        }
    }

    /// Variables, and bytes of the block they fill.
    fn sizes(&self) -> (u32, u32) {
        (self.starts.len() as u32, self.block.len() as u32)
    }

    /// The table of pointers `environ_get` writes at `table` for a block written at `buf`
    /// (little-endian `u32`s); `None` when the block would pass the 32-bit address space.
    fn pointers(&self, buf: u32) -> Option<Vec<u8>> {
        buf.checked_add(self.block.len() as u32)?;
        let mut table = Vec::with_capacity(self.starts.len() * 4);
        for start in &self.starts {
            table.extend_from_slice(&(buf + start).to_le_bytes());
        }
        Some(table)
    }
}

/// Replaces WASI's `environ_sizes_get` and `environ_get` on `linker` (which already has
/// WASI) with ones that read the store's [`Environ`].
pub fn add_to_linker(linker: &mut Linker<Guest>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut caller: Caller<'_, Guest>, count: i32, size: i32| -> wasmtime::Result<i32> {
            let (n, len) = caller.data().environ.sizes();
            write(&mut caller, count, &n.to_le_bytes(), 4)?;
            write(&mut caller, size, &len.to_le_bytes(), 4)?;
            Ok(SUCCESS)
        },
    )?;
    linker.func_wrap(
        WASI,
        "environ_get",
        |mut caller: Caller<'_, Guest>, table: i32, buf: i32| -> wasmtime::Result<i32> {
            let env = caller.data().environ.clone();
            let Some(pointers) = env.pointers(buf as u32) else {
                wasmtime::bail!("environ_get: the environment does not fit at {buf:#x}");
            };
            write(&mut caller, table, &pointers, 4)?;
            write(&mut caller, buf, &env.block, 1)?;
            Ok(SUCCESS)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Writes `bytes` at the guest's `ptr`, which must be aligned to `align` and in bounds (a
/// trap otherwise, as WASI asks).
fn write(
    caller: &mut Caller<'_, Guest>,
    ptr: i32,
    bytes: &[u8],
    align: u32,
) -> wasmtime::Result<()> {
    // Nothing to write (an empty environment): wasmtime-wasi looks at no pointer then.
    if bytes.is_empty() {
        return Ok(());
    }
    let ptr = ptr as u32;
    if !ptr.is_multiple_of(align) {
        wasmtime::bail!("WASI environ: pointer {ptr:#x} is not aligned to {align} bytes");
    }
    let memory = super::abi::memory(caller)?;
    memory
        .write(&mut *caller, ptr as usize, bytes)
        .map_err(|_| {
            wasmtime::format_err!(
                "WASI environ: {ptr:#x} + {} bytes is outside the guest's memory",
                bytes.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_is_each_variable_as_key_equals_value_and_a_nul() {
        let env = Environ::new([("A", "1"), ("EMPTY", ""), ("B", "x=y")]);
        assert_eq!(env.block, b"A=1\0EMPTY=\0B=x=y\0");
        assert_eq!(env.sizes(), (3, 17));
        let table = env.pointers(0x100).unwrap();
        let starts: Vec<u32> = table
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(starts, [0x100, 0x104, 0x10b]);
    }

    #[test]
    fn with_appends_after_the_base_in_order() {
        let base = Environ::new([("A", "1")]);
        let env = base.with([("B", "2"), ("C", "3")]);
        assert_eq!(env, Environ::new([("A", "1"), ("B", "2"), ("C", "3")]));
        assert_eq!(base.sizes(), (1, 4));
    }

    #[test]
    fn an_empty_environment_has_no_variables_and_no_bytes() {
        let env = Environ::new(Vec::<(String, String)>::new());
        assert_eq!(env.sizes(), (0, 0));
        assert_eq!(env.pointers(8).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_block_that_would_wrap_the_address_space_is_refused() {
        let env = Environ::new([("KEY", "value")]);
        assert!(env.pointers(u32::MAX - 4).is_none());
        assert!(env.pointers(u32::MAX - 10).is_some());
    }
}
