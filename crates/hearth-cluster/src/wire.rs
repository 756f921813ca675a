//! What the cluster's wires ([`crate::relay_wire`], [`crate::forward_wire`])
//! share on the sending side: a field too long to send is refused, naming
//! it, before anything goes out.

use hearth_codec::Writer;

/// A part of a message that is longer than its wire carries: nothing is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} is longer than a message between nodes may carry")]
pub struct TooLong(pub &'static str);

/// Appends `bytes` with their length, or refuses them when longer than `max`.
pub fn put_bounded(
    out: &mut Vec<u8>,
    bytes: &[u8],
    max: usize,
    what: &'static str,
) -> Result<(), TooLong> {
    if bytes.len() > max {
        return Err(TooLong(what));
    }
    out.put_len_prefixed(bytes);
    Ok(())
}
