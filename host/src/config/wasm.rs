//! The settings of WASI functions (`bootstrap.wasm`): isolation, memory cap, module cache,
//! perf map; parsed here into the `WasmSettings` the wasm invoker takes.

use std::path::PathBuf;

use clap::builder::{BoolishValueParser, EnumValueParser};
use clap::{ArgAction, Args, ValueEnum};

use super::parse::{self, Blank, MIB};
use crate::outbound::AllowList;

/// WASI function settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "WASI functions")]
pub struct WasmArgs {
    /// WASI functions: how instances map to invocations (any case).
    #[arg(long, env = "WASM_ISOLATION", value_name = "WASM_ISOLATION", default_value = "loop",
          ignore_case = true, value_parser = Blank(EnumValueParser::<Isolation>::new()))]
    pub wasm_isolation: Isolation,

    /// WASI functions: linear memory cap per instance (e.g. 128MiB, 64MB, 512KiB; a bare
    /// number is MiB). Default: AWS_LAMBDA_FUNCTION_MEMORY_SIZE MiB.
    #[arg(long, env = "WASM_MEMORY_LIMIT", value_name = "WASM_MEMORY_LIMIT",
          value_parser = parse::parse_memory)]
    pub wasm_memory_limit: Option<usize>,

    /// WASI functions (modules and components): size cap of each environment's writable /tmp
    /// (e.g. 64MiB, 1MB; a bare number is MiB); past it writes fail with ENOSPC.
    #[arg(long, env = "WASM_TMP_LIMIT", value_name = "WASM_TMP_LIMIT", default_value = "64MiB",
          value_parser = Blank(parse::parse_memory))]
    pub wasm_tmp_limit: usize,

    /// WASI functions: folder of precompiled modules (created private to this user).
    /// Default: aws-custom-runtime-cache in the temp folder; `off` disables the cache.
    #[arg(long, env = "WASM_CACHE_DIR", value_name = "WASM_CACHE_DIR")]
    pub wasm_cache_dir: Option<String>,

    /// WASI functions: write `/tmp/perf-<pid>.map` so that `perf` names the guest's functions
    /// in profiles (true/false, yes/no, on/off, 1/0).
    #[arg(long, env = "WASM_PERF_MAP", value_name = "WASM_PERF_MAP", default_value = "false",
          value_parser = Blank(BoolishValueParser::new()), action = ArgAction::Set)]
    pub wasm_perf_map: bool,

    /// WebAssembly components: origins their outgoing HTTP requests may reach, comma-separated
    /// `scheme://host:port` (`*` for any scheme, host or port; `*.domain` for names below a
    /// domain). Default: none (no outbound network).
    #[arg(long, env = "WASM_ALLOWED_OUTBOUND_HOSTS", value_name = "WASM_ALLOWED_OUTBOUND_HOSTS",
          default_value = "", value_parser = parse_allow_list)]
    pub wasm_allowed_outbound_hosts: AllowList,
}

fn parse_allow_list(value: &str) -> Result<AllowList, String> {
    AllowList::parse(value).map_err(|e| e.to_string())
}

/// How WASI instances map to invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// Long-lived instances; globals persist between invocations, as on AWS.
    Loop,
    /// A fresh sandbox for every invocation, for multi-tenant use.
    Invocation,
}

/// What the wasm invoker needs to run `bootstrap.wasm`.
#[derive(Debug, Clone)]
pub struct WasmSettings {
    pub module: PathBuf,
    pub isolation: Isolation,
    pub memory_limit: usize,
    /// Size cap of each environment's /tmp (`WASM_TMP_LIMIT`).
    pub tmp_limit: usize,
    pub cache_dir: Option<PathBuf>,
    pub perf_map: bool,
    pub allowed_outbound: AllowList,
}

impl WasmArgs {
    /// The settings for `module`; the memory cap defaults to the function's memory size.
    pub(super) fn settings(&self, module: PathBuf, memory_mb: u32) -> WasmSettings {
        let cache_dir = match self.wasm_cache_dir.as_deref().map(str::trim) {
            Some("off") => None,
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
            _ => Some(std::env::temp_dir().join("aws-custom-runtime-cache")),
        };
        WasmSettings {
            module,
            isolation: self.wasm_isolation,
            memory_limit: self.wasm_memory_limit.unwrap_or(memory_mb as usize * MIB),
            tmp_limit: self.wasm_tmp_limit,
            cache_dir,
            perf_map: self.wasm_perf_map,
            allowed_outbound: self.wasm_allowed_outbound_hosts.clone(),
        }
    }
}
