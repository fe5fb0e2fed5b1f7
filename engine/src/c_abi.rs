//! The Rust side of build-support/c_abi.h, shared by the C++ shims in csrc/: a call returns
//! NULL on success or a heap string holding the C++ exception's message.

use std::ffi::{c_char, CStr};

extern "C" {
    fn tricks_free_message(message: *mut c_char);
}

/// `Ok` for a null result, else the shim's message (freed here).
pub(crate) fn take_message(result: *mut c_char) -> Result<(), String> {
    if result.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim, ours to free.
    let message = unsafe { CStr::from_ptr(result) }
        .to_string_lossy()
        .trim()
        .to_string();
    unsafe { tricks_free_message(result) };
    Err(message)
}
