//! The conditioner flags shared by `hearth client` and `hearth bot`: what to
//! do to the UDP datagrams this side sends and receives.

use hearth_net::conditioner::{Impairment, LinkImpairment};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct ImpairFlags {
    /// Impair what this side sends over UDP, e.g. "loss=5,lag=40,jitter=10"
    /// (keys: loss, dup, reorder (%), lag, jitter (ms), bandwidth (bytes/s)).
    #[arg(long)]
    pub impair_up: Option<Impairment>,
    /// Impair what this side receives over UDP.
    #[arg(long)]
    pub impair_down: Option<Impairment>,
    /// Seeds the conditioner's randomness, so a run can be repeated.
    #[arg(long, default_value_t = 1)]
    pub impair_seed: u64,
}

impl ImpairFlags {
    /// The link's impairment, or None when no flag asks for one. `stream`
    /// separates the randomness of several clients sharing one seed.
    pub fn link(&self, stream: u64) -> Option<LinkImpairment> {
        if self.impair_up.is_none() && self.impair_down.is_none() {
            return None;
        }
        Some(LinkImpairment {
            up: self.impair_up.unwrap_or_default(),
            down: self.impair_down.unwrap_or_default(),
            seed: self
                .impair_seed
                .wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        })
    }
}
