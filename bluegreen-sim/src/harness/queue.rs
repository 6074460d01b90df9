//! The event heap: earliest `(at, seq)` first, `seq` unique (the order events were
//! queued in breaks ties), so runs are deterministic.
//!
//! A hand-written binary min-heap rather than `std::collections::BinaryHeap`: the
//! standard one writes a pushed event into the vector and at once reads it back to sift
//! it, and on pop moves the last event to the root before sifting — each a reload of
//! bytes just stored at another width, which stalls the CPU (store forwarding) on every
//! event. Here the event being placed stays in registers until its slot is found, and
//! only the two integers of the key are compared.

use bluegreen_core::Timestamp;

use super::Ev;

/// An event in the heap. The event itself never takes part in the order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    pub at: Timestamp,
    pub seq: u64,
    pub ev: Ev,
}

impl Queued {
    #[inline]
    fn before(&self, other: &Queued) -> bool {
        // One 128-bit comparison (no branch between the two halves), the same order as
        // comparing `(at, seq)`.
        self.key() < other.key()
    }

    #[inline]
    fn key(&self) -> u128 {
        (u128::from(self.at.as_millis()) << 64) | u128::from(self.seq)
    }
}

#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    items: Vec<Queued>,
}

impl EventQueue {
    /// Queue `ev` at `(at, seq)`: the parts as values rather than one `Queued` the
    /// caller has just written to memory, which the push read straight back at another
    /// width (a store-forwarding stall on every push).
    pub fn push(&mut self, at: Timestamp, seq: u64, ev: Ev) {
        let q = Queued { at, seq, ev };
        let mut i = self.items.len();
        // Grows the vector; the slot is overwritten below without being read.
        self.items.push(q);
        while i > 0 {
            let parent = (i - 1) / 2;
            if !q.before(&self.items[parent]) {
                break;
            }
            self.items[i] = self.items[parent];
            i = parent;
        }
        self.items[i] = q;
    }

    /// The earliest event.
    pub fn pop(&mut self) -> Option<Queued> {
        let last = self.items.pop()?;
        let Some(&top) = self.items.first() else {
            return Some(last);
        };
        // Sift `last` down from the root's hole.
        let n = self.items.len();
        let mut i = 0;
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.items[right].before(&self.items[left]) {
                right
            } else {
                left
            };
            if !self.items[child].before(&last) {
                break;
            }
            self.items[i] = self.items[child];
            i = child;
        }
        self.items[i] = last;
        Some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Whatever order events are queued in, they come out by time, and events at the
    /// same time in the order they were queued — exactly what a sorted list gives.
    #[test]
    fn events_come_out_by_time_then_by_queue_order() {
        // Times from a small range (many ties, broken by queue order) and, for half the
        // seeds, spread over the whole of a `u64` (the key's high half decides).
        for seed in 0..200u64 {
            let scale = if seed % 2 == 0 { 1 } else { u64::MAX / 50 };
            let mut rng = Rng::new(seed);
            let mut q = EventQueue::default();
            let mut expected = Vec::new();
            let mut seq = 0;
            let mut popped = Vec::new();
            for _ in 0..300 {
                // Interleave pushes and pops, as the harness does.
                if rng.chance(0.3) {
                    if let Some(e) = q.pop() {
                        popped.push((e.at, e.seq));
                    }
                    continue;
                }
                seq += 1;
                let at = Timestamp::from_millis(rng.range(0, 50) * scale);
                q.push(at, seq, Ev::Heal);
            }
            while let Some(e) = q.pop() {
                popped.push((e.at, e.seq));
            }
            assert!(q.pop().is_none());
            // Replay against a sorted vector: the same pushes and pops.
            let mut rng = Rng::new(seed);
            let mut reference: Vec<(Timestamp, u64)> = Vec::new();
            let mut seq = 0;
            for _ in 0..300 {
                if rng.chance(0.3) {
                    if !reference.is_empty() {
                        reference.sort();
                        expected.push(reference.remove(0));
                    }
                    continue;
                }
                seq += 1;
                reference.push((Timestamp::from_millis(rng.range(0, 50) * scale), seq));
            }
            reference.sort();
            expected.extend(reference);
            assert_eq!(
                popped, expected,
                "seed {seed}: cargo test -p bluegreen-sim events_come_out"
            );
        }
    }
}
