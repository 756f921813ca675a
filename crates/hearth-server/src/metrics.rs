//! /metrics in the Prometheus text format (version 0.0.4). Every rejected
//! connection, packet, login and API call is counted by reason.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use hearth_net::gate::CutReason;

use crate::listener::WebCutReason;

use crate::web_state::WebState;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
            return;
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.value(name, &[], value);
    }
}

pub fn render(state: &WebState) -> String {
    let gate = state.gate.metrics();
    let endpoint = gate.endpoint();
    let mut out = Out(String::with_capacity(4096));
    out.single(
        "hearth_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.started.elapsed().as_secs(),
    );
    out.single(
        "hearth_sessions_live",
        "gauge",
        "Sessions in the gate now.",
        load(&gate.sessions_live),
    );
    out.single(
        "hearth_sessions_opened_total",
        "counter",
        "Sessions opened.",
        endpoint.sessions_opened,
    );
    out.single(
        "hearth_sessions_closed_total",
        "counter",
        "Sessions closed.",
        endpoint.sessions_closed,
    );
    out.single(
        "hearth_streams_open",
        "gauge",
        "TCP and WebSocket connections open now.",
        load(&gate.streams_open),
    );
    out.single(
        "hearth_web_connections_open",
        "gauge",
        "HTTP connections open on the web port now (upgraded WebSockets count as streams).",
        load(&state.web_port.open),
    );
    out.single(
        "hearth_web_connections_accepted_total",
        "counter",
        "Connections accepted on the web port, refused ones included.",
        load(&state.web_port.accepted),
    );
    out.family(
        "hearth_connections_total",
        "counter",
        "Stream connections accepted, by transport.",
    );
    out.value(
        "hearth_connections_total",
        &[("transport", "tcp")],
        load(&gate.tcp_accepted),
    );
    out.value(
        "hearth_connections_total",
        &[("transport", "websocket")],
        load(&gate.ws_accepted),
    );
    out.family(
        "hearth_udp_datagrams_total",
        "counter",
        "UDP datagrams, by direction.",
    );
    out.value(
        "hearth_udp_datagrams_total",
        &[("direction", "in")],
        endpoint.datagrams_in,
    );
    out.value(
        "hearth_udp_datagrams_total",
        &[("direction", "out")],
        endpoint.datagrams_out,
    );
    out.single(
        "hearth_handshakes_completed_total",
        "counter",
        "UDP handshakes completed.",
        endpoint.handshakes_completed,
    );
    out.single(
        "hearth_challenges_sent_total",
        "counter",
        "Stateless cookie challenges sent.",
        endpoint.challenges_sent,
    );
    out.family(
        "hearth_rejected_total",
        "counter",
        "Connections and packets rejected or dropped, by layer and reason.",
    );
    for reason in CutReason::ALL {
        out.value(
            "hearth_rejected_total",
            &[("layer", "gate"), ("reason", reason.name())],
            gate.cuts(reason),
        );
    }
    for reason in WebCutReason::ALL {
        out.value(
            "hearth_rejected_total",
            &[("layer", "web"), ("reason", reason.name())],
            state.web_port.cuts(reason),
        );
    }
    for (reason, count) in endpoint.drops.nonzero() {
        out.value(
            "hearth_rejected_total",
            &[("layer", "protocol"), ("reason", reason.name())],
            count,
        );
    }
    // Zero while the game handler runs inline; the policy these count is
    // documented with hearth_net::gate::Offload.
    let handlers = &gate.handler_queue;
    out.family(
        "hearth_handler_queue_events_total",
        "counter",
        "Events for offloaded gate handlers, by outcome: queued (deferred included), deferred \
         (lifecycle events queued past a full queue's bounds), dropped_unreliable (unreliable \
         messages at a full queue), shed (never delivered: of sessions closed for overload).",
    );
    for (outcome, count) in [
        ("queued", &handlers.queued),
        ("deferred", &handlers.deferred),
        ("dropped_unreliable", &handlers.unreliable_dropped),
        ("shed", &handlers.shed_events),
    ] {
        out.value(
            "hearth_handler_queue_events_total",
            &[("outcome", outcome)],
            load(count),
        );
    }
    out.single(
        "hearth_handler_queue_sessions_shed_total",
        "counter",
        "Sessions closed, or logins refused, because their shard's handler queue was full.",
        load(&handlers.sessions_shed),
    );
    let (waiting, waiting_bytes) = handlers.waiting();
    out.single(
        "hearth_handler_queue_waiting_events",
        "gauge",
        "Events waiting for offloaded gate handlers (queued or being handled), every shard's \
         queue summed: a handler falling behind shows here before its queue sheds sessions.",
        waiting,
    );
    out.single(
        "hearth_handler_queue_waiting_bytes",
        "gauge",
        "Payload bytes of the events waiting for offloaded gate handlers.",
        waiting_bytes,
    );
    out.single(
        "hearth_udp_forwarded_total",
        "counter",
        "Datagrams a gate shard received for another shard's session and passed on (the \
         kernel's steering was off or could not be installed).",
        load(&gate.udp_forwarded),
    );
    out.single(
        "hearth_udp_forward_dropped_total",
        "counter",
        "Datagrams for another shard dropped because its forwarding queue was full.",
        load(&gate.udp_forward_dropped),
    );
    let accounts = state.accounts.stats();
    for (reason, count) in [
        ("hash_pool_full", accounts.hash_pool_full),
        ("rate_limited_login", accounts.rate_limited_login),
        ("rate_limited_register", accounts.rate_limited_register),
    ] {
        out.value(
            "hearth_rejected_total",
            &[("layer", "accounts"), ("reason", reason)],
            count,
        );
    }
    out.single(
        "hearth_password_hashes_total",
        "counter",
        "Password hashes computed (argon2id), the dummy ones for unknown names included.",
        accounts.hashes_computed,
    );
    out.family("hearth_logins_total", "counter", "Game logins, by outcome.");
    for (outcome, count) in state.logins.snapshot() {
        out.value("hearth_logins_total", &[("outcome", outcome)], count);
    }
    out.family(
        "hearth_api_errors_total",
        "counter",
        "Web API errors, by code.",
    );
    for (code, count) in state.api_errors.snapshot() {
        out.value("hearth_api_errors_total", &[("code", code)], count);
    }
    game_host(&mut out, &state.game.counters);
    if let Some(lines) = &state.game.line_leases {
        line_leases(&mut out, lines);
    }
    if let Some(node) = &state.cluster {
        relay(&mut out, &node.relay);
        forward(&mut out, &node.forward);
    }
    out.0
}

/// In a cluster: the lines' leases and saves.
fn line_leases(out: &mut Out, lines: &crate::game_host::line_leases::LineLeaseCounters) {
    out.family(
        "hearth_line_saves_total",
        "counter",
        "Lines' whole states saved under their leases, by outcome (failed: refused as stale, too large, or the database).",
    );
    out.value(
        "hearth_line_saves_total",
        &[("outcome", "written")],
        load(&lines.saves),
    );
    out.value(
        "hearth_line_saves_total",
        &[("outcome", "failed")],
        load(&lines.saves_failed),
    );
    out.family(
        "hearth_lines_total",
        "counter",
        "Lines that changed node: restarted here from a dead node's save, moved here or away by a drain, lost to another node, a save that could not be restarted here, a move that failed.",
    );
    for (event, counter) in [
        ("restarted", &lines.restarted),
        ("moved_in", &lines.moved_in),
        ("moved_out", &lines.moved_out),
        ("lost", &lines.lost),
        ("unrestorable", &lines.unrestorable),
        ("move_failed", &lines.moves_failed),
    ] {
        out.value("hearth_lines_total", &[("event", event)], load(counter));
    }
    out.single(
        "hearth_line_pauses_total",
        "counter",
        "Times a line stopped ticking because its lease could not be renewed in time.",
        load(&lines.pauses),
    );
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn game_host(out: &mut Out, game: &crate::game_host::GameHostCounters) {
    out.single(
        "hearth_game_joins_total",
        "counter",
        "Players who entered the game's lines.",
        load(&game.joins),
    );
    out.single(
        "hearth_game_lines_opened_total",
        "counter",
        "Game lines opened.",
        load(&game.lines),
    );
    out.single(
        "hearth_game_messages_total",
        "counter",
        "Client game messages handed to a line.",
        load(&game.messages),
    );
    out.family(
        "hearth_game_messages_refused_total",
        "counter",
        "Client game messages that did not reach the game, by reason: undecodable (the session was closed), over the message's rate limit, or the host's queue full.",
    );
    for (reason, counter) in [
        ("undecodable", &game.undecodable),
        ("rate_limited", &game.rate_limited),
        ("queue_full", &game.messages_dropped),
    ] {
        out.value(
            "hearth_game_messages_refused_total",
            &[("reason", reason)],
            load(counter),
        );
    }
    out.single(
        "hearth_game_send_failures_total",
        "counter",
        "Game messages the gate could not send (session gone or backlogged).",
        load(&game.send_failures),
    );
    out.family(
        "hearth_game_saves_total",
        "counter",
        "Players' game data written to the database, by outcome.",
    );
    out.value(
        "hearth_game_saves_total",
        &[("outcome", "written")],
        load(&game.saves),
    );
    out.value(
        "hearth_game_saves_total",
        &[("outcome", "failed")],
        load(&game.save_failures),
    );
    // In a cluster: refused because the account now plays on another node.
    out.value(
        "hearth_game_saves_total",
        &[("outcome", "taken_over")],
        load(&game.saves_taken_over),
    );
    out.single(
        "hearth_game_load_permille",
        "gauge",
        "What a step of the game host costs, smoothed, in thousandths of its tick period.",
        load(&game.load_permille),
    );
    out.single(
        "hearth_game_refusing_newcomers_seconds",
        "gauge",
        "While the host is too busy to admit newcomers: the wait they are told (0: admitting).",
        load(&game.refusing_for_s),
    );
    out.single(
        "hearth_game_busy_spells_total",
        "counter",
        "Times the host turned too busy and began refusing newcomers.",
        load(&game.busy_spells),
    );
    out.single(
        "hearth_process_cpu_permille",
        "gauge",
        "The server process's CPU use, in thousandths of the cores it may run on (what admission reads).",
        load(&game.cpu_permille),
    );
    out.single(
        "hearth_game_budget_permille",
        "gauge",
        "The share of their byte budgets players are sent while the host sheds load, in thousandths (1000: all).",
        load(&game.budget_permille),
    );
}

/// In a cluster: players' messages between this node and the others.
fn relay(out: &mut Out, relay: &hearth_cluster::relay::RelayCounters) {
    out.family(
        "hearth_cluster_relay_messages_total",
        "counter",
        "Players' messages between nodes (zone chat, messages by name, announcements), by outcome: sent to other nodes, received from them, dropped as malformed or from a node running another version of the game, dropped for want of room, or by name and taken by no node.",
    );
    for (outcome, counter) in [
        ("sent", &relay.sent),
        ("received", &relay.received),
        ("malformed", &relay.malformed),
        ("foreign_game_version", &relay.foreign),
        ("dropped", &relay.dropped),
        ("undelivered", &relay.undelivered),
    ] {
        out.value(
            "hearth_cluster_relay_messages_total",
            &[("outcome", outcome)],
            load(counter),
        );
    }
}

/// In a cluster: messages about players who play in zones other nodes run.
fn forward(out: &mut Out, forward: &hearth_cluster::forward::ForwardCounters) {
    out.family(
        "hearth_cluster_forward_messages_total",
        "counter",
        "Messages about players who play across nodes (hand-overs, their clients' input, bytes for their clients, their data), by outcome: sent, received, malformed (or naming another sender than their subject), from a node running another version of the game, or dropped for want of room.",
    );
    for (outcome, counter) in [
        ("sent", &forward.sent),
        ("received", &forward.received),
        ("malformed", &forward.malformed),
        ("foreign_game_version", &forward.foreign),
        ("dropped", &forward.dropped),
    ] {
        out.value(
            "hearth_cluster_forward_messages_total",
            &[("outcome", outcome)],
            load(counter),
        );
    }
}
