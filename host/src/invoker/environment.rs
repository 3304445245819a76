//! What a native bootstrap's execution environment has besides its process group: its
//! scratch folder (`TMPDIR`, emptied at every start) and, with tenant isolation, its
//! Landlock confinement (read-only task folder and system, read-write own scratch only).

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::config::Config;
use crate::dispatch::RunnerId;
use crate::tenancy::confine;
use crate::tenancy::scratch::Scratch;

pub struct Environment {
    runner: RunnerId,
    scratch: Option<Scratch>,
    /// Folders the bootstrap may read when confined; `None`: not confined.
    confined_to: Option<Vec<PathBuf>>,
}

impl Environment {
    /// The environment of bootstrap `runner`; confined when `per_tenant`.
    pub fn create(runner: RunnerId, bootstrap: &Path, config: &Config, per_tenant: bool) -> Self {
        let scratch = match Scratch::create(&format!("env-{runner}")) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(bootstrap = runner, "no scratch folder (TMPDIR): {e}");
                None
            }
        };
        let confined_to = per_tenant.then(|| {
            let mut read = vec![config.task_root.clone()];
            // A bootstrap linked from elsewhere must still be readable where it really is.
            if let Some(dir) = std::fs::canonicalize(bootstrap)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
            {
                read.push(dir);
            }
            read
        });
        Environment {
            runner,
            scratch,
            confined_to,
        }
    }

    /// Empties the scratch folder (before every start).
    pub async fn clear(&self) {
        let Some(s) = &self.scratch else { return };
        if let Err(e) = s.clear_off_thread().await {
            tracing::error!(
                bootstrap = self.runner,
                "cannot empty the scratch folder: {e}"
            );
        }
    }

    /// Points the bootstrap's `TMPDIR` at the scratch folder.
    pub fn prepare(&self, cmd: &mut Command) {
        if let Some(s) = &self.scratch {
            cmd.env("TMPDIR", s.path());
        }
    }

    /// Applies Landlock in the child, before exec, when the environment is confined.
    #[allow(unsafe_code)]
    pub fn confine(&self, cmd: &mut Command) {
        let (Some(read), Some(scratch)) = (&self.confined_to, &self.scratch) else {
            return;
        };
        let Some(ruleset) = confine::ruleset(read, scratch.path()) else {
            return;
        };
        let mut ruleset = Some(ruleset);
        // SAFETY: the ruleset was built before the fork; applying it is a prctl and one
        // system call, which allocate nothing.
        unsafe {
            cmd.pre_exec(move || match ruleset.take() {
                Some(r) => r
                    .restrict_self()
                    .map(drop)
                    .map_err(|_| std::io::Error::from_raw_os_error(nix::libc::EPERM)),
                None => Ok(()),
            });
        }
    }
}
