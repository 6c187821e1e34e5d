//! Helpers shared by the process-starting parts of test support (tansu, Debezium).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `$PGSNAP_TOOLS_DIR`, else `$HOME/.cache/pgsnap/tools` (as `scripts/setup.sh --kafka`).
pub(crate) fn tools_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PGSNAP_TOOLS_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/pgsnap/tools")
}

/// A detached `sh` (named `name` in `ps`) that, once this test process is gone, kills
/// `child` with SIGKILL and removes `dirs`, so no helper process or temp directory outlives a
/// test run, even a killed one.
pub(crate) fn spawn_watchdog(name: &str, child: u32, dirs: &[&Path]) -> Option<Child> {
    const SCRIPT: &str = r#"
pid=$1; child=$2; shift 2
while kill -0 "$pid" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
if ! kill -0 "$pid" 2>/dev/null; then
    kill -9 "$child" 2>/dev/null
    if [ $# -gt 0 ]; then sleep 2; rm -rf "$@"; fi
fi
"#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", SCRIPT, name])
        .arg(std::process::id().to_string())
        .arg(child.to_string())
        .args(dirs)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own process group: a Ctrl-C to the test run must not kill it.
        .process_group(0);
    match cmd.spawn() {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("pgsnap-test-support: could not start {name}: {e}");
            None
        }
    }
}
