//! The process's global allocator: mimalloc, asked for an aligned block only when the size
//! class alone would not give the alignment. It owns nothing else.
//!
//! The `mimalloc` crate's `GlobalAlloc` sends every request to `mi_malloc_aligned`, whose
//! fast path in mimalloc 3 serves only blocks of at most 1 KiB whose free block happens to be
//! aligned; anything else (a 1.5 KiB buffer, a 48-byte struct whose size class is not a power
//! of two) goes through the over-allocating path: about 130 instructions more per call and a
//! larger block. Callgrind counted 13 such calls in every fresh WASI instance's invocation
//! (the context's environment, header maps, hyper's read buffer, wasmtime's instance).
//! mimalloc's size classes are multiples of 8 bytes, 16 above 64, and a page's first block is
//! 16-byte aligned, so a block of a size that is a multiple of an alignment of at most 16 is
//! aligned to it: those requests go to `mi_malloc`, the rest to the aligned calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block of a multiple of it has (`MI_MAX_ALIGN_SIZE`).
const NATURAL: usize = 16;

/// mimalloc as the global allocator (`#[global_allocator]` in `main.rs`).
pub struct Allocator;

/// Whether a block of `size` bytes from mimalloc's size classes is aligned to `align`.
fn natural(size: usize, align: usize) -> bool {
    align <= NATURAL && size.is_multiple_of(align)
}

// SAFETY: every call hands mimalloc a layout it accepts (the aligned calls take any
// power-of-two alignment; the plain ones are used only where `natural` holds, so the block is
// aligned as the layout asks), and blocks are freed and resized only by mimalloc, which
// accepts blocks of either kind in `mi_free` and `mi_realloc*`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if natural(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if natural(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; the new block is aligned as `layout` asks.
        unsafe {
            if natural(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests;
