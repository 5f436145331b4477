//! What the worker's child processes share: the program to run (the worker's own executable
//! with a hidden subcommand), dying with the worker, and saying how a child died. Two kinds of
//! work run in children: compiling a component ([`crate::plugin::compiler`]) and invocations
//! of plugins whose manifest asks for `isolation = "process"` ([`crate::isolated`]).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::ExitStatus,
};

/// A program with its leading arguments: the worker's own executable and a subcommand.
#[derive(Debug, Clone)]
pub struct ChildProgram {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl ChildProgram {
    /// This executable, run with `args`. On Linux `/proc/self/exe`: the binary that is
    /// running, even after an upgrade replaced the file on disk, so a child always speaks the
    /// running worker's protocol and builds its engine.
    pub fn this_executable(args: &[&str]) -> std::io::Result<Self> {
        let program = if cfg!(target_os = "linux") {
            PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe()?
        };
        Ok(Self {
            program,
            args: args.iter().map(OsString::from).collect(),
        })
    }

    pub(crate) fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args).kill_on_drop(true);
        // `ps` shows the worker's own name for its children, not `/proc/self/exe`.
        #[cfg(unix)]
        if self.program == Path::new("/proc/self/exe")
            && let Some(name) = std::env::args_os().next()
        {
            command.arg0(name);
        }
        command
    }
}

/// Called first in a child: a worker killed (kill -9) takes the child with it, rather than
/// leaving it to finish work nobody will read. The kernel sends this when the *thread* that
/// spawned the child ends: the worker spawns children from its async runtime's worker
/// threads, which live as long as the runtime (nothing in the worker uses block_in_place,
/// which would retire one).
pub fn die_with_parent() {
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
}

/// The signal that ended a child, if one did.
#[cfg(unix)]
pub(crate) fn signal(status: &ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
pub(crate) fn signal(_: &ExitStatus) -> Option<i32> {
    None
}
