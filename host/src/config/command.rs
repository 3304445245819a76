//! The verbs of the command line: `serve` (the default, with no verb) and `compile`, which
//! precompiles a WASI function at image-build time. Resolves what `compile` works on; the
//! compiling itself is the wasm invoker's.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{Args, ConfigError, WasmSettings};

/// What the binary does.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the function (the default when no verb is given).
    Serve,
    /// Precompile bootstrap.wasm to bootstrap.cwasm beside it, with an integrity record
    /// (bootstrap.cwasm.integrity), for the engine settings the same environment would serve
    /// with (INVOKER_COUNT, WASM_MEMORY_LIMIT, WASM_PERF_MAP); a later start loads it without
    /// compiling. Run it at image-build time.
    Compile {
        /// The function's folder (bootstrap.wasm inside it) or a .wasm file.
        /// Default: LAMBDA_TASK_ROOT, else the current folder.
        #[arg(value_name = "FOLDER|FILE")]
        target: Option<PathBuf>,
    },
}

/// The module `compile` works on and the settings of the engine to compile it for; None:
/// `target` is a folder without bootstrap.wasm (a native function: nothing to precompile,
/// so one image recipe serves both kinds).
pub fn compile_settings(
    args: &Args,
    target: Option<&Path>,
    cwd: &Path,
) -> Result<Option<WasmSettings>, ConfigError> {
    let target = target
        .or(args.function.task_root.as_deref())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| cwd.to_path_buf(), |p| cwd.join(p));
    let module = if target.is_dir() {
        let module = target.join("bootstrap.wasm");
        if !module.exists() {
            return Ok(None);
        }
        module
    } else {
        target
    };
    if !module.is_file() {
        return Err(ConfigError::Bootstrap(format!(
            "nothing to compile: {} is not a file (name a function folder holding bootstrap.wasm, or a .wasm file)",
            module.display()
        )));
    }
    Ok(Some(
        args.wasm.settings(module, args.function.info().memory_mb),
    ))
}
