//! Read-only memory mapping of model files (libc `mmap` declared here: the crate has no dependencies).

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::sync::Arc;

extern "C" {
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: c_long) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    fn lseek(fd: c_int, off: c_long, whence: c_int) -> c_long;
}

const O_RDONLY: c_int = 0;
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_CLOEXEC: c_int = 0o2000000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_CLOEXEC: c_int = 0x0100_0000; // macOS
const PROT_READ: c_int = 1;
const MAP_PRIVATE: c_int = 2;
const MADV_WILLNEED: c_int = 3;
const MADV_DONTNEED: c_int = 4;
const SEEK_END: c_int = 2;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

/// A read-only private mapping of a whole file. Shared (`Arc`) by the tensors that borrow it, so the
/// memory stays mapped until the last of them is gone.
pub struct MapInner {
    ptr: *const u8,
    len: usize,
    path: String,
}

unsafe impl Send for MapInner {}
unsafe impl Sync for MapInner {}

impl MapInner {
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            &[]
        } else {
            // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Drops the resident pages wholly inside `[offset, offset + len)` (a hint: the mapping stays
    /// valid and re-reads the file on the next access). Linux only; elsewhere a no-op.
    pub fn release(&self, offset: usize, len: usize) {
        const PAGE: usize = 4096; // a multiple of every page size is fine; 4 KiB is the minimum
        let start = (self.ptr as usize + offset + PAGE - 1) & !(PAGE - 1);
        let end = (self.ptr as usize + offset.saturating_add(len).min(self.len)) & !(PAGE - 1);
        if cfg!(target_os = "linux") && end > start {
            // SAFETY: the range lies inside our own read-only private mapping.
            unsafe {
                madvise(start as *mut c_void, end - start, MADV_DONTNEED);
            }
        }
    }
}

impl Drop for MapInner {
    fn drop(&mut self) {
        if self.len > 0 {
            unsafe {
                munmap(self.ptr as *mut c_void, self.len);
            }
        }
    }
}

/// The handle behind `bk_map_open`.
pub struct Map(pub Arc<MapInner>);

fn errno_text() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Maps `path` read-only. Errors name the path and the OS error.
pub fn map_file(path: &str) -> Result<Map, String> {
    let c = CString::new(path).map_err(|_| format!("cannot map {:?}: path contains a NUL byte", path))?;
    unsafe {
        let fd = open(c.as_ptr(), O_RDONLY | O_CLOEXEC);
        if fd < 0 {
            return Err(format!("cannot open {:?}: {}", path, errno_text()));
        }
        let end = lseek(fd, 0, SEEK_END);
        if end < 0 {
            let e = errno_text();
            close(fd);
            return Err(format!("cannot size {:?}: {}", path, e));
        }
        let len = end as usize;
        let ptr = if len == 0 {
            std::ptr::null()
        } else {
            let p = mmap(std::ptr::null_mut(), len, PROT_READ, MAP_PRIVATE, fd, 0);
            if p == MAP_FAILED {
                let e = errno_text();
                close(fd);
                return Err(format!("cannot mmap {:?} ({} bytes): {}", path, len, e));
            }
            madvise(p, len, MADV_WILLNEED);
            p as *const u8
        };
        close(fd);
        Ok(Map(Arc::new(MapInner { ptr, len, path: path.to_string() })))
    }
}
