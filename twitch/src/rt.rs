//! Small runtime helpers.

/// Runs a blocking call from sync code that may be inside a Tokio runtime,
/// without starving the runtime's other tasks where Tokio allows it.
pub(crate) fn block_here<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
