//! Per-thread last error message, the C ABI's error channel, and the panic guard for entry points.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<String> = RefCell::new(String::new());
}

/// Records `msg` as this thread's last error.
pub fn set_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

/// This thread's last error message ("" if none).
pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().clone())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("internal panic: {}", s)
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("internal panic: {}", s)
    } else {
        "internal panic".to_string()
    }
}

/// Runs `f`; an `Err` or a panic is recorded and turned into `on_err`.
pub fn guard<T, F: FnOnce() -> Result<T, String>>(on_err: T, f: F) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => {
            set_error(msg);
            on_err
        }
        Err(p) => {
            set_error(panic_message(p));
            on_err
        }
    }
}

/// Status-code flavour of [`guard`]: 0 on success, -1 on error.
pub fn guard_status<F: FnOnce() -> Result<(), String>>(f: F) -> i32 {
    guard(-1, || f().map(|_| 0))
}
