#!/usr/bin/env python3
"""The reference ikcp.c as a KCP echo server or verifying client, for interop tests.

It drives ikcp.c through the PyPI package `kcp` (which compiles the original C file)
and mirrors `kcp-peer`'s command line and message pattern, so either side of a test
can be Hearth or the C original:

    kcp_ref_peer.py server ADDR [--conv N] [--profile P] [--mtu M] ...
    kcp_ref_peer.py client ADDR [--conv N] [--profile P] [--count C] [--size S] ...

The client prints `count=.. lost=.. avg=..ms p50=..ms p99=..ms max=..ms` and exits 1
on a mismatched echo or a timeout. The package cannot set nodelay=2, so the fast
profile runs ikcp_nodelay(1, 10, 2, 1).
"""

import argparse
import socket
import sys
import time

from kcp import KCP

PROFILES = {  # no_delay, interval, resend, no congestion control
    "default": (False, 10, 0, False),
    "normal": (False, 10, 0, True),
    "fast": (True, 10, 2, True),
}


def pattern(index, size):
    """Same bytes as kcp-peer's pattern::message."""
    return bytes(
        (((index * 131 + i * 7) & 0xFFFFFFFF) ^ (i >> 8)) & 0xFF for i in range(size)
    )


class Clock:
    def __init__(self):
        self.start = time.monotonic()

    def ms(self):
        return int((time.monotonic() - self.start) * 1000) & 0xFFFFFFFF


def make_kcp(args, conv, send):
    no_delay, interval, resend, no_cc = PROFILES[args.profile]
    kcp = KCP(
        conv,
        max_transmission=args.mtu,
        no_delay=no_delay,
        update_interval=interval,
        resend_count=resend,
        no_congestion_control=no_cc,
        send_window_size=args.sndwnd,
        receive_window_size=args.rcvwnd,
    )
    kcp.include_outbound_handler(lambda _kcp, data: send(data))
    return kcp


def received(kcp):
    while kcp.get_next_packet_size() >= 0:
        yield bytes(kcp.get_received())


def serve(args, addr):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.002)
    print(f"kcp_ref_peer server: echoing on {sock.getsockname()}", file=sys.stderr, flush=True)
    clock = Clock()
    sessions = {}
    while True:
        try:
            data, peer = sock.recvfrom(65536)
        except socket.timeout:
            data = None
        now = clock.ms()
        if data is not None and len(data) >= 4:
            conv = int.from_bytes(data[:4], "little")
            key = (peer, conv)
            if key not in sessions:
                sessions[key] = make_kcp(args, conv, lambda d, p=peer: sock.sendto(d, p))
                sessions[key].update(now)
            kcp = sessions[key]
            try:
                kcp.receive(data)
            except Exception as error:  # the binding raises on any negative ikcp_input
                print(f"kcp_ref_peer server: dropped datagram: {error}", file=sys.stderr)
                continue
            for message in received(kcp):
                kcp.enqueue(message)
        for kcp in sessions.values():
            kcp.update(now)


def run_client(args, addr):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(addr)
    sock.settimeout(0.001)
    kcp = make_kcp(args, args.conv, sock.send)
    clock = Clock()
    sent_at = []
    next_send = 0
    next_check = 0
    rtts = []
    deadline = args.timeout * 1000
    while next_check < args.count and clock.ms() < deadline:
        now = clock.ms()
        while next_send < args.count and len(sent_at) < args.window:
            kcp.enqueue(pattern(next_send, args.size))
            sent_at.append(now)
            next_send += 1
        kcp.update(now)
        try:
            while True:
                datagram = sock.recv(65536)
                sock.settimeout(0)
                try:
                    kcp.receive(datagram)
                except Exception as error:  # e.g. a stray datagram of another conv
                    print(f"kcp_ref_peer client: dropped datagram: {error}", file=sys.stderr)
        except (socket.timeout, BlockingIOError):
            pass
        sock.settimeout(0.001)
        now = clock.ms()
        for message in received(kcp):
            expected = pattern(next_check, args.size)
            if message != expected:
                print(
                    f"kcp_ref_peer client: echo of message {next_check} differs "
                    f"({len(message)} bytes back, {len(expected)} expected)",
                    file=sys.stderr,
                )
                return 1
            rtts.append(now - sent_at.pop(0))
            next_check += 1
    rtts.sort()
    pick = lambda p: rtts[min(len(rtts) * p // 100, len(rtts) - 1)] if rtts else 0
    avg = sum(rtts) // len(rtts) if rtts else 0
    lost = args.count - len(rtts)
    print(
        f"count={args.count} lost={lost} avg={avg}ms p50={pick(50)}ms "
        f"p99={pick(99)}ms max={rtts[-1] if rtts else 0}ms",
        flush=True,
    )
    return 0 if lost == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("addr", help="HOST:PORT")
    parser.add_argument("--conv", type=int, default=1)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    parser.add_argument("--mtu", type=int, default=1400)
    parser.add_argument("--sndwnd", type=int, default=128)
    parser.add_argument("--rcvwnd", type=int, default=128)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--timeout", type=int, default=60)
    args = parser.parse_args()
    host, port = args.addr.rsplit(":", 1)
    addr = (host, int(port))
    if args.role == "server":
        serve(args, addr)
        return 0
    return run_client(args, addr)


if __name__ == "__main__":
    sys.exit(main())
