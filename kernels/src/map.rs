//! Model files in memory: the whole file is read once into an anonymous private mapping, so a loaded
//! model does not depend on its file any more. A file mapping would: truncating or rewriting the
//! file in place (what `cp new.gguf model.gguf` does during an update) makes the next access to a
//! mapped page raise SIGBUS and kill the process, or silently mixes old and new weights. The
//! memory is the same (every weight page is resident anyway, since each is read per token), and
//! the pages of tensors repacked for the lookup-table kernels are returned to the system after
//! packing, as before. libc is declared here: the crate has no dependencies.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::sync::Arc;

extern "C" {
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
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
const PROT_WRITE: c_int = 2;
const MAP_PRIVATE: c_int = 2;
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAP_ANONYMOUS: c_int = 0x20;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAP_ANONYMOUS: c_int = 0x1000; // macOS
/// Transparent huge pages for the copy: one fault per 2 MiB instead of per 4 KiB page while the
/// file is read in (most of the load time of a 250 MB file went to page faults). A hint: where
/// the kernel has no THP it is ignored.
const MADV_HUGEPAGE: c_int = 14;
const MADV_DONTNEED: c_int = 4;
const SEEK_SET: c_int = 0;
const SEEK_END: c_int = 2;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

/// A private in-memory copy of a whole file. Shared (`Arc`) by the tensors that borrow it, so the
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

    /// Returns the pages wholly inside `[offset, offset + len)` to the system: they read as zeros
    /// afterwards, until [`MapInner::write`] fills them again. Linux only; elsewhere a no-op (the
    /// bytes then simply stay).
    pub fn release(&self, offset: usize, len: usize) {
        const PAGE: usize = 4096; // a multiple of every page size is fine; 4 KiB is the minimum
        let start = (self.ptr as usize + offset + PAGE - 1) & !(PAGE - 1);
        let end = (self.ptr as usize + offset.saturating_add(len).min(self.len)) & !(PAGE - 1);
        if cfg!(target_os = "linux") && end > start {
            // SAFETY: the range lies inside our own private anonymous mapping.
            unsafe {
                madvise(start as *mut c_void, end - start, MADV_DONTNEED);
            }
        }
    }
}

impl MapInner {
    /// Writes `bytes` at `offset` (restoring released pages).
    ///
    /// # Safety
    /// No other thread may read `[offset, offset + bytes.len())` while this runs, and no slice
    /// of it may be alive: the caller serialises (see `Tensor::data`).
    pub unsafe fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset.checked_add(bytes.len()).map_or(false, |end| end <= self.len));
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (self.ptr as *mut u8).add(offset), bytes.len());
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

/// Reads `path` into a private anonymous mapping. Errors name the path and the OS error.
pub fn map_file(path: &str) -> Result<Map, String> {
    let c = CString::new(path).map_err(|_| format!("cannot map {:?}: path contains a NUL byte", path))?;
    unsafe {
        let fd = open(c.as_ptr(), O_RDONLY | O_CLOEXEC);
        if fd < 0 {
            return Err(format!("cannot open {:?}: {}", path, errno_text()));
        }
        let result = read_all(fd, path);
        close(fd);
        let (ptr, len) = result?;
        Ok(Map(Arc::new(MapInner { ptr, len, path: path.to_string() })))
    }
}

/// The whole of `fd` in fresh anonymous memory (null for an empty file).
unsafe fn read_all(fd: c_int, path: &str) -> Result<(*const u8, usize), String> {
    let end = lseek(fd, 0, SEEK_END);
    if end < 0 || lseek(fd, 0, SEEK_SET) < 0 {
        return Err(format!("cannot size {:?}: {}", path, errno_text()));
    }
    let len = end as usize;
    if len == 0 {
        return Ok((std::ptr::null(), 0));
    }
    let p = mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if p == MAP_FAILED {
        return Err(format!("cannot allocate {} bytes for {:?}: {}", len, path, errno_text()));
    }
    if cfg!(target_os = "linux") {
        madvise(p, len, MADV_HUGEPAGE);
    }
    let mut done = 0usize;
    while done < len {
        let n = read(fd, (p as *mut u8).add(done) as *mut c_void, (len - done).min(1 << 30));
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            munmap(p, len);
            return Err(format!("cannot read {:?}: {}", path, e));
        }
        if n == 0 {
            munmap(p, len);
            return Err(format!("{:?} shrank while being read ({} of {} bytes)", path, done, len));
        }
        done += n as usize;
    }
    Ok((p as *const u8, len))
}
