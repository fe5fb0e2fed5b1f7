//! The Python with PyTorch that checks against torchvision run in, where a machine has it:
//! the interpreter `scripts/setup.sh` installs torch into (the one `scripts/bench.sh` uses),
//! with the modules a check needs. A machine without them (a fresh CI runner has the venv
//! but maybe not torchvision) skips those checks and says why.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// `$TRICKS_PYTHON`, else the set-up's venv under `$XDG_CACHE_HOME` (or `~/.cache`).
pub fn interpreter() -> PathBuf {
    if let Some(python) = std::env::var_os("TRICKS_PYTHON") {
        return PathBuf::from(python);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("tricks/torch-2.11.0/venv/bin/python")
}

/// The interpreter when it imports every one of `modules`, else why the check cannot run.
/// A test that checks twice asks once: each probe imports torch, seconds of start-up.
pub fn with_modules(modules: &[&str]) -> Result<PathBuf, String> {
    static PROBED: Mutex<Vec<(String, Result<PathBuf, String>)>> = Mutex::new(Vec::new());
    let key = modules.join(",");
    let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, found)) = probed.iter().find(|(k, _)| *k == key) {
        return found.clone();
    }
    let found = probe(modules);
    probed.push((key, found.clone()));
    found
}

fn probe(modules: &[&str]) -> Result<PathBuf, String> {
    let python = interpreter();
    if !python.is_file() {
        return Err(format!(
            "no Python at {} (scripts/setup.sh makes it; TRICKS_PYTHON names another)",
            python.display()
        ));
    }
    let imports = format!("import {}", modules.join(", "));
    let probe = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !probe.status.success() {
        let stderr = String::from_utf8_lossy(&probe.stderr);
        let last = stderr.lines().last().unwrap_or("").trim().to_string();
        return Err(format!(
            "{} cannot `{imports}` ({last}); `{} -m pip install torchvision==0.26.0 safetensors` \
             adds them",
            python.display(),
            python.display()
        ));
    }
    Ok(python)
}
