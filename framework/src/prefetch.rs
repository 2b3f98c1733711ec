//! Software prefetching for the fan-out: with a thousand subscribers, each delivery stores
//! into memory that no core has touched since the last message (the subscriber's outbox and
//! the next slot of its queue), and each delivery's first locked instruction waited for the
//! previous one's stores to reach those cold lines (a third of a fan-out's time, in `perf`).
//! Asking for the lines a few deliveries ahead lets those misses overlap.

/// Asks for the cache line holding `address`, to be written soon. A hint only: it never
/// faults (any address will do, even a dangling or null one) and changes no state the
/// program can see.
#[inline(always)]
pub(crate) fn for_write<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        // SAFETY: SSE is part of x86_64's baseline, and a prefetch neither reads nor writes
        // memory (it cannot fault, whatever the address). PREFETCHW where the CPU has it;
        // older CPUs treat the instruction as a no-op.
        unsafe { _mm_prefetch::<_MM_HINT_ET0>(address.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
