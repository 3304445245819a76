//! The `aws-custom-runtime` binary: environment and flags → `Config` → bind → `run`.

use std::process::ExitCode;

use aws_custom_runtime::config::{Args, Command, Config};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Every build allocates with mimalloc: musl's own allocator halves the throughput of 1 MB
/// bodies (native-musl against native), and glibc's costs fresh WASI instances a third of
/// their throughput in arena-lock contention and consolidation (`make bench`, README).
/// [`alloc::Allocator`](aws_custom_runtime::alloc::Allocator) says why not the `mimalloc`
/// crate's own.
#[global_allocator]
static ALLOCATOR: aws_custom_runtime::alloc::Allocator = aws_custom_runtime::alloc::Allocator;

fn main() -> ExitCode {
    // clap answers --help and --version, and refuses malformed values, here.
    let mut args = Args::parse();
    let _log = match init_logging(&args) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("aws-custom-runtime: cannot start the log writer: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Compile { target }) = args.command.take() {
        return compile(&args, target.as_deref());
    }
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aws-custom-runtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aws-custom-runtime: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serve = async {
        let listeners = aws_custom_runtime::Listeners::bind(&config).await?;
        aws_custom_runtime::run(config, listeners, shutdown_signal()).await
    };
    match runtime.block_on(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `aws-custom-runtime compile [FOLDER|FILE]`: writes bootstrap.cwasm and its record.
fn compile(args: &Args, target: Option<&std::path::Path>) -> ExitCode {
    let settings = match std::env::current_dir()
        .map_err(anyhow::Error::from)
        .and_then(|cwd| {
            Ok(aws_custom_runtime::config::compile_settings(
                args, target, &cwd,
            )?)
        }) {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::info!("no bootstrap.wasm: nothing to precompile");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("aws-custom-runtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    match aws_custom_runtime::invoker::wasm::precompile(args.invoker_count, &settings) {
        Ok(path) => {
            tracing::info!("wrote precompiled artifact {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr with the first filter of LOG_LEVEL, RUST_LOG, `info` that parses; never
/// blocks (see `logging`).
fn init_logging(args: &Args) -> std::io::Result<aws_custom_runtime::logging::Guard> {
    let filter = args
        .log_filters()
        .find_map(aws_custom_runtime::logging::filter)
        .unwrap_or_else(|| EnvFilter::new("info"));
    aws_custom_runtime::logging::init(filter)
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the host with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
