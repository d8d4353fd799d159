//! Buffers for large answers, kept for the next one.
//!
//! A 10,000-span trace's JSON is about 10 MB. Fresh memory that size comes
//! from the kernel a page at a time, each zeroed on first touch; a buffer
//! that was used before is already there. So a large answer's buffers go
//! back to a small pool once the answer has been sent, and the next large
//! answer takes them. The pool holds at most [`KEPT_BYTES`] in all.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Most bytes of capacity the answers' pool keeps.
pub const KEPT_BYTES: usize = 24 << 20;
/// Buffers smaller than this are not worth keeping (the allocator reuses
/// them anyway).
const SMALLEST_KEPT: usize = 256 << 10;

/// The pool the API's large answers use.
pub static ANSWERS: Pool = Pool::new(KEPT_BYTES);

/// Empty buffers kept for reuse, at most `limit` bytes of capacity in all.
#[derive(Debug)]
pub struct Pool {
    kept: Mutex<Vec<Vec<u8>>>,
    limit: usize,
}

impl Pool {
    pub const fn new(limit: usize) -> Pool {
        Pool {
            kept: Mutex::new(Vec::new()),
            limit,
        }
    }

    fn kept(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // A list of empty buffers cannot be left half-changed.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer with room for at least `capacity` bytes: the
    /// smallest kept one that is large enough, else a new one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity >= SMALLEST_KEPT {
            let mut kept = self.kept();
            if let Some(i) = (0..kept.len())
                .filter(|&i| kept[i].capacity() >= capacity)
                .min_by_key(|&i| kept[i].capacity())
            {
                return kept.swap_remove(i);
            }
        }
        Vec::with_capacity(capacity)
    }

    /// Keeps `buf` for a later answer if there is room (a larger buffer
    /// takes the place of the smallest kept one if that makes room).
    pub fn give_back(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if !(SMALLEST_KEPT..=self.limit).contains(&cap) {
            return;
        }
        buf.clear();
        let mut kept = self.kept();
        let held: usize = kept.iter().map(Vec::capacity).sum();
        if held + cap <= self.limit {
            kept.push(buf);
        } else if let Some(i) = (0..kept.len()).min_by_key(|&i| kept[i].capacity())
            && kept[i].capacity() < cap
            && held - kept[i].capacity() + cap <= self.limit
        {
            kept[i] = buf;
        }
    }

    /// Bytes of capacity kept now.
    pub fn kept_bytes(&self) -> usize {
        self.kept().iter().map(Vec::capacity).sum()
    }

    /// `buf` as `Bytes` that give the buffer back to this pool once they
    /// (and every clone of them) are dropped, that is once the answer has
    /// been written out.
    pub fn into_bytes(&'static self, buf: Vec<u8>) -> Bytes {
        if buf.capacity() < SMALLEST_KEPT {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Returned(buf, self))
    }
}

struct Returned(Vec<u8>, &'static Pool);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        self.1.give_back(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_comes_back_once_its_bytes_are_dropped() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(24 << 20)));
        // Small buffers are never kept.
        drop(pool.into_bytes(Vec::with_capacity(1024)));
        assert_eq!(pool.kept_bytes(), 0);

        let mut a = pool.take(1 << 20);
        a.extend_from_slice(b"some JSON");
        let (cap, ptr) = (a.capacity(), a.as_ptr());
        let bytes = pool.into_bytes(a);
        assert_eq!(&bytes[..], b"some JSON");
        let copy = bytes.slice(5..);
        drop(bytes);
        assert_eq!(pool.kept_bytes(), 0, "not back while a part is unsent");
        assert_eq!(&copy[..], b"JSON");
        drop(copy);
        assert_eq!(pool.kept_bytes(), cap);

        // The next large answer gets the same memory, empty; a larger one
        // than any kept gets a new buffer.
        let b = pool.take(1 << 20);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 0));
        assert_eq!(pool.kept_bytes(), 0);
        pool.give_back(b);
        assert!(pool.take(2 << 20).capacity() >= 2 << 20);
        assert_eq!(pool.kept_bytes(), cap);
    }

    #[test]
    fn the_pool_never_holds_more_than_its_limit() {
        let pool = Pool::new(24 << 20);
        for _ in 0..8 {
            pool.give_back(Vec::with_capacity(8 << 20));
        }
        assert_eq!(pool.kept_bytes(), 24 << 20);
        // A larger buffer replaces a smaller one only if it then fits.
        pool.give_back(Vec::with_capacity(12 << 20));
        assert_eq!(pool.kept_bytes(), 24 << 20);
        let pool = Pool::new(24 << 20);
        pool.give_back(Vec::with_capacity(4 << 20));
        pool.give_back(Vec::with_capacity(16 << 20));
        pool.give_back(Vec::with_capacity(8 << 20));
        assert_eq!(pool.kept_bytes(), 24 << 20, "8 MiB took the 4's place");
        // Too large to keep at all.
        pool.give_back(Vec::with_capacity(25 << 20));
        assert_eq!(pool.kept_bytes(), 24 << 20);
    }
}
