//! The chaos suite's parts (docs/chaos.md): handoff's services as separate processes under
//! faults, and the oracle that judges what they left behind. `handoff-chaos` (the command)
//! and the tests share them.

pub mod broker;
pub mod fleet;
pub mod oracle;
pub mod receiver;
pub mod run;

use std::path::PathBuf;

/// The folder of the built binaries (`handoff`, `handoff-mock-broker`): this executable's,
/// or its parent's when this is a test (`target/<profile>/deps/…`).
pub fn binary_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no folder", exe.display()))?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// A built binary of the workspace, or an error that says how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = binary_dir()?.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --bin {name}`",
        path.display()
    );
    Ok(path)
}
