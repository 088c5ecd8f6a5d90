//! Address-space probing on Windows.

use windows_sys::Win32::System::Memory::{
    MEM_RELEASE, MEM_RESERVE, PAGE_NOACCESS, VirtualAlloc, VirtualFree,
};

/// Whether the process can reserve `bytes` more of address space now: reserves that much
/// (`MEM_RESERVE`, no storage committed) and releases it.
pub fn can_map(bytes: usize) -> bool {
    // SAFETY: `VirtualAlloc` with a null address reserves a fresh region the system picks;
    // `VirtualFree` with `MEM_RELEASE` and size 0 releases exactly that region.
    #[allow(unsafe_code)]
    unsafe {
        let address = VirtualAlloc(std::ptr::null(), bytes, MEM_RESERVE, PAGE_NOACCESS);
        if address.is_null() {
            return false;
        }
        VirtualFree(address, 0, MEM_RELEASE);
        true
    }
}
