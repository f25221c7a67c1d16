//! Giving freed memory back to the system after a burst of sessions ends.
//!
//! glibc's allocator keeps what a burst freed (its arenas stay at their
//! high-water mark), so after 500 sessions close webterm would stay many
//! megabytes above where it started until it exits. Once sessions have
//! stopped ending for a moment, `malloc_trim` returns the free pages. musl
//! (the static build the image ships) unmaps freed memory by itself, so
//! there this is nothing.

use std::time::Duration;

use futures_lite::FutureExt as _;

use crate::session::Registry;

/// How long no session may end before the heap is trimmed: long enough that
/// a burst of teardowns is trimmed once, at its end, not once per session.
const QUIET: Duration = Duration::from_millis(250);

/// Trims the heap after every burst of session ends, for as long as the
/// server runs.
pub async fn trim_after_bursts(registry: &Registry) {
    if !TRIMS {
        return std::future::pending().await;
    }
    let mut seen = registry.freed_count();
    loop {
        registry.freed_since(seen).await;
        // Then wait until a quiet period passes with no further end.
        loop {
            let now = registry.freed_count();
            let more = async {
                registry.freed_since(now).await;
                true
            }
            .or(async {
                futures_timer::Delay::new(QUIET).await;
                false
            })
            .await;
            if !more {
                break;
            }
        }
        seen = registry.freed_count();
        async_std::task::spawn_blocking(trim).await;
    }
}

const TRIMS: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    // Safety: malloc_trim takes no pointers and may be called from any
    // thread at any time; it only locks and scans glibc's own arenas.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
