//! The shard's provided-buffer ring (io_uring `IORING_REGISTER_PBUF_RING`, Linux 5.19+).
//! Every multishot receive on the shard takes its buffers from this one pool, so an idle
//! connection holds no read buffer at all: memory for reading is per shard, not per
//! connection. A buffer goes back to the ring as soon as its bytes are copied out (or,
//! while the mesh is backed up, once they are handled); when the pool runs dry the kernel
//! ends the receives that needed a buffer (ENOBUFS) and the data waits in the socket,
//! which is the TCP back-pressure we want.

use io_uring::types::BufRingEntry;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

/// One registered ring of `count` buffers of `size` bytes each, buffer group `bgid`.
pub struct BufRing {
    /// The ring of entries shared with the kernel (page-aligned, `count` entries).
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    /// The buffers themselves, `count * size` bytes.
    data: Box<[u8]>,
    size: usize,
    mask: u16,
    /// Our copy of the tail; published to the kernel by [`BufRing::publish`].
    tail: u16,
    pub bgid: u16,
}

impl BufRing {
    /// Allocates and registers the ring; `count` must be a power of two (at most 32768).
    pub fn register(
        submitter: &io_uring::Submitter<'_>,
        bgid: u16,
        count: u16,
        size: usize,
    ) -> io::Result<Self> {
        assert!(count.is_power_of_two() && count <= 1 << 15, "buffer ring size {count}");
        let ring_bytes = count as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; checked for failure below.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut r = BufRing {
            ring: ring.cast(),
            ring_bytes,
            data: vec![0u8; count as usize * size].into_boxed_slice(),
            size,
            mask: count - 1,
            tail: 0,
            bgid,
        };
        // SAFETY: the mapping lives as long as `r`. `r` does not unregister it on drop: it
        // must outlive the ring instead (the reactor declares the ring first, so the ring
        // is dropped first), and closing the ring's descriptor releases the kernel's
        // reference before `Drop` unmaps the memory.
        unsafe { submitter.register_buf_ring(r.ring as u64, count, bgid)? };
        for bid in 0..count {
            r.give_back(bid);
        }
        r.publish();
        Ok(r)
    }

    /// The bytes the kernel wrote into buffer `bid`.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.size;
        &self.data[start..start + len.min(self.size)]
    }

    /// Puts buffer `bid` back in the ring; the kernel sees it after [`BufRing::publish`].
    pub fn give_back(&mut self, bid: u16) {
        let idx = (self.tail & self.mask) as usize;
        // SAFETY: idx < count, inside the mapping; the kernel reads entries only up to the
        // published tail, and this one is past it until `publish`.
        let e = unsafe { &mut *self.ring.add(idx) };
        e.set_addr(self.data.as_ptr() as u64 + bid as u64 * self.size as u64);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every buffer given back so far visible to the kernel.
    pub fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of the mapping; it is shared with
        // the kernel, hence the atomic store with release ordering.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // The ring itself is closed by now or about to be; unmapping after the kernel has
        // let go of the memory is all that is left (io_uring drops its reference when
        // the ring fd closes).
        // SAFETY: the mapping was created in `register` with this length.
        unsafe { libc::munmap(self.ring.cast(), self.ring_bytes) };
    }
}
