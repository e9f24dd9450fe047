//! io_uring runtime and log store.
