//! Two processes on 127.0.0.1 (Gloo through a FileStore): the collectives give the right
//! values, and a rank that dies makes the other fail naming it, within the timeout.
//!
//! Each test starts copies of this test executable as its ranks (`RANK_OF_TEST` set), which
//! run only the body of the same test.

use distributed::{GroupOptions, ProcessGroup, ReduceOp};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tch::Tensor;

const ROLE: &str = "RANK_OF_TEST";
const STORE: &str = "STORE_OF_TEST";

/// In a rank process: (rank, the group). In the test process: None.
fn as_rank(timeout: Duration) -> Option<(usize, ProcessGroup)> {
    let rank: usize = std::env::var(ROLE).ok()?.parse().unwrap();
    let store = std::env::var(STORE).unwrap();
    let options = GroupOptions {
        timeout,
        nccl: false,
    };
    let group = ProcessGroup::with_file_store(store.as_ref(), rank, 2, &options).unwrap();
    Some((rank, group))
}

/// Runs `test` in two rank processes and returns their outputs.
fn run_ranks(test: &str) -> Vec<Output> {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(ROLE, rank.to_string())
                .env(STORE, &store)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn sum_min_max_broadcast_and_barrier_agree_across_two_processes() {
    if let Some((rank, group)) = as_rank(Duration::from_secs(30)) {
        let r = rank as f32;
        let sum = Tensor::from_slice(&[1.0 + r, 10.0 * r]);
        group
            .all_reduce(&[sum.shallow_clone()], ReduceOp::Sum, "sum")
            .unwrap();
        assert_eq!(Vec::<f32>::try_from(&sum).unwrap(), vec![3.0, 10.0]);
        let min = Tensor::from_slice(&[5 - rank as i64]);
        group
            .all_reduce(&[min.shallow_clone()], ReduceOp::Min, "min")
            .unwrap();
        assert_eq!(min.int64_value(&[0]), 4);
        let max = Tensor::from_slice(&[r]);
        group
            .all_reduce(&[max.shallow_clone()], ReduceOp::Max, "max")
            .unwrap();
        assert_eq!(max.double_value(&[0]), 1.0);
        let mut values = [r as f64, 2.5];
        group.sum_f64(&mut values, "sum_f64").unwrap();
        assert_eq!(values, [1.0, 5.0]);
        // Rank 0's tensors of two types reach rank 1.
        let a = Tensor::from_slice(&[r + 7.0, r + 8.0]);
        let b = Tensor::from_slice(&[rank as i64 * 100]);
        group
            .broadcast(&[a.shallow_clone(), b.shallow_clone()], 0, "bcast")
            .unwrap();
        assert_eq!(Vec::<f32>::try_from(&a).unwrap(), vec![7.0, 8.0]);
        assert_eq!(b.int64_value(&[0]), 0);
        group.barrier("the barrier").unwrap();
        println!("rank {rank} ok");
        return;
    }
    let outputs = run_ranks("sum_min_max_broadcast_and_barrier_agree_across_two_processes");
    for (rank, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "rank {rank} failed:\n{}", text(o));
        assert!(text(o).contains(&format!("rank {rank} ok")), "{}", text(o));
    }
}

#[test]
fn a_rank_that_dies_is_named_by_the_survivor_within_the_timeout() {
    if let Some((rank, group)) = as_rank(Duration::from_secs(20)) {
        let t = Tensor::from_slice(&[1.0f32]);
        group
            .all_reduce(&[t.shallow_clone()], ReduceOp::Sum, "warm-up")
            .unwrap();
        if rank == 1 {
            // Dies without a word, as a SIGKILLed process does.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let err = group
            .all_reduce(&[t.shallow_clone()], ReduceOp::Sum, "the test's all-reduce")
            .unwrap_err();
        println!("elapsed {:.1} s", start.elapsed().as_secs_f64());
        println!("error: {err}");
        return;
    }
    let start = Instant::now();
    let outputs = run_ranks("a_rank_that_dies_is_named_by_the_survivor_within_the_timeout");
    let survivor = text(&outputs[0]);
    assert!(outputs[0].status.success(), "{survivor}");
    assert!(
        survivor.contains("rank 0 of 2: the test's all-reduce failed: lost rank 1"),
        "{survivor}"
    );
    assert!(start.elapsed() < Duration::from_secs(20), "{survivor}");
}
