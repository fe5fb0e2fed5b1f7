//! c10d's key-value stores: the TCPStore torchrun's ranks meet at, or a FileStore (tests).

use crate::ffi;
use std::ffi::CString;
use std::path::Path;
use std::time::Duration;

/// A handle on a c10d store (thread-safe on the C++ side).
pub struct Store {
    pub(crate) raw: *mut ffi::Store,
    /// For messages: `tcp://host:port` or the file's path.
    pub(crate) address: String,
}

// SAFETY: c10d's TCPStore and FileStore serialise their operations internally.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

impl Store {
    /// Connects to (or, with `is_server`, hosts) the TCPStore at `host:port`; port 0 with
    /// `is_server` picks a free port ([`Store::port`]).
    pub fn tcp(host: &str, port: u16, is_server: bool, timeout: Duration) -> Result<Store, String> {
        let c_host = CString::new(host).map_err(|_| format!("bad host name {host:?}"))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointer; the shim catches every exception.
        ffi::check(unsafe {
            ffi::c10d_tcp_store_new(
                c_host.as_ptr(),
                port as i32,
                is_server,
                -1,
                timeout.as_millis() as i64,
                &mut raw,
            )
        })
        .map_err(|e| {
            if is_server {
                format!("could not host the rendezvous store on {host}:{port}: {e}")
            } else {
                format!(
                    "could not reach the rendezvous store at {host}:{port} within {} s: {e}",
                    timeout.as_secs()
                )
            }
        })?;
        let mut store = Store {
            raw,
            address: String::new(),
        };
        store.address = format!("tcp://{host}:{}", store.port().unwrap_or(port));
        Ok(store)
    }

    /// A FileStore at `path` shared by `world_size` processes (the file must not be left
    /// over from an earlier group).
    pub fn file(path: &Path, world_size: usize) -> Result<Store, String> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{}: bad file name", path.display()))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: as above.
        ffi::check(unsafe {
            ffi::c10d_file_store_new(c_path.as_ptr(), world_size as i32, &mut raw)
        })
        .map_err(|e| format!("{}: could not open the file store: {e}", path.display()))?;
        Ok(Store {
            raw,
            address: path.display().to_string(),
        })
    }

    /// The TCP port of a TCPStore.
    pub fn port(&self) -> Option<u16> {
        // SAFETY: `raw` is live.
        let port = unsafe { ffi::c10d_store_port(self.raw) };
        u16::try_from(port).ok()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Adds `delta` to the counter `key`; returns its new value (`delta` 0 reads it).
    pub fn add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let c_key = CString::new(key).map_err(|_| format!("bad store key {key:?}"))?;
        let mut value = 0;
        // SAFETY: as above.
        ffi::check(unsafe { ffi::c10d_store_add(self.raw, c_key.as_ptr(), delta, &mut value) })?;
        Ok(value)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by the shim, freed once.
        unsafe { ffi::c10d_store_free(self.raw) }
    }
}
