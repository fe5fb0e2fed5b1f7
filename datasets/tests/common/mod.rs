//! Shared by the hostile-input tests: running the `datasets` binary with its peak memory
//! measured, and writing small datasets to attack.

#![allow(dead_code)] // each test file uses its own part

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn datasets_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_datasets"))
}

/// How a child process ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status, `None` when a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The child's own peak resident memory (not its parent's, not its siblings').
    pub peak_rss_mib: f64,
    /// Killed after the time limit.
    pub timed_out: bool,
}

impl Outcome {
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked") || self.code == Some(101) || self.signal.is_some()
    }
}

/// Runs `command` to its end (killing it after `limit`), and reads the child's peak RSS from
/// `wait4`, which reports it for that one child: tests run in parallel, so
/// `getrusage(RUSAGE_CHILDREN)` would mix their children up.
// The child is reaped by wait4 below, which std's `wait` would pre-empt.
#[allow(clippy::zombie_processes)]
pub fn run_measured(command: &mut Command, limit: Duration) -> Outcome {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the datasets binary starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut timed_out = false;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes it (and status) for our own child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        assert!(
            done == 0,
            "wait4 failed: {}",
            std::io::Error::last_os_error()
        );
        if !timed_out && started.elapsed() > limit {
            timed_out = true;
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, Some(libc::WTERMSIG(status)))
    };
    Outcome {
        code,
        signal,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        // Linux reports kilobytes.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        timed_out,
    }
}

/// Copies a folder tree (the fixtures are a few small files).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// An RGB image with some texture, encoded as `format`.
pub fn encoded_image(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 7 + y * 13 + (x * y) % 31) as u8;
        image::Rgb([v, v.wrapping_mul(3), 255 - v])
    });
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// A valid 8-bit grayscale PNG of `side` x `side` zeros: a few hundred KB on disk for
/// 20000 x 20000, 400 MB once decoded (and 1.2 GB as RGB).
pub fn grey_png_bomb(side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    {
        let mut stream = writer.stream_writer().unwrap();
        let rows = vec![0u8; side as usize * 64];
        for _ in 0..side / 64 {
            std::io::Write::write_all(&mut stream, &rows).unwrap();
        }
        std::io::Write::write_all(&mut stream, &rows[..(side % 64) as usize * side as usize])
            .unwrap();
        stream.finish().unwrap();
    }
    writer.finish().unwrap();
    out
}

/// Gzip-compressed IDX bytes: the magic for unsigned bytes, `dims`, then `data`.
pub fn idx_gz(dims: &[u32], data: impl Iterator<Item = u8>) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 8, dims.len() as u8]).unwrap();
    for d in dims {
        gz.write_all(&d.to_be_bytes()).unwrap();
    }
    let data: Vec<u8> = data.collect();
    gz.write_all(&data).unwrap();
    gz.finish().unwrap()
}

/// A Fashion-MNIST folder with `n` 28x28 items in each split.
pub fn write_fashion_mnist(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for prefix in ["train", "t10k"] {
        let pixels = (0..n * 28 * 28).map(|i| ((i % 28) * 9) as u8);
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            idx_gz(&[n, 28, 28], pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            idx_gz(&[n], (0..n).map(|i| (i % 10) as u8)),
        )
        .unwrap();
    }
}
