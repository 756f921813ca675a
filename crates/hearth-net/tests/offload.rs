//! Handlers off the I/O tasks, over real loopback sockets: a handler that
//! blocks does not stall its shard (heartbeats answered, handshakes done);
//! a full queue sheds the session whose reliable traffic does not fit,
//! drops unreliable traffic and turns newcomers away, all counted, without
//! touching anyone else; each session's events reach the handler in order,
//! its Closed last; the echo works through the adapter; a panic in a
//! queued handler ends the gate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hearth_net::client::{ConnectConfig, Connection, Transport};
use hearth_net::gate::{
    self, EchoHandler, GateConfig, GateEnd, GateHandle, Offload, OffloadConfig, QueuedCtx,
    QueuedHandler, OVERLOADED,
};
use hearth_proto::{
    close_code, ChannelKind, ChannelSpec, CloseReason, Delivery, Event, LinkKind, ServerIdentity,
};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

async fn offload_gate<H: QueuedHandler>(
    handler: H,
    queue: OffloadConfig,
    configure: impl FnOnce(&mut GateConfig),
) -> GateHandle {
    let mut config = GateConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        shards: 1,
        ..GateConfig::default()
    };
    configure(&mut config);
    gate::start(
        config,
        ServerIdentity::generate(hearth_proto::os_seed()),
        Offload::with_config(handler, queue),
    )
    .await
    .unwrap()
}

fn connect_config(gate: &GateHandle, transport: Transport) -> ConnectConfig {
    let server = match transport {
        Transport::Udp => gate.udp_addr.unwrap(),
        _ => gate.tcp_addr.unwrap(),
    };
    let mut config = ConnectConfig::new(transport, server);
    config.reconnect = false;
    config
}

/// Joins and opens channel 2 (reliable); returns the session id too.
async fn joined(config: ConnectConfig) -> (Connection, u64) {
    let mut connection = Connection::connect(config).await.unwrap();
    let events = timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    let id = events
        .iter()
        .find_map(|e| match e {
            Event::Welcomed { session_id, .. } => Some(*session_id),
            _ => None,
        })
        .expect("welcomed before joined");
    connection
        .open_channel(
            2,
            ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered),
        )
        .await
        .unwrap();
    (connection, id)
}

fn numbered(index: u32, size: usize) -> Vec<u8> {
    let mut message = vec![(index % 251) as u8; size.max(4)];
    message[..4].copy_from_slice(&index.to_be_bytes());
    message
}

/// Sends `count` numbered messages on `channel` and checks that each comes
/// back once, in order.
async fn echo_round(connection: &mut Connection, channel: u16, count: u32, size: usize) {
    let sent: Vec<Vec<u8>> = (0..count).map(|i| numbered(i, size)).collect();
    for message in &sent {
        connection.send(channel, message).await.unwrap();
    }
    let mut echoed = Vec::new();
    while echoed.len() < sent.len() {
        match timeout(WAIT, connection.next_event())
            .await
            .expect("echo in time")
        {
            Some(Event::Message {
                channel: c,
                payload,
            }) if c == channel => echoed.push(payload),
            Some(Event::Closed(reason)) => panic!("closed: {reason}"),
            Some(_) => {}
            None => panic!("connection stopped"),
        }
    }
    assert_eq!(echoed, sent, "every message echoed once, in order");
}

/// Waits for the connection's Closed and returns its reason.
async fn closed(connection: &mut Connection) -> CloseReason {
    timeout(WAIT, async {
        loop {
            match connection.next_event().await {
                Some(Event::Closed(reason)) => return reason,
                Some(_) => {}
                None => panic!("the connection stopped without a Closed"),
            }
        }
    })
    .await
    .expect("closed in time")
}

/// Polls `done` every 10 ms until it holds, for at most `within`.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Accepts every login; blocks its thread 200 ms on every message (as a
/// synchronous database call would), then echoes it.
#[derive(Clone)]
struct Sleepy {
    handled: Arc<AtomicUsize>,
}

impl QueuedHandler for Sleepy {
    fn on_event(&mut self, gate: &mut QueuedCtx, session: u64, event: Event) {
        match event {
            Event::LoginRequest(_) => gate.accept_login(session, None),
            Event::Message { channel, payload } => {
                std::thread::sleep(Duration::from_millis(200));
                self.handled.fetch_add(1, Ordering::SeqCst);
                gate.send(session, channel, payload);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_handler_does_not_stall_heartbeats_or_handshakes_on_its_shard() {
    let handled = Arc::new(AtomicUsize::new(0));
    let gate = offload_gate(
        Sleepy {
            handled: handled.clone(),
        },
        OffloadConfig::default(),
        |_| {},
    )
    .await;
    let mut pinging = connect_config(&gate, Transport::Udp);
    pinging.protocol.session.heartbeat_interval = Duration::from_millis(100);
    let (watcher, _) = joined(pinging).await;
    let (mut staller, _) = joined(connect_config(&gate, Transport::Tcp)).await;
    // 25 messages at 200 ms each: the handler is stuck for 5 s.
    for index in 0..25 {
        staller.send(2, &numbered(index, 64)).await.unwrap();
    }
    until(WAIT, "the handler starts on the stall", || {
        handled.load(Ordering::SeqCst) >= 1
    })
    .await;
    let stuck_from = Instant::now();

    // A newcomer's handshake completes at once: the shard is not waiting.
    let mut newcomer = Connection::connect(connect_config(&gate, Transport::Tcp))
        .await
        .unwrap();
    timeout(
        Duration::from_secs(1),
        newcomer.wait_for(|e| *e == Event::LinkUp(LinkKind::Stream)),
    )
    .await
    .expect("the stream handshake completes within 1 s while the handler is blocked")
    .unwrap();
    until(
        Duration::from_secs(1),
        "the newcomer's session exists",
        || gate.session_count() == 3,
    )
    .await;

    // The watcher's pings are answered all along, promptly.
    let before = watcher.stats().await.unwrap().rtt;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = watcher.stats().await.unwrap().rtt;
    assert!(
        after.samples >= before.samples + 3,
        "pongs while the handler is blocked: {} -> {}",
        before.samples,
        after.samples
    );
    let latest = after.latest.unwrap();
    assert!(
        latest < Duration::from_millis(100),
        "a pong does not wait for the handler: {latest:?}"
    );
    let during = handled.load(Ordering::SeqCst);
    assert!(
        during < 25 && stuck_from.elapsed() < Duration::from_secs(4),
        "all of the above happened while the handler was still stuck ({during} of 25 handled)"
    );

    // The login is the handler's to decide: it comes once the handler gets there.
    timeout(WAIT, newcomer.wait_for(|e| *e == Event::Joined))
        .await
        .expect("the newcomer joins after the stall")
        .unwrap();
    let mut echoed = 0;
    while echoed < 25 {
        match timeout(WAIT, staller.next_event()).await.expect("echoes") {
            Some(Event::Message {
                channel: 2,
                payload,
            }) => {
                assert_eq!(payload, numbered(echoed, 64), "in order");
                echoed += 1;
            }
            Some(Event::Closed(reason)) => panic!("closed: {reason}"),
            Some(_) => {}
            None => panic!("connection stopped"),
        }
    }
}

/// Accepts every login and logs every event; holds each message until the
/// latch opens (a handler stuck on something), then echoes it.
#[derive(Clone, Default)]
struct Latched {
    open: Arc<(Mutex<bool>, Condvar)>,
    log: Arc<Mutex<Vec<(u64, Event)>>>,
}

impl Latched {
    fn release(&self) {
        let (open, changed) = &*self.open;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }

    /// Waits until the handler has had every event queued so far: a round
    /// of a few messages then fits the tiny queue.
    async fn drained(&self, gate: &GateHandle) {
        let queued = &gate.metrics().handler_queue.queued;
        until(WAIT, "the handler drains its queue", || {
            self.log.lock().unwrap().len() as u64 == queued.load(Ordering::SeqCst)
        })
        .await;
    }

    fn log(&self) -> Vec<(u64, Event)> {
        self.log.lock().unwrap().clone()
    }

    fn events_of(&self, session: u64) -> Vec<Event> {
        self.log()
            .into_iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, e)| e)
            .collect()
    }
}

impl QueuedHandler for Latched {
    fn on_event(&mut self, gate: &mut QueuedCtx, session: u64, event: Event) {
        self.log.lock().unwrap().push((session, event.clone()));
        match event {
            Event::LoginRequest(_) => gate.accept_login(session, None),
            Event::Message { channel, payload } => {
                let (open, changed) = &*self.open;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = changed.wait(open).unwrap();
                }
                drop(open);
                gate.send(session, channel, payload);
            }
            _ => {}
        }
    }
}

const TINY: OffloadConfig = OffloadConfig {
    max_entries: 8,
    max_bytes: 1 << 20,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reliable_flood_at_a_full_queue_sheds_that_session_only() {
    let handler = Latched::default();
    let gate = offload_gate(handler.clone(), TINY, |_| {}).await;
    let counts = &gate.metrics().handler_queue;
    let (mut bystander, bystander_id) = joined(connect_config(&gate, Transport::Tcp)).await;
    let (mut flooder, flooder_id) = joined(connect_config(&gate, Transport::Tcp)).await;
    for index in 0..50 {
        if flooder.send(2, &numbered(index, 100)).await.is_err() {
            break;
        }
    }
    let reason = closed(&mut flooder).await;
    assert_eq!(
        reason,
        CloseReason::ClosedByPeer {
            code: close_code::OVERLOADED,
            reason: OVERLOADED.to_owned()
        },
        "the client is told why"
    );
    assert_eq!(counts.sessions_shed.load(Ordering::Relaxed), 1);
    assert!(counts.shed_events.load(Ordering::Relaxed) >= 1);
    until(WAIT, "the flooder's session is gone", || {
        gate.session_count() == 1
    })
    .await;
    // Its Closed waits past the bounds of the still-full queue.
    assert!(counts.deferred.load(Ordering::Relaxed) >= 1);

    // A newcomer at the full queue is turned away before the handler hears of it.
    let mut newcomer = Connection::connect(connect_config(&gate, Transport::Tcp))
        .await
        .unwrap();
    assert_eq!(
        closed(&mut newcomer).await,
        CloseReason::ClosedByPeer {
            code: close_code::OVERLOADED,
            reason: OVERLOADED.to_owned()
        }
    );
    assert_eq!(counts.sessions_shed.load(Ordering::Relaxed), 2);
    // The stuck handler's backlog shows as the queue's depth: at least its
    // bound (lifecycle events wait past it), with the messages' bytes.
    let (waiting, waiting_bytes) = counts.waiting();
    assert!(
        waiting >= TINY.max_entries as u64,
        "{waiting} events waiting"
    );
    assert!(waiting_bytes >= 100, "{waiting_bytes} bytes waiting");

    handler.release();
    handler.drained(&gate).await;
    until(WAIT, "the queue's depth falls back to nothing", || {
        counts.waiting() == (0, 0)
    })
    .await;
    // The bystander never noticed (a round smaller than the tiny queue).
    echo_round(&mut bystander, 2, 5, 100).await;
    assert_eq!(gate.session_count(), 1);
    until(WAIT, "the flooder's Closed reaches the handler", || {
        handler
            .events_of(flooder_id)
            .last()
            .is_some_and(|e| matches!(e, Event::Closed(_)))
    })
    .await;
    // What the handler got of the flooder: a prefix of its messages, no
    // hole, then its Closed, with the overload code.
    let flooder_events = handler.events_of(flooder_id);
    let messages: Vec<Vec<u8>> = flooder_events
        .iter()
        .filter_map(|e| match e {
            Event::Message { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert!(!messages.is_empty() && messages.len() < 50);
    let expected: Vec<Vec<u8>> = (0..messages.len() as u32)
        .map(|i| numbered(i, 100))
        .collect();
    assert_eq!(messages, expected);
    assert_eq!(
        flooder_events.last(),
        Some(&Event::Closed(CloseReason::Local {
            code: close_code::OVERLOADED
        }))
    );
    let known: Vec<u64> = handler.log().iter().map(|(s, _)| *s).collect();
    assert!(
        known.iter().all(|s| *s == bystander_id || *s == flooder_id),
        "the turned-away newcomer never reached the handler"
    );
    assert_eq!(counts.unreliable_dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreliable_flood_at_a_full_queue_is_dropped_and_counted_and_the_session_stays() {
    let handler = Latched::default();
    let gate = offload_gate(handler.clone(), TINY, |_| {}).await;
    let counts = &gate.metrics().handler_queue;
    let (mut player, _) = joined(connect_config(&gate, Transport::Udp)).await;
    player
        .open_channel(
            3,
            ChannelSpec::new(ChannelKind::Voice, Delivery::Unreliable),
        )
        .await
        .unwrap();
    for index in 0..200 {
        player.send(3, &numbered(index, 100)).await.unwrap();
        if index % 20 == 19 {
            // Kind to the loopback socket buffers.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    until(
        WAIT,
        "unreliable messages dropped at the full queue",
        || counts.unreliable_dropped.load(Ordering::Relaxed) > 0,
    )
    .await;
    assert_eq!(counts.sessions_shed.load(Ordering::Relaxed), 0);
    handler.release();
    handler.drained(&gate).await;
    echo_round(&mut player, 2, 5, 100).await;
    assert_eq!(gate.session_count(), 1, "the session stayed up");
    assert_eq!(counts.sessions_shed.load(Ordering::Relaxed), 0);
}

/// Logs every event; accepts every login; now and then takes its time, so
/// that the queue holds something.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<(u64, Event)>>>,
}

impl QueuedHandler for Recorder {
    fn on_event(&mut self, gate: &mut QueuedCtx, session: u64, event: Event) {
        if let Event::LoginRequest(_) = &event {
            gate.accept_login(session, None);
        }
        let mut log = self.log.lock().unwrap();
        log.push((session, event));
        if log.len() % 64 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sessions_events_reach_the_queued_handler_in_order_with_its_closed_last() {
    let recorder = Recorder::default();
    let gate = offload_gate(recorder.clone(), OffloadConfig::default(), |c| c.shards = 2).await;
    const COUNT: u32 = 300;
    let mut players = Vec::new();
    for transport in [Transport::Tcp, Transport::Udp, Transport::Tcp] {
        players.push(joined(connect_config(&gate, transport)).await);
    }
    for (connection, _) in &players {
        for index in 0..COUNT {
            connection
                .send(2, &numbered(index, 50 + index as usize))
                .await
                .unwrap();
        }
    }
    for (connection, _) in &players {
        connection.close(close_code::NORMAL, "bye").await;
    }
    let ids: Vec<u64> = players.iter().map(|(_, id)| *id).collect();
    let log = recorder.log.clone();
    until(WAIT, "every session's Closed reaches the handler", || {
        let log = log.lock().unwrap();
        ids.iter().all(|id| {
            log.iter()
                .any(|(s, e)| s == id && matches!(e, Event::Closed(_)))
        })
    })
    .await;
    let log = recorder.log.lock().unwrap().clone();
    for id in ids {
        let events: Vec<&Event> = log
            .iter()
            .filter(|(s, _)| *s == id)
            .map(|(_, e)| e)
            .collect();
        let messages: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    channel: 2,
                    payload,
                } => Some(payload.clone()),
                _ => None,
            })
            .collect();
        let expected: Vec<Vec<u8>> = (0..COUNT).map(|i| numbered(i, 50 + i as usize)).collect();
        assert_eq!(messages, expected, "session {id}: every message, in order");
        let login = events
            .iter()
            .position(|e| matches!(e, Event::LoginRequest(_)))
            .unwrap();
        let opened = events
            .iter()
            .position(|e| matches!(e, Event::ChannelOpened { channel: 2, .. }))
            .unwrap();
        let first_message = events
            .iter()
            .position(|e| matches!(e, Event::Message { .. }))
            .unwrap();
        assert!(
            login < opened && opened < first_message,
            "session {id}: {events:?}"
        );
        assert!(
            matches!(
                events.last(),
                Some(Event::Closed(CloseReason::ClosedByPeer {
                    code: close_code::NORMAL,
                    ..
                }))
            ),
            "session {id}: Closed last, {:?}",
            events.last()
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Closed(_)))
                .count(),
            1
        );
    }
    let counts = &gate.metrics().handler_queue;
    assert_eq!(counts.unreliable_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(counts.sessions_shed.load(Ordering::Relaxed), 0);
    assert_eq!(counts.queued.load(Ordering::Relaxed), log.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_works_through_the_adapter() {
    let gate = offload_gate(EchoHandler, OffloadConfig::default(), |c| c.shards = 2).await;
    let (mut connection, id) = joined(connect_config(&gate, Transport::Auto)).await;
    // The UDP link may have come up before Joined: ask the gate.
    timeout(WAIT, async {
        while !gate
            .query_on(id, move |ctx| {
                ctx.session(id)
                    .is_some_and(|s| s.has_link(LinkKind::Datagram))
            })
            .await
            .unwrap()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("UDP bound by ticket");
    connection
        .open_channel(
            1,
            ChannelSpec::new(ChannelKind::Data, Delivery::ReliableOrdered).on_stream(),
        )
        .await
        .unwrap();
    echo_round(&mut connection, 1, 200, 3000).await;
    echo_round(&mut connection, 2, 200, 3000).await;
    // Larger than a datagram: split into parts and reassembled first.
    echo_round(&mut connection, 2, 3, 200_000).await;
    let (mut second, _) = joined(connect_config(&gate, Transport::Udp)).await;
    echo_round(&mut second, 2, 100, 500).await;
    let counts = &gate.metrics().handler_queue;
    assert!(
        counts.queued.load(Ordering::Relaxed) >= 503,
        "every message went through the queue"
    );
    assert_eq!(counts.sessions_shed.load(Ordering::Relaxed), 0);
    assert_eq!(counts.unreliable_dropped.load(Ordering::Relaxed), 0);
}

/// Panics at the first login, on its own thread.
#[derive(Clone)]
struct PanicsAtLogin;

impl QueuedHandler for PanicsAtLogin {
    fn on_event(&mut self, _gate: &mut QueuedCtx, _session: u64, event: Event) {
        if let Event::LoginRequest(_) = event {
            panic!("queued handler bug: no map loaded");
        }
    }
}

#[tokio::test]
async fn a_panic_in_a_queued_handler_ends_the_gate() {
    let gate = offload_gate(PanicsAtLogin, OffloadConfig::default(), |c| c.udp = None).await;
    let _player = Connection::connect(connect_config(&gate, Transport::Tcp))
        .await
        .unwrap();
    let end = timeout(WAIT, gate.ended()).await.expect("the gate ended");
    assert_eq!(
        end,
        GateEnd::Panicked("queued handler bug: no map loaded".into())
    );
    assert!(gate.run_on_shard(0, |_| {}).await.is_err());
}
