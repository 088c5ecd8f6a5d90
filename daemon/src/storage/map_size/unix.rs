//! Address-space probing on Unix.

use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// Whether the process can map `bytes` more of address space now: maps that much, inaccessible
/// (so it costs no memory and no commit charge), and unmaps it.
pub fn can_map(bytes: usize) -> bool {
    // SAFETY: a fresh anonymous mapping at an address the kernel picks, never touched, and
    // unmapped with the length it was mapped with; no other memory is affected.
    #[allow(unsafe_code)]
    unsafe {
        match mmap_anonymous(
            std::ptr::null_mut(),
            bytes,
            ProtFlags::empty(),
            MapFlags::PRIVATE,
        ) {
            Ok(address) => {
                let _ = munmap(address, bytes);
                true
            }
            Err(_) => false,
        }
    }
}
