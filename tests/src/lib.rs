//! Helpers for end-to-end tests: run the binaries (whose paths the calling test crate gets
//! from Cargo, see [`bin!`]), measure them, read their JSON, make their inputs.

pub mod events;
pub mod formula;
pub mod probe;
pub mod python;
pub mod tiny;

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
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

/// The path of binary `$name`, which Cargo built for the calling test crate: Cargo sets
/// `CARGO_BIN_EXE_<name>` while compiling the integration tests of the package that owns the
/// binary (and builds the binary first), so the test itself never runs cargo.
#[macro_export]
macro_rules! bin {
    ($name:literal) => {
        ::std::path::Path::new(env!(concat!("CARGO_BIN_EXE_", $name)))
    };
}

/// The path of a workspace binary in the profile the tests were built with,
/// `target/<profile>/<name>`, for a test that drives binaries of several packages (Cargo
/// builds only its own package's). It must be built beforehand: a missing one fails with
/// the command that builds them all.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: this test runs the binaries of several packages, which `cargo test` \
         does not build; run `cargo build --workspace --bins` first (with --release for a \
         release test run; `make test` does it)",
        path.display()
    );
    path
}

/// The binary's file name, for messages.
fn name_of(bin: &Path) -> std::borrow::Cow<'_, str> {
    bin.file_name().unwrap_or(bin.as_os_str()).to_string_lossy()
}

/// Runs a binary with arguments; returns its output whatever its exit status.
pub fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// Runs a binary that must succeed; returns its stdout.
pub fn run_ok(bin: &Path, args: &[&str]) -> String {
    let out = run(bin, args);
    let name = name_of(bin);
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a binary that must fail with `code`; returns its stderr.
pub fn run_err(bin: &Path, args: &[&str], code: i32) -> String {
    let out = run(bin, args);
    let name = name_of(bin);
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
pub fn run_measured(bin: &Path, args: &[&str]) -> Measured {
    measure(Command::new(bin).args(args), Duration::from_secs(120))
}

/// Writes the shape scenes `datasets synth --source shapes` writes (its default seed and JPEG
/// quality) of `size` pixels into `out` (VOCdevkit/, ADEChallengeData2016/ and coco/):
/// `train`, `val` and `test` images. Through the library, so that the tests of any package
/// can make them.
pub fn shape_scenes(out: &Path, train: usize, val: usize, test: usize, size: usize) {
    let config = datasets::synth::SynthConfig {
        out: out.to_path_buf(),
        train,
        val,
        test,
        size,
        seed: 0,
        jpeg_quality: 90,
    };
    datasets::synth::generate(&config, &datasets::synth::ItemSource::Shapes)
        .unwrap_or_else(|e| panic!("synthetic scenes in {}: {e}", out.display()));
}
