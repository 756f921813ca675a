//! Appending short byte strings without a call to `memcpy`.
//!
//! A message crosses four buffers on its way through a session pair (the send
//! arena, a datagram, the receive arena, the caller's buffer), and game messages
//! are mostly a few dozen bytes. `extend_from_slice` calls libc's `memcpy` for
//! any length not known at compile time, and around that call the compiler
//! spills and reloads the live registers of the hot loop it sits in: about as
//! many instructions as the copy itself. Up to [`INLINE_LIMIT`] bytes, two
//! overlapping fixed-size moves (what `memcpy` does inside for short lengths)
//! copy any length with no call and no loop; longer ones still go to `memcpy`.

/// Longest copy done inline.
pub(crate) const INLINE_LIMIT: usize = 64;

/// Appends `src` to `dst`: the same result as `dst.extend_from_slice(src)`.
#[inline(always)]
pub(crate) fn append(dst: &mut Vec<u8>, src: &[u8]) {
    append_after(dst, [], src);
}

/// Appends `head` then `src` to `dst`, with one capacity check: the same result
/// as `dst.extend_from_slice(&head); dst.extend_from_slice(src)`.
#[inline(always)]
pub(crate) fn append_after<const N: usize>(dst: &mut Vec<u8>, head: [u8; N], src: &[u8]) {
    let len = src.len();
    if len > INLINE_LIMIT {
        // One growth for both, as for a short one.
        dst.reserve(N + len);
        dst.extend_from_slice(&head);
        dst.extend_from_slice(src);
        return;
    }
    dst.reserve(N + len);
    let old = dst.len();
    // SAFETY: `reserve` left room for `N + len` bytes after `old`: `head` fills
    // the first `N`, `copy_short` the next `len` (its contract). `src` cannot
    // overlap `dst`'s spare capacity (one is borrowed shared, the other
    // mutably). All `N + len` bytes are written before `set_len` exposes them.
    unsafe {
        let to = dst.as_mut_ptr().add(old);
        to.cast::<[u8; N]>().write_unaligned(head);
        copy_short(src.as_ptr(), to.add(N), len);
        dst.set_len(old + N + len);
    }
}

/// Copies `len <= INLINE_LIMIT` bytes with no call and no loop: every store
/// lands in `to[..len]`, since each pair of moves covers the first and the
/// last N bytes of a length between N and 2N, overlapping in the middle; every
/// load is inside `from[..len]` for the same reason.
///
/// # Safety
/// `from` must be readable and `to` writable for `len` bytes, not overlapping,
/// and `len <= INLINE_LIMIT`.
#[inline(always)]
unsafe fn copy_short(from: *const u8, to: *mut u8, len: usize) {
    debug_assert!(len <= INLINE_LIMIT);
    if len >= 32 {
        move_ends::<32>(from, to, len);
    } else if len >= 16 {
        move_ends::<16>(from, to, len);
    } else if len >= 8 {
        move_ends::<8>(from, to, len);
    } else if len >= 4 {
        move_ends::<4>(from, to, len);
    } else if len > 0 {
        // 1 to 3 bytes: the first, the middle and the last cover them all.
        *to = *from;
        *to.add(len / 2) = *from.add(len / 2);
        *to.add(len - 1) = *from.add(len - 1);
    }
}

/// Copies `len` bytes, `N <= len <= 2 * N`, as the first `N` and the last `N`.
///
/// # Safety
/// `from` must be readable and `to` writable for `len` bytes, not overlapping.
#[inline(always)]
unsafe fn move_ends<const N: usize>(from: *const u8, to: *mut u8, len: usize) {
    debug_assert!((N..=2 * N).contains(&len));
    let head = from.cast::<[u8; N]>().read_unaligned();
    let tail = from.add(len - N).cast::<[u8; N]>().read_unaligned();
    to.cast::<[u8; N]>().write_unaligned(head);
    to.add(len - N).cast::<[u8; N]>().write_unaligned(tail);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_length_up_to_past_the_limit_matches_extend_from_slice() {
        let source: Vec<u8> = (0..=255).collect();
        for prefix in [0usize, 1, 7, 33] {
            for len in 0..=INLINE_LIMIT + 3 {
                let src = &source[prefix..prefix + len];
                let mut inline = vec![0xAA; prefix];
                let mut reference = inline.clone();
                append(&mut inline, src);
                reference.extend_from_slice(src);
                assert_eq!(inline, reference, "length {len} after {prefix} bytes");
                let mut inline = vec![0xAA; prefix];
                let mut reference = inline.clone();
                append_after(&mut inline, *b"head", src);
                reference.extend_from_slice(b"head");
                reference.extend_from_slice(src);
                assert_eq!(inline, reference, "length {len} after a head");
            }
        }
    }

    proptest! {
        #[test]
        fn appends_in_sequence_match_extend_from_slice(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..40),
            capacity in 0usize..64,
        ) {
            let mut inline = Vec::with_capacity(capacity);
            let mut reference = Vec::new();
            for (index, piece) in pieces.iter().enumerate() {
                if index % 2 == 0 {
                    append(&mut inline, piece);
                } else {
                    append_after(&mut inline, [index as u8; 3], piece);
                    reference.extend_from_slice(&[index as u8; 3]);
                }
                reference.extend_from_slice(piece);
                prop_assert_eq!(&inline, &reference);
            }
        }
    }
}
