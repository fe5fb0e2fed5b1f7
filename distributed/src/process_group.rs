//! A c10d ProcessGroup: Gloo for CPU tensors and (feature `nccl`) NCCL for CUDA tensors,
//! collectives that fail with a sentence saying what failed and which rank is gone.

use crate::env::RankEnv;
use crate::ffi;
use crate::liveness::Heartbeat;
use crate::store::Store;
use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;
use tch::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Min = 1,
    Max = 2,
}

/// A collective or rendezvous that failed (a lost peer, a timeout): a run-time failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DistError(pub String);

/// How to join.
#[derive(Clone, Debug)]
pub struct GroupOptions {
    pub timeout: Duration,
    /// Also NCCL for CUDA tensors (needs the `nccl` feature).
    pub nccl: bool,
}

pub struct ProcessGroup {
    pub(crate) raw: *mut ffi::Group,
    store: Arc<Store>,
    rank: usize,
    world_size: usize,
    timeout: Duration,
    heartbeat: Heartbeat,
}

// SAFETY: c10d process groups take collectives from any thread (each call is queued and
// waited on); the handle itself is immutable after creation.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group torchrun's variables describe: the TCPStore at MASTER_ADDR:MASTER_PORT
    /// (hosted by rank 0, or by torchrun's agent under TORCHELASTIC_USE_AGENT_STORE=True).
    pub fn from_env(env: &RankEnv, options: &GroupOptions) -> Result<ProcessGroup, DistError> {
        let is_server = env.rank == 0 && !env.use_agent_store;
        let store = Store::tcp(
            &env.master_addr,
            env.master_port,
            is_server,
            options.timeout,
        )
        .map_err(DistError)?;
        // Gloo binds to the address other ranks can reach: loopback for a one-machine run on
        // 127.0.0.1, GLOO_SOCKET_IFNAME when given, else this host's name.
        let loopback = matches!(env.master_addr.as_str(), "127.0.0.1" | "localhost" | "::1");
        let interface = std::env::var("GLOO_SOCKET_IFNAME").unwrap_or_default();
        let hostname = if loopback { "127.0.0.1" } else { "" };
        Self::join(
            store,
            &format!("tricks/{}/", env.restart_count),
            env.rank,
            env.world_size,
            options,
            hostname,
            &interface,
        )
    }

    /// Joins through a FileStore (tests and single-machine tools); Gloo on loopback.
    pub fn with_file_store(
        path: &std::path::Path,
        rank: usize,
        world_size: usize,
        options: &GroupOptions,
    ) -> Result<ProcessGroup, DistError> {
        let store = Store::file(path, world_size).map_err(DistError)?;
        Self::join(store, "tricks/", rank, world_size, options, "127.0.0.1", "")
    }

    fn join(
        store: Store,
        prefix: &str,
        rank: usize,
        world_size: usize,
        options: &GroupOptions,
        hostname: &str,
        interface: &str,
    ) -> Result<ProcessGroup, DistError> {
        let c = |s: &str| CString::new(s).expect("no NUL in names we build");
        let (c_prefix, c_host, c_iface) = (c(prefix), c(hostname), c(interface));
        let mut raw = std::ptr::null_mut();
        // SAFETY: live store, valid strings and out-pointer; the shim catches exceptions.
        ffi::check(unsafe {
            ffi::c10d_group_new(
                store.raw,
                c_prefix.as_ptr(),
                rank as i32,
                world_size as i32,
                options.timeout.as_millis() as i64,
                c_host.as_ptr(),
                c_iface.as_ptr(),
                options.nccl,
                &mut raw,
            )
        })
        .map_err(|e| {
            DistError(format!(
                "rank {rank} of {world_size} could not join the process group at {} within {} s: {e}",
                store.address(),
                options.timeout.as_secs()
            ))
        })?;
        let store = Arc::new(store);
        let heartbeat = Heartbeat::start(store.clone(), prefix, rank, world_size);
        Ok(ProcessGroup {
            raw,
            store,
            rank,
            world_size,
            timeout: options.timeout,
            heartbeat,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reduces `tensors` in place across ranks (each tensor separately). `what` names the
    /// operation in the error ("the gradient all-reduce").
    pub fn all_reduce(
        &self,
        tensors: &[Tensor],
        op: ReduceOp,
        what: &str,
    ) -> Result<(), DistError> {
        let mut handles: Vec<Tensor> = tensors.iter().map(|t| t.shallow_clone()).collect();
        let mut ptrs = ffi::pointers(&mut handles);
        // SAFETY: the pointers live as long as `handles`, past the call.
        let result =
            unsafe { ffi::c10d_allreduce(self.raw, ptrs.as_mut_ptr(), ptrs.len(), op as i32) };
        ffi::check(result).map_err(|e| self.failure(what, &e))
    }

    /// Sums `values` across ranks (a small host vector: counts, sums of metrics).
    pub fn sum_f64(&self, values: &mut [f64], what: &str) -> Result<(), DistError> {
        let t = Tensor::from_slice(values);
        self.all_reduce(std::slice::from_ref(&t), ReduceOp::Sum, what)?;
        t.copy_data(values, values.len());
        Ok(())
    }

    /// Copies rank `root`'s `tensors` into every rank's (in place, coalesced into buckets).
    pub fn broadcast(&self, tensors: &[Tensor], root: usize, what: &str) -> Result<(), DistError> {
        let mut handles: Vec<Tensor> = tensors.iter().map(|t| t.shallow_clone()).collect();
        let mut ptrs = ffi::pointers(&mut handles);
        // SAFETY: as above.
        let result =
            unsafe { ffi::c10d_broadcast(self.raw, ptrs.as_mut_ptr(), ptrs.len(), root as i32) };
        ffi::check(result).map_err(|e| self.failure(what, &e))
    }

    /// Waits until every rank has arrived.
    pub fn barrier(&self, what: &str) -> Result<(), DistError> {
        // SAFETY: live group.
        ffi::check(unsafe { ffi::c10d_barrier(self.raw) }).map_err(|e| self.failure(what, &e))
    }

    /// The sum of `input` over ranks, differentiable: the backward pass sums the gradient
    /// over ranks too (SyncBatchNorm's statistics go through it). Panics (as tch's own ops
    /// do) when a peer is lost; the caller's backward then reports it.
    pub fn all_reduce_differentiable(&self, input: &Tensor) -> Result<Tensor, DistError> {
        let mut input = input.shallow_clone();
        let mut out = std::ptr::null_mut();
        // SAFETY: live group and tensor; on success `out` is a new torch::Tensor we own.
        let result =
            unsafe { ffi::c10d_allreduce_autograd(self.raw, input.as_mut_ptr().cast(), &mut out) };
        ffi::check(result).map_err(|e| self.failure("the SyncBatchNorm all-reduce", &e))?;
        // SAFETY: `out` came from `new torch::Tensor`, which tch takes ownership of.
        Ok(unsafe { Tensor::from_ptr(out.cast()) })
    }

    /// Turns a C++ failure of `what` into a sentence: timed out, or which rank is gone.
    pub fn failure(&self, what: &str, message: &str) -> DistError {
        let timed_out = message.contains("Timed out")
            || message.contains("timed out")
            || message.contains("Timeout");
        let lost = self.heartbeat.lost_ranks(&self.store);
        let cause = match lost {
            Ok(lost) if !lost.is_empty() => format!(
                "lost rank{} {} (the process stopped answering)",
                if lost.len() > 1 { "s" } else { "" },
                lost.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
            ),
            Ok(_) if timed_out => format!(
                "timed out after {} s (every rank is alive: one may be stuck; raise {} if a step legitimately takes longer)",
                self.timeout.as_secs_f64(),
                crate::env::TIMEOUT_VAR
            ),
            Ok(_) => "a peer closed its connection".to_string(),
            Err(_) => format!(
                "lost the rendezvous store at {} (its host, rank 0 or the launcher, is gone)",
                self.store.address()
            ),
        };
        DistError(format!(
            "rank {} of {}: {what} failed: {cause} [c10d: {}]",
            self.rank,
            self.world_size,
            message.lines().next().unwrap_or("")
        ))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.heartbeat.stop();
        // SAFETY: created by the shim, freed once.
        unsafe { ffi::c10d_group_free(self.raw) }
    }
}
