//! One Hearth session driven directly through hearth-proto over a real
//! socket (no SDK task in between), so a load generator costs as little as
//! it can: `echo-load`'s session modes and `login-flood`'s legitimate
//! clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use hearth_proto::{Client, ClientConfig, Event, Transmit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::codec::Decoder;

#[derive(Clone, Copy, PartialEq)]
pub enum Link {
    Udp,
    Tcp,
}

/// One session driven directly through hearth-proto (no SDK task in
/// between), so the load generator costs as little as it can.
pub struct SessionIo {
    pub client: Client,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    inbound: BytesMut,
    codec: tokio_util::codec::LengthDelimitedCodec,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl SessionIo {
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(transmit) = self.client.poll_transmit() {
            match transmit {
                Transmit::Datagram { to, bytes } => {
                    self.udp
                        .as_ref()
                        .context("no udp")?
                        .send_to(&bytes, to)
                        .await?;
                }
                Transmit::Stream { bytes, .. } => {
                    hearth_net::framing::write_frame(&mut self.out, &bytes)
                }
                Transmit::CloseStream { .. } => {}
            }
        }
        if !self.out.is_empty() {
            self.tcp
                .as_mut()
                .context("no tcp")?
                .write_all(&self.out)
                .await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Waits for input or a timer, up to `limit`; feeds it to the client.
    pub async fn step(&mut self, limit: Instant) -> anyhow::Result<()> {
        let wake = self.client.poll_timeout().map_or(limit, |t| t.min(limit));
        let wake = tokio::time::Instant::from_std(wake);
        if let Some(udp) = &self.udp {
            if let Ok(received) = tokio::time::timeout_at(wake, udp.recv_from(&mut self.buf)).await
            {
                let (len, from) = received?;
                self.client
                    .handle_datagram(Instant::now(), from, &self.buf[..len]);
            }
        } else if let Some(tcp) = &mut self.tcp {
            if let Ok(read) = tokio::time::timeout_at(wake, tcp.read_buf(&mut self.inbound)).await {
                if read? == 0 {
                    bail!("server closed the connection");
                }
                while let Some(packet) = self.codec.decode(&mut self.inbound)? {
                    self.client.handle_stream(Instant::now(), &packet);
                }
            }
        }
        let now = Instant::now();
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        self.flush().await
    }
}

impl SessionIo {
    /// Starts a handshake with the server at `addr` over `link`; `index`
    /// varies the seed so sessions differ.
    pub async fn connect(link: Link, addr: SocketAddr, index: usize) -> anyhow::Result<Self> {
        let now = Instant::now();
        let mut seed = hearth_proto::os_seed();
        seed[0] ^= index as u8;
        let mut io = SessionIo {
            client: Client::new(ClientConfig::default(), now, seed),
            udp: None,
            tcp: None,
            inbound: BytesMut::with_capacity(65536),
            codec: hearth_net::framing::codec(1 << 20),
            buf: vec![0u8; 65536],
            out: Vec::new(),
        };
        match link {
            Link::Udp => {
                io.udp = Some(UdpSocket::bind("127.0.0.1:0").await?);
                io.client.connect_datagram(now, addr);
            }
            Link::Tcp => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                io.tcp = Some(tcp);
                io.client.connect_stream(now);
            }
        }
        io.flush().await?;
        Ok(io)
    }

    /// Drives the handshake and login until Joined, or fails after `within`.
    pub async fn join(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.step(deadline).await?;
            while let Some(event) = self.client.poll_event() {
                match event {
                    Event::Joined => return Ok(()),
                    Event::Closed(reason) => bail!("login failed: {reason}"),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!("no login within {} s", within.as_secs_f64());
            }
        }
    }
}
