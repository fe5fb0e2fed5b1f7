//! `--nproc N`: N ranks of this program on this machine without torchrun. Like torchrun's
//! agent, the launcher hosts the rendezvous store (on a free port of 127.0.0.1) and sets
//! the same variables, so a rank runs the same code either way. Rank 0 keeps the terminal;
//! the others' stderr is prefixed with `[rank R]` and their stdout dropped. The first rank
//! to fail stops the run: the others are terminated and the failure is named.

use crate::env::timeout_from_env;
use crate::store::Store;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Exit status of a launch: what the failing rank exited with (2 for bad input, else 1).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `rank` failed first; `message` says how.
    Failed {
        rank: usize,
        code: i32,
        message: String,
    },
}

/// Starts `nproc` copies of the running executable with `args` (its command line without
/// `--nproc`) and the variables `env` added to this process's, as ranks 0..nproc, and waits
/// for them.
pub fn run_local_ranks(
    nproc: usize,
    args: &[OsString],
    env: &[(&str, &str)],
) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let timeout = match env.iter().find(|(k, _)| *k == crate::env::TIMEOUT_VAR) {
        Some((_, v)) => crate::env::parse_timeout(v)?,
        None => timeout_from_env()?,
    };
    let store = Store::tcp("127.0.0.1", 0, true, timeout)?;
    let port = store
        .port()
        .ok_or("the rendezvous store reported no port")?;
    let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / nproc).max(1).to_string()
    });
    let mut children: Vec<Option<Child>> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .envs(env.iter().copied())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("GROUP_RANK", "0")
            .env("ROLE_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("TORCHELASTIC_USE_AGENT_STORE", "True")
            .env("TORCHELASTIC_RESTART_COUNT", "0")
            .env("OMP_NUM_THREADS", &threads);
        if rank > 0 {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        // SAFETY: prctl is async-signal-safe; a rank must not outlive its launcher.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut children);
                return Err(format!(
                    "could not start rank {rank} ({}): {e}",
                    exe.display()
                ));
            }
        };
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = writeln!(std::io::stderr(), "[rank {rank}] {line}");
                }
            });
        }
        children.push(Some(child));
    }
    let outcome = wait_all(&mut children);
    drop(store);
    Ok(outcome)
}

fn wait_all(children: &mut [Option<Child>]) -> Outcome {
    loop {
        let mut running = 0;
        for rank in 0..children.len() {
            let Some(child) = children[rank].as_mut() else {
                continue;
            };
            match child.try_wait() {
                Ok(None) => running += 1,
                Ok(Some(status)) => {
                    children[rank] = None;
                    if !status.success() {
                        stop_all(children);
                        return Outcome::Failed {
                            rank,
                            code: if status.code() == Some(2) { 2 } else { 1 },
                            message: format!(
                                "rank {rank} {}; the other ranks were stopped",
                                describe(status)
                            ),
                        };
                    }
                }
                Err(e) => {
                    children[rank] = None;
                    stop_all(children);
                    return Outcome::Failed {
                        rank,
                        code: 1,
                        message: format!("could not wait for rank {rank}: {e}"),
                    };
                }
            }
        }
        if running == 0 {
            return Outcome::Success;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended abnormally".to_string(),
    }
}

/// SIGTERM to every rank still running, SIGKILL to those left after 5 s.
fn stop_all(children: &mut [Option<Child>]) {
    for child in children.iter().flatten() {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for slot in children.iter_mut() {
        if let Some(child) = slot.as_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        *slot = None;
    }
}

/// The command line of this process without `--nproc N` / `--nproc=N` (what each rank runs).
pub fn args_without_nproc(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--nproc" {
            args.next();
        } else if !arg.to_string_lossy().starts_with("--nproc=") {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nproc_is_removed_in_both_spellings() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            args_without_nproc(args(&["train", "--nproc", "2", "--out", "r"])),
            args(&["train", "--out", "r"])
        );
        assert_eq!(
            args_without_nproc(args(&["train", "--nproc=4", "--resume"])),
            args(&["train", "--resume"])
        );
    }
}
