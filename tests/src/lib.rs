//! Helpers for end-to-end tests: find (and build) the binaries, run them, read their JSON.

pub mod formula;
pub mod tiny;

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

pub fn fixture(path: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(path)
}

/// Path of a workspace binary in the profile the tests were built with, built on first use
/// (a plain `cargo test` builds only the test crates).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--bin", name])
            .current_dir(repo_root());
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
        built.push(name.to_string());
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Runs a binary with arguments; returns its output whatever its exit status.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// Runs a binary that must succeed; returns its stdout.
pub fn run_ok(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a binary that must fail with `code`; returns its stderr.
pub fn run_err(name: &str, args: &[&str], code: i32) -> String {
    let out = run(name, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{name} {args:?}: expected exit {code}, stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{name} {args:?} panicked:\n{stderr}"
    );
    stderr
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A finished child process: its exit status, output, and the most resident memory it used.
pub struct Measured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size in MiB (the child's own `ru_maxrss`, from `wait4`).
    pub peak_rss_mib: f64,
    /// Whether it was killed for running past the time limit.
    pub timed_out: bool,
}

impl Measured {
    /// "exit 2", "signal 9 (timed out)": how the child ended, for messages.
    pub fn ending(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) if self.timed_out => format!("signal {sig} (timed out)"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown ending".into(),
        }
    }
}

/// Address space a measured child may map: far above what the binaries need, so that a
/// regression that balloons fails its allocation (and the test) instead of swapping the
/// machine.
const ADDRESS_SPACE_LIMIT: u64 = 24 << 30;

/// Runs `cmd` to the end (killing it after `limit`) and measures its peak memory.
pub fn measure(cmd: &mut Command, limit: Duration) -> Measured {
    measure_within(cmd, limit, ADDRESS_SPACE_LIMIT)
}

/// [`measure`] with the child's address space capped at `address_space` bytes: a probe that
/// must not read much gets a low cap, so a runaway read fails its allocation at once.
pub fn measure_within(cmd: &mut Command, limit: Duration, address_space: u64) -> Measured {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(move || {
            let cap = libc::rlimit {
                rlim_cur: address_space,
                rlim_max: address_space,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn the binary");
    let pid = child.id() as libc::pid_t;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let mut timed_out = false;
    let mut raw_status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits on our own child; both pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut raw_status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > limit && !timed_out {
            timed_out = true;
            // SAFETY: signals our own child, not yet reaped, so the pid is still its.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The child is reaped; `Child` must not wait on it again (dropping it does not).
    drop(child);
    Measured {
        status: ExitStatus::from_raw(raw_status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        timed_out,
    }
}

/// Runs a binary with arguments under [`measure`] (two minutes at most).
pub fn run_measured(name: &str, args: &[&str]) -> Measured {
    measure(Command::new(bin(name)).args(args), Duration::from_secs(120))
}

/// Writes `datasets synth` shape scenes of `size` pixels into `out` (VOCdevkit/ and
/// ADEChallengeData2016/): `train`, `val` and `test` images.
pub fn shape_scenes(out: &Path, train: usize, val: usize, test: usize, size: usize) {
    let (train, val, test, size) = (
        train.to_string(),
        val.to_string(),
        test.to_string(),
        size.to_string(),
    );
    run_ok(
        "datasets",
        &[
            "synth",
            "--out",
            out.to_str().expect("a UTF-8 path"),
            "--source",
            "shapes",
            "--train",
            &train,
            "--val",
            &val,
            "--test",
            &test,
            "--size",
            &size,
        ],
    );
}
