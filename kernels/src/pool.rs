//! Persistent thread pool: workers are spawned once (`set_threads`), then each parallel call wakes
//! them (spin briefly, then sleep on a condvar). The work is cut into contiguous chunks (about
//! eight per thread) that threads, the caller included, claim from an atomic counter. Results never
//! depend on the thread count or on which thread ran a chunk, because each output is computed
//! entirely by one thread with the same kernel. Claiming (rather than one fixed chunk per thread)
//! matters on small, shared machines: a descheduled worker no longer stalls the whole call; the
//! caller finishes the chunks itself and never waits for a worker that has not started.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long idle workers spin before sleeping: covers the gaps between the matvecs of one token.
const SPIN: Duration = Duration::from_micros(2000);

type Task<'a> = &'a (dyn Fn(usize) + Sync);

/// `Shared::state`: this bit set = job closed; the rest counts workers inside the job.
const CLOSED: usize = 1 << (usize::BITS - 1);

struct Shared {
    generation: AtomicUsize,
    state: AtomicUsize,
    panicked: AtomicBool,
    quit: AtomicBool,
    /// The current task; written by the caller before bumping `generation`, read by workers after.
    task: UnsafeCell<Option<Task<'static>>>,
    lock: Mutex<()>,
    wake: Condvar,
}

unsafe impl Sync for Shared {}

struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(n_threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            state: AtomicUsize::new(CLOSED),
            panicked: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            task: UnsafeCell::new(None),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..n_threads)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("bk-worker-{}", i))
                    .spawn(move || worker(s, i))
                    .expect("cannot spawn kernel worker thread")
            })
            .collect();
        Pool { shared, workers }
    }

    fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    fn stop(self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.wake.notify_all();
        for w in self.workers {
            let _ = w.join();
        }
    }

    /// Runs `f(i)` on the calling thread (i = 0) and on every worker that joins before the caller is
    /// done (i = worker index); returns once no worker is inside `f`. `f` must itself share out the
    /// work (workers may join late or not at all).
    fn run(&self, f: &(dyn Fn(usize) + Sync)) -> Result<(), String> {
        let s = &*self.shared;
        // SAFETY: workers only dereference the task while counted in `state` with the job open;
        // we close the job and wait for the count to reach zero before `f` goes out of scope.
        unsafe {
            *s.task.get() = Some(std::mem::transmute::<Task<'_>, Task<'static>>(f));
        }
        s.panicked.store(false, Ordering::Relaxed);
        s.state.fetch_and(!CLOSED, Ordering::SeqCst); // open (keeps counts of stale late-comers)
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.generation.fetch_add(1, Ordering::SeqCst);
        }
        s.wake.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        s.state.fetch_or(CLOSED, Ordering::SeqCst);
        let mut spins = 0u32;
        while s.state.load(Ordering::Acquire) & !CLOSED != 0 {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        unsafe {
            *s.task.get() = None;
        }
        if mine.is_err() || s.panicked.load(Ordering::Relaxed) {
            return Err("internal panic in a kernel task".to_string());
        }
        Ok(())
    }
}

fn worker(s: Arc<Shared>, index: usize) {
    let mut seen = 0; // a fresh pool starts at generation 0 (the first job may be posted before we run)
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins += 1;
            if spins % 64 != 0 || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let g_lock = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            if s.generation.load(Ordering::Acquire) == seen {
                let _unused = s.wake.wait(g_lock).unwrap_or_else(|e| e.into_inner());
            }
        }
        if s.quit.load(Ordering::SeqCst) {
            return;
        }
        // Enter the job only while it is open; a late worker finds it closed and leaves it alone.
        let prev = s.state.fetch_add(1, Ordering::AcqRel);
        if prev & CLOSED == 0 {
            // SAFETY: see `Pool::run`.
            let task = unsafe { *s.task.get() };
            if let Some(f) = task {
                if catch_unwind(AssertUnwindSafe(|| f(index))).is_err() {
                    s.panicked.store(true, Ordering::Relaxed);
                }
            }
        }
        s.state.fetch_sub(1, Ordering::AcqRel);
    }
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn cpu_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// (Re)starts the pool with `n` threads including the caller (0 = number of CPUs); returns the count.
pub fn set_threads(n: usize) -> usize {
    let n = if n == 0 { cpu_count() } else { n.min(256) };
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = g.take() {
        p.stop();
    }
    *g = Some(Pool::start(n));
    n
}

/// Threads in use (starting the default pool, one per CPU, if none was set).
pub fn threads() -> usize {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(|| Pool::start(cpu_count())).n_threads()
}

/// Calls `f(range)` on contiguous chunks covering `0..n_items` (each item exactly once), in parallel
/// on the pool. Small jobs
/// (`n_items < min_parallel`) run on the calling thread. One caller at a time (serialised).
pub fn parallel_for(n_items: usize, min_parallel: usize, f: &(dyn Fn(Range<usize>) + Sync)) -> Result<(), String> {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = g.get_or_insert_with(|| Pool::start(cpu_count()));
    let parts = pool.n_threads();
    if parts == 1 || n_items < min_parallel {
        f(0..n_items);
        return Ok(());
    }
    let grain = ((n_items + 8 * parts - 1) / (8 * parts)).max(1);
    let next = AtomicUsize::new(0);
    pool.run(&|_| loop {
        let start = next.fetch_add(grain, Ordering::Relaxed);
        if start >= n_items {
            break;
        }
        f(start..(start + grain).min(n_items));
    })
}
