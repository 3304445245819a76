//! An SDK guest whose initialisation always fails: it reports `ProbeInitFailure` through
//! `init_error` and exits without ever calling `next()`.

fn main() {
    lambda_wasi::report_init_error(lambda_wasi::Diagnostic {
        error_type: "ProbeInitFailure".into(),
        error_message: "init-error-probe never starts".into(),
    });
    eprintln!("init-error-probe: reported an init error, exiting");
}
