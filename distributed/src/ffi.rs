//! The shim's C functions (csrc/shim.cpp). Each returning `*mut c_char` gives NULL on success
//! or a message to free with `c10d_free_string`.

use std::ffi::{c_char, c_int};
use tch::Tensor;

/// `torch::Tensor*`, as tch's `as_mut_ptr` gives it.
pub type TensorPtr = *mut std::ffi::c_void;

#[repr(C)]
pub struct Store {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Group {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Reducer {
    _private: [u8; 0],
}

extern "C" {
    pub fn c10d_free_string(s: *mut c_char);
    pub fn c10d_tcp_store_new(
        host: *const c_char,
        port: c_int,
        is_server: bool,
        world_size: c_int,
        timeout_ms: i64,
        out: *mut *mut Store,
    ) -> *mut c_char;
    pub fn c10d_file_store_new(
        path: *const c_char,
        world_size: c_int,
        out: *mut *mut Store,
    ) -> *mut c_char;
    pub fn c10d_store_port(store: *mut Store) -> c_int;
    pub fn c10d_store_free(store: *mut Store);
    pub fn c10d_store_add(
        store: *mut Store,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
    ) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    pub fn c10d_group_new(
        store: *mut Store,
        prefix: *const c_char,
        rank: c_int,
        world_size: c_int,
        timeout_ms: i64,
        gloo_hostname: *const c_char,
        gloo_interface: *const c_char,
        with_nccl: bool,
        out: *mut *mut Group,
    ) -> *mut c_char;
    pub fn c10d_group_free(group: *mut Group);
    pub fn c10d_allreduce(
        group: *mut Group,
        tensors: *mut TensorPtr,
        n: usize,
        op: c_int,
    ) -> *mut c_char;
    pub fn c10d_broadcast(
        group: *mut Group,
        tensors: *mut TensorPtr,
        n: usize,
        root: c_int,
    ) -> *mut c_char;
    pub fn c10d_barrier(group: *mut Group) -> *mut c_char;
    pub fn c10d_allreduce_autograd(
        group: *mut Group,
        input: TensorPtr,
        out: *mut TensorPtr,
    ) -> *mut c_char;
    pub fn c10d_reducer_new(
        group: *mut Group,
        params: *mut TensorPtr,
        n: usize,
        bucket_bytes: i64,
        first_bucket_bytes: i64,
        out: *mut *mut Reducer,
    ) -> *mut c_char;
    pub fn c10d_reducer_prepare(reducer: *mut Reducer) -> *mut c_char;
    pub fn c10d_reducer_free(reducer: *mut Reducer);
}

/// Turns a shim result into `Err(message)`, freeing the message.
pub fn check(result: *mut c_char) -> Result<(), String> {
    if result.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim, ours to free.
    let message = unsafe { std::ffi::CStr::from_ptr(result) }
        .to_string_lossy()
        .trim()
        .to_string();
    unsafe { c10d_free_string(result) };
    Err(message)
}

/// Raw pointers to tensors, for a call that reads them while `tensors` lives.
pub fn pointers(tensors: &mut [Tensor]) -> Vec<TensorPtr> {
    tensors.iter_mut().map(|t| t.as_mut_ptr().cast()).collect()
}
