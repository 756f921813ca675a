/// The bytes of message `index`: distinct per message and position, so that a
/// misplaced, truncated or corrupted echo is caught.
pub fn message(index: u32, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (index.wrapping_mul(131).wrapping_add(i as u32 * 7) ^ (i as u32 >> 8)) as u8)
        .collect()
}
