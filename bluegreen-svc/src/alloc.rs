//! Process-wide allocator tuning, applied once at start-up, before any thread exists.
//!
//! glibc gives every thread that allocates under contention an arena of its own (up to
//! 8 × cores). The controller's tokio workers each touch many deployments, so freed memory
//! ends up spread over arenas and is rarely returned: at 10,000 concurrent deployments two
//! arenas cut peak RSS from ~530 MiB to ~430 MiB at no measurable CPU cost (BENCHMARKS.md,
//! "bluegreen-svc: service"). An operator's own `MALLOC_ARENA_MAX` wins.

/// Arenas when the environment does not say.
pub const MALLOC_ARENAS_DEFAULT: i32 = 2;

/// Limit glibc's malloc arenas to [`MALLOC_ARENAS_DEFAULT`] unless `MALLOC_ARENA_MAX` is
/// set (glibc reads that itself). Does nothing on other C libraries. Call it first thing in
/// `main`, before a runtime starts threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no memory is touched. It is
        // called before any other thread exists, so no allocation races with it.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_DEFAULT) };
        debug_assert_eq!(ok, 1, "mallopt(M_ARENA_MAX) refused");
    }
}
