//! Command-line KCP settings shared by the server and the client.

use clap::Args;
use hearth_kcp::{Config, Profile};

#[derive(Debug, Clone, Args)]
pub struct KcpArgs {
    /// Conversation id; both ends must agree.
    #[arg(long, default_value_t = 1)]
    pub conv: u32,
    /// default | normal | fast (the KCP reference test's three modes).
    #[arg(long, default_value = "fast")]
    pub profile: Profile,
    #[arg(long)]
    pub mtu: Option<usize>,
    #[arg(long)]
    pub sndwnd: Option<u16>,
    #[arg(long)]
    pub rcvwnd: Option<u16>,
    /// Stream mode (both ends must use it).
    #[arg(long)]
    pub stream: bool,
    /// Messages beyond 127 fragments (both ends must use it; not ikcp.c-compatible).
    #[arg(long)]
    pub large: bool,
}

impl KcpArgs {
    pub fn config(&self) -> Config {
        let mut config = Config::profile(self.profile);
        if let Some(mtu) = self.mtu {
            config.mtu = mtu;
        }
        if let Some(window) = self.sndwnd {
            config.send_window = window;
        }
        if let Some(window) = self.rcvwnd {
            config.receive_window = window;
        }
        config.stream = self.stream;
        config.large_messages = self.large;
        config
    }
}
