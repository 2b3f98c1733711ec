//! A double-ended ring buffer for the outbox's queue and the session's write batch.
//!
//! `std::collections::VecDeque` does the same job, but its `push_back` is not inlined into the
//! fan-out (the call, and the entry built on the stack and then copied into the buffer, cost
//! about 35 instructions of a delivery's 180): [`Ring::push_back_with`] checks for room and
//! writes the entry straight into its slot. Only what the outbox needs is here: pushes at the
//! back, takes from the front, and whole-buffer swaps.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A ring buffer of `T` with an exact capacity (what [`reserve_exact`](Ring::reserve_exact)
/// and [`shrink_to`](Ring::shrink_to) ask for, as with `VecDeque`).
pub(crate) struct Ring<T> {
    /// `cap` slots (dangling when `cap` is 0).
    buf: NonNull<T>,
    cap: usize,
    /// The slot of the first entry (less than `cap`, or 0).
    head: usize,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a `Ring<T>` owns its entries, as a `Vec<T>` does.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: shared access only reads entries.
unsafe impl<T: Sync> Sync for Ring<T> {}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring::new()
    }
}

impl<T> Ring<T> {
    /// An empty ring, with no buffer.
    pub(crate) const fn new() -> Self {
        const { assert!(size_of::<T>() > 0, "a ring of zero-sized entries") };
        Ring { buf: NonNull::dangling(), cap: 0, head: 0, len: 0, _owns: PhantomData }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// The slot of the `i`-th entry (`i <= len`, `cap > 0`): where it is or would go.
    #[inline(always)]
    fn slot(&self, i: usize) -> *mut T {
        let at = self.head + i;
        let at = if at >= self.cap { at - self.cap } else { at };
        // SAFETY: `at < cap` (head < cap and i <= len <= cap), within the buffer.
        unsafe { self.buf.as_ptr().add(at) }
    }

    /// Appends the entry `make` makes, written straight into its slot.
    #[inline(always)]
    pub(crate) fn push_back_with(&mut self, make: impl FnOnce() -> T) {
        if self.len == self.cap {
            self.grow(self.len + 1);
        }
        let slot = self.slot(self.len);
        // SAFETY: `len < cap` after the growth above: the slot is in the buffer and holds no
        // entry. `len` is counted after the write, so a panicking `make` leaves nothing
        // half-made behind.
        unsafe { write_in_words(slot, make()) };
        self.len += 1;
    }

    /// Appends `value`.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T) {
        self.push_back_with(|| value);
    }

    /// Where the next push will put its entry, if it needs no growth (a hint to prefetch:
    /// never read or written through).
    pub(crate) fn next_slot(&self) -> *mut T {
        match self.len < self.cap {
            true => self.slot(self.len),
            false => self.buf.as_ptr(),
        }
    }

    /// Takes the first entry out.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        // SAFETY: the ring holds an entry at `head`; it is forgotten by the ring below.
        let value = unsafe { self.buf.as_ptr().add(self.head).read() };
        self.head += 1;
        if self.head == self.cap {
            self.head = 0;
        }
        self.len -= 1;
        Some(value)
    }

    /// The last entry.
    #[cfg(test)]
    pub(crate) fn back(&self) -> Option<&T> {
        // SAFETY: `len - 1 < len`: an entry of the ring, borrowed with it.
        (self.len > 0).then(|| unsafe { &*self.slot(self.len - 1) })
    }

    /// How many entries run from `head` to the end of the buffer (the rest wrap to its start).
    fn front_len(&self) -> usize {
        self.len.min(self.cap - self.head.min(self.cap))
    }

    /// The entries in order, as the two runs of the buffer they fill.
    pub(crate) fn as_slices(&self) -> (&[T], &[T]) {
        let first = self.front_len();
        // SAFETY: entries `head..head + first` and `0..len - first` are initialised, and do
        // not overlap (`len <= cap`).
        unsafe {
            let base = self.buf.as_ptr();
            (
                std::slice::from_raw_parts(base.add(self.head), first),
                std::slice::from_raw_parts(base, self.len - first),
            )
        }
    }

    /// The entries, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + Clone {
        let (a, b) = self.as_slices();
        a.iter().chain(b)
    }

    /// Takes every entry out, in order; what the iterator does not yield is dropped with it.
    pub(crate) fn drain(&mut self) -> Drain<'_, T> {
        Drain { ring: self }
    }

    /// Moves the first `n` entries (at most all of them) to the back of `other`, in order.
    pub(crate) fn move_front_to(&mut self, n: usize, other: &mut Ring<T>) {
        let n = n.min(self.len);
        other.reserve_exact(n);
        for _ in 0..n {
            if let Some(value) = self.pop_front() {
                other.push_back(value);
            }
        }
    }

    /// Removes and returns the `i`-th entry, moving the later ones forward.
    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: entry `i` is initialised; entries `i + 1..len` are moved one slot forward
        // (each slot is read before it is overwritten), and the ring then counts one fewer.
        unsafe {
            let value = self.slot(i).read();
            for j in i..self.len - 1 {
                self.slot(j).write(self.slot(j + 1).read());
            }
            self.len -= 1;
            Some(value)
        }
    }

    /// The two runs of entries (see [`as_slices`](Ring::as_slices)) as raw slices, for
    /// dropping them in place.
    fn as_raw_slices(&mut self) -> (*mut [T], *mut [T]) {
        let first = self.front_len();
        let base = self.buf.as_ptr();
        // SAFETY: `head + first <= cap`: the pointer stays within (or one past) the buffer.
        let front = unsafe { base.add(self.head) };
        (
            std::ptr::slice_from_raw_parts_mut(front, first),
            std::ptr::slice_from_raw_parts_mut(base, self.len - first),
        )
    }

    /// Drops every entry, keeping the buffer.
    pub(crate) fn clear(&mut self) {
        let (a, b) = self.as_raw_slices();
        // Forgotten first: a panicking drop leaves an empty ring (and leaks), never a double
        // drop.
        (self.head, self.len) = (0, 0);
        // SAFETY: the entries were initialised and the ring no longer counts them; the raw
        // slices come from the buffer's own pointer, not from a shared borrow.
        unsafe {
            std::ptr::drop_in_place(a);
            std::ptr::drop_in_place(b);
        }
    }

    /// Makes room for at least `additional` more entries, no more than that.
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        let needed = self.len.checked_add(additional).expect("ring capacity overflow");
        if needed > self.cap {
            self.reallocate(needed);
        }
    }

    /// Gives capacity back, down to `min_capacity` or the entries held, whichever is more.
    pub(crate) fn shrink_to(&mut self, min_capacity: usize) {
        let target = min_capacity.max(self.len);
        if target < self.cap {
            self.reallocate(target);
        }
    }

    /// A full ring's growth: double, at least four and at least `needed`. Out of line, so
    /// that a push stays small.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) {
        let cap = self.cap.saturating_mul(2).max(4).max(needed);
        self.reallocate(cap);
    }

    /// Moves the entries, in order, into a new buffer of `cap` slots (`cap >= len`).
    fn reallocate(&mut self, cap: usize) {
        debug_assert!(cap >= self.len);
        let buf = match cap {
            0 => NonNull::dangling(),
            _ => {
                let layout = Layout::array::<T>(cap).expect("ring capacity overflow");
                // SAFETY: `layout` has a non-zero size (`T` is not zero-sized, `cap > 0`).
                let raw = unsafe { alloc(layout) }.cast::<T>();
                NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
            }
        };
        let (a, b) = self.as_slices();
        // SAFETY: the new buffer has room for `len` entries; the entries are moved (copied
        // bitwise, the old buffer then freed without dropping them).
        unsafe {
            std::ptr::copy_nonoverlapping(a.as_ptr(), buf.as_ptr(), a.len());
            std::ptr::copy_nonoverlapping(b.as_ptr(), buf.as_ptr().add(a.len()), b.len());
        }
        self.free_buffer();
        (self.buf, self.cap, self.head) = (buf, cap, 0);
    }

    /// Frees the buffer, not the entries in it.
    fn free_buffer(&mut self) {
        if self.cap > 0 {
            // SAFETY: allocated in `reallocate` with this layout (which was valid then).
            unsafe {
                let layout = Layout::array::<T>(self.cap).unwrap_unchecked();
                dealloc(self.buf.as_ptr().cast(), layout);
            }
        }
        (self.buf, self.cap, self.head) = (NonNull::dangling(), 0, 0);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        self.clear();
        self.free_buffer();
    }
}

impl<T> FromIterator<T> for Ring<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut ring = Ring::new();
        ring.reserve_exact(iter.size_hint().0);
        for value in iter {
            ring.push_back(value);
        }
        ring
    }
}

/// [`Ring::drain`]'s iterator.
pub(crate) struct Drain<'a, T> {
    ring: &'a mut Ring<T>,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.ring.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.ring.len, Some(self.ring.len))
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        self.ring.clear();
    }
}

/// Writes `value` into `slot` a word at a time, each word read from where `value` was made.
///
/// A value returned from a call (a `Bytes` clone, for one) is stored by the callee a word at a
/// time, and the compiler's own copy reads it sixteen bytes at a time: a load the processor
/// cannot serve from one pending store waits until the stores reach the cache (a failed
/// store-to-load forward, some fifteen cycles). A fan-out makes and queues one entry per
/// delivery, and those waits were 40 % of `publish_with`'s own time under a CPU cap (`perf
/// annotate`); the volatile reads keep the copy in words, each served from its store. Types
/// whose size or alignment is not a word's are written as usual.
#[inline(always)]
unsafe fn write_in_words<T>(slot: *mut T, value: T) {
    use std::mem::{MaybeUninit, align_of, size_of};
    const WORD: usize = size_of::<u64>();
    if size_of::<T>() % WORD != 0 || align_of::<T>() < WORD {
        // SAFETY: the caller's.
        unsafe { slot.write(value) };
        return;
    }
    let value = std::mem::ManuallyDrop::new(value);
    let from = (&raw const *value).cast::<MaybeUninit<u64>>();
    let to = slot.cast::<MaybeUninit<u64>>();
    for i in 0..size_of::<T>() / WORD {
        // SAFETY: both are `size_of::<T>()` bytes, word-aligned (checked above), and do not
        // overlap (`value` is a local); a word may hold padding, hence `MaybeUninit`. `value`
        // is not dropped: its bytes now are the slot's, which the caller's `slot` must take
        // (as `ptr::write` would).
        unsafe { to.add(i).write(from.add(i).read_volatile()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn contents(ring: &Ring<u32>) -> Vec<u32> {
        ring.iter().copied().collect()
    }

    #[test]
    fn entries_come_out_in_order_across_the_wrap() {
        let mut ring = Ring::new();
        ring.reserve_exact(4);
        assert_eq!(ring.capacity(), 4);
        for i in 0..3 {
            ring.push_back(i);
        }
        assert_eq!(ring.pop_front(), Some(0));
        assert_eq!(ring.pop_front(), Some(1));
        // 2 sits at slot 2; 3 and 4 wrap around to slots 3 and 0.
        ring.push_back(3);
        ring.push_back(4);
        assert_eq!(ring.capacity(), 4, "no growth while there is room");
        assert_eq!(contents(&ring), [2, 3, 4]);
        let (a, b) = ring.as_slices();
        assert_eq!((a, b), (&[2, 3][..], &[4][..]));
        assert_eq!(ring.back(), Some(&4));
        // Growing a wrapped ring keeps the order.
        for i in 5..12 {
            ring.push_back(i);
        }
        assert_eq!(contents(&ring), (2..12).collect::<Vec<_>>());
        assert_eq!(ring.drain().collect::<Vec<_>>(), (2..12).collect::<Vec<_>>());
        assert!(ring.is_empty());
        assert_eq!(ring.pop_front(), None);
    }

    #[test]
    fn entries_written_a_word_at_a_time_come_out_whole_and_are_dropped_once() {
        // Word-sized with padding (the byte after `flag`), a heap pointer and a reference
        // count: moved in words, every field arrives and the count is neither lost nor doubled.
        #[derive(Debug, Clone, PartialEq)]
        struct Entry {
            count: Rc<()>,
            text: String,
            flag: bool,
        }
        assert_eq!(std::mem::size_of::<Entry>() % 8, 0);
        let count = Rc::new(());
        let mut ring = Ring::new();
        for i in 0..20 {
            let entry =
                Entry { count: count.clone(), text: format!("entry {i}"), flag: i % 3 == 0 };
            ring.push_back_with(|| entry);
        }
        assert_eq!(Rc::strong_count(&count), 21);
        for i in 0..10 {
            let entry = ring.pop_front().expect("an entry");
            assert_eq!(
                (entry.text.as_str(), entry.flag),
                (format!("entry {i}").as_str(), i % 3 == 0)
            );
        }
        assert_eq!(Rc::strong_count(&count), 11, "popped entries dropped once each");
        // Bytes made by a call (the case the word-wise write is for) keep their contents.
        let mut frames = Ring::new();
        let shared = bytes::Bytes::from(vec![7u8; 100]);
        for _ in 0..5 {
            frames.push_back_with(|| (shared.clone(), true));
        }
        assert!(frames.iter().all(|(frame, flag)| *frame == shared && *flag));
        drop(ring);
        assert_eq!(Rc::strong_count(&count), 1, "the rest dropped with the ring");
    }

    #[test]
    fn capacity_is_exact_and_given_back() {
        let mut ring: Ring<u32> = Ring::new();
        assert_eq!(ring.capacity(), 0);
        ring.reserve_exact(7);
        assert_eq!(ring.capacity(), 7);
        for i in 0..7 {
            ring.push_back(i);
        }
        ring.push_back(7);
        assert_eq!(ring.capacity(), 14, "a full ring doubles");
        ring.shrink_to(2);
        assert_eq!(ring.capacity(), 8, "not below what it holds");
        assert_eq!(contents(&ring), (0..8).collect::<Vec<_>>());
        ring.clear();
        assert_eq!(ring.capacity(), 8, "clear keeps the buffer");
        ring.shrink_to(0);
        assert_eq!(ring.capacity(), 0);
        ring.push_back(1);
        assert_eq!(ring.capacity(), 4, "growth from nothing starts at four");
    }

    #[test]
    fn moving_and_removing_keep_the_order() {
        let mut ring: Ring<u32> = (0..6).collect();
        let mut other: Ring<u32> = Ring::new();
        other.push_back(100);
        ring.move_front_to(4, &mut other);
        assert_eq!(contents(&other), [100, 0, 1, 2, 3]);
        assert_eq!(contents(&ring), [4, 5]);
        ring.move_front_to(10, &mut other);
        assert!(ring.is_empty());
        assert_eq!(other.remove(2), Some(1));
        assert_eq!(other.remove(9), None);
        assert_eq!(contents(&other), [100, 0, 2, 3, 4, 5]);
        // Across the wrap: two entries out at the front, two in at the back, the second of
        // them in the buffer's first slot.
        other.pop_front();
        other.pop_front();
        other.push_back(6);
        other.push_back(7);
        assert_eq!(other.as_slices().1, [7]);
        assert_eq!(other.remove(3), Some(5));
        assert_eq!(contents(&other), [2, 3, 4, 6, 7]);
    }

    #[test]
    fn every_entry_is_dropped_once() {
        let counter = Rc::new(());
        let mut ring = Ring::new();
        for _ in 0..5 {
            ring.push_back(counter.clone());
        }
        ring.pop_front();
        ring.pop_front();
        for _ in 0..6 {
            ring.push_back(counter.clone()); // wraps, then grows
        }
        assert_eq!(Rc::strong_count(&counter), 10);
        let mut drain = ring.drain();
        drop(drain.next());
        drop(drain); // drops the other eight
        assert_eq!(Rc::strong_count(&counter), 1);
        for _ in 0..3 {
            ring.push_back(counter.clone());
        }
        let removed = ring.remove(1);
        assert_eq!(Rc::strong_count(&counter), 4);
        drop(removed);
        drop(ring);
        assert_eq!(Rc::strong_count(&counter), 1);
    }

    #[test]
    fn the_next_slot_is_where_the_next_push_writes() {
        let mut ring: Ring<u64> = Ring::new();
        ring.reserve_exact(3);
        ring.push_back(1);
        let hint = ring.next_slot();
        ring.push_back(2);
        assert_eq!(std::ptr::from_ref(ring.back().expect("an entry")), hint.cast_const());
        ring.pop_front();
        ring.push_back(3);
        let hint = ring.next_slot(); // wraps to the first slot
        ring.push_back(4);
        assert_eq!(std::ptr::from_ref(ring.back().expect("an entry")), hint.cast_const());
    }
}
