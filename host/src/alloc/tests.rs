#![allow(unsafe_code)]

use super::*;

/// Sizes around every size class boundary up to mimalloc's large blocks, and a huge one.
fn sizes() -> impl Iterator<Item = usize> {
    (1..=300).chain((300..5000).step_by(7)).chain([
        8191,
        8192,
        65_535,
        65_536,
        300_000,
        4 << 20,
        (4 << 20) + 24,
    ])
}

const ALIGNS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 4096];

/// Allocates several blocks of each layout (so that blocks past a page's first are seen),
/// checks each is aligned and writable, and frees them.
#[test]
fn every_block_is_aligned_as_its_layout_asks() {
    for align in ALIGNS {
        for size in sizes() {
            let layout = Layout::from_size_align(size, align).unwrap();
            let blocks: Vec<*mut u8> = (0..4).map(|_| unsafe { Allocator.alloc(layout) }).collect();
            for &p in &blocks {
                assert!(!p.is_null(), "{layout:?}");
                assert_eq!(p as usize % align, 0, "{layout:?} gave {p:p}");
                unsafe { p.write_bytes(0xa5, size) };
            }
            for p in blocks {
                unsafe { Allocator.dealloc(p, layout) };
            }
        }
    }
}

#[test]
fn zeroed_blocks_are_zero_and_aligned() {
    for align in ALIGNS {
        for size in sizes().step_by(5) {
            let layout = Layout::from_size_align(size, align).unwrap();
            // A dirty block of the same class first, so a reused block must be cleared.
            let dirty = unsafe { Allocator.alloc(layout) };
            unsafe { dirty.write_bytes(0xff, size) };
            unsafe { Allocator.dealloc(dirty, layout) };
            let p = unsafe { Allocator.alloc_zeroed(layout) };
            assert_eq!(p as usize % align, 0, "{layout:?}");
            let bytes = unsafe { std::slice::from_raw_parts(p, size) };
            assert!(bytes.iter().all(|b| *b == 0), "{layout:?} not zeroed");
            unsafe { Allocator.dealloc(p, layout) };
        }
    }
}

/// Growing and shrinking keeps the contents and the alignment, whichever of the two calls
/// made the block before.
#[test]
fn realloc_keeps_contents_and_alignment() {
    for align in ALIGNS {
        for (from, to) in [
            (24, 40),
            (40, 24),
            (48, 1500),
            (1500, 48),
            (100, 70_000),
            (70_000, 16),
        ] {
            let layout = Layout::from_size_align(from, align).unwrap();
            let p = unsafe { Allocator.alloc(layout) };
            for i in 0..from {
                unsafe { p.add(i).write(i as u8) };
            }
            let q = unsafe { Allocator.realloc(p, layout, to) };
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0, "{from} -> {to} at {align}");
            for i in 0..from.min(to) {
                assert_eq!(
                    unsafe { q.add(i).read() },
                    i as u8,
                    "{from} -> {to} at {align}"
                );
            }
            let new = Layout::from_size_align(to, align).unwrap();
            unsafe { Allocator.dealloc(q, new) };
        }
    }
}

#[test]
fn only_sizes_that_are_multiples_of_a_small_alignment_skip_the_aligned_call() {
    assert!(natural(48, 16));
    assert!(natural(24, 8));
    assert!(natural(13, 1));
    assert!(natural(1500, 4));
    assert!(
        !natural(24, 16),
        "a 24-byte class would put every other block off 16"
    );
    assert!(
        !natural(64, 32),
        "above 16 the class does not promise the alignment"
    );
    assert!(!natural(4096, 4096));
}
