//! Small runtime helpers: where a blocking call may run.
//!
//! Sync code (a `Drop`, the seed's synchronous `flush`) may run inside a
//! Tokio runtime. On a multi-thread runtime's thread it blocks inside
//! [`tokio::task::block_in_place`], which moves the runtime's other tasks to
//! another thread. A current-thread runtime has no other thread: blocking
//! there stalls every task of the runtime, so work whose result nobody waits
//! for goes to its blocking pool instead ([`block_or_detach`]).

use std::cell::Cell;

use tokio::runtime::{Handle, RuntimeFlavor};

thread_local! {
    /// Set while a closure of [`spawn_blocking`] runs: this thread may block
    /// although a runtime is current.
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// What blocking the calling thread would hold up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Here {
    /// Nothing: no runtime is current, or this is a blocking thread of
    /// twitch's own.
    Free,
    /// A multi-thread runtime: block inside `block_in_place`.
    MultiThread,
    /// A current-thread runtime (or another flavor): every task of it.
    CurrentThread,
}

/// What blocking the calling thread would hold up.
pub(crate) fn here() -> Here {
    if MAY_BLOCK.with(Cell::get) {
        return Here::Free;
    }
    match Handle::try_current() {
        Err(_) => Here::Free,
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => Here::MultiThread,
        Ok(_) => Here::CurrentThread,
    }
}

/// Runs a blocking call from sync code that may be inside a Tokio runtime,
/// and returns its result: on a multi-thread runtime inside
/// `block_in_place`, elsewhere inline. On a current-thread runtime that
/// blocks the runtime's only thread until `f` returns: use it there only for
/// calls whose caller needs the result and whose completion does not need
/// the runtime (delivery reports come in on librdkafka's own thread).
pub(crate) fn block_here<R>(f: impl FnOnce() -> R) -> R {
    match here() {
        Here::MultiThread => tokio::task::block_in_place(f),
        Here::Free | Here::CurrentThread => f(),
    }
}

/// Runs blocking work whose result nobody waits for, such as closing a
/// client on drop: inline outside any runtime, inside `block_in_place` on a
/// multi-thread runtime, and on the runtime's blocking pool from a
/// current-thread runtime, so that its other tasks go on. A runtime waits for
/// its blocking pool when it shuts down (unless shut down in the background
/// or with a timeout), so the work is not cut short by the end of `main`.
pub(crate) fn block_or_detach(f: impl FnOnce() + Send + 'static) {
    match here() {
        Here::Free => f(),
        Here::MultiThread => tokio::task::block_in_place(f),
        Here::CurrentThread => detach(f),
    }
}

/// Runs `f` on the current runtime's blocking pool, without waiting for it.
/// Call only inside a runtime.
pub(crate) fn detach(f: impl FnOnce() + Send + 'static) {
    drop(spawn_blocking(f));
}

/// [`tokio::task::spawn_blocking`], marking the thread while `f` runs so
/// that twitch's drops inside it block in place rather than being handed to
/// yet another thread (which would return before the work is done).
pub(crate) fn spawn_blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> tokio::task::JoinHandle<R> {
    tokio::task::spawn_blocking(move || {
        let _mark = Mark(MAY_BLOCK.with(|m| m.replace(true)));
        f()
    })
}

/// Puts [`MAY_BLOCK`] back as it was, even if the closure panicked (the
/// blocking pool reuses its threads).
struct Mark(bool);

impl Drop for Mark {
    fn drop(&mut self) {
        MAY_BLOCK.with(|m| m.set(self.0));
    }
}
