"""Slow and numerous clients: request heads have a deadline, connections a limit, and the
service keeps answering /healthz throughout (loopback only, bounded in count and time)."""

from __future__ import annotations

import socket
import time

import httpx

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: driftline\r\nX-Slow: "


def _open_slow_connections(server, count: int) -> list[socket.socket]:
    host, port = server.url.removeprefix("http://").split(":")
    connections = []
    for _ in range(count):
        connection = socket.create_connection((host, int(port)), timeout=10)
        connection.sendall(SLOW_HEAD)  # never finished
        connections.append(connection)
    return connections


def _closed_by_server(connection: socket.socket, deadline: float) -> bool:
    connection.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slow_header_connections_are_closed_while_healthz_keeps_answering(live_server):
    server = live_server({"server": {"header_timeout": "4s"}})
    opened = time.monotonic()
    slow = _open_slow_connections(server, 300)
    try:
        # Answered while all 300 are still open (well inside their 4 s deadline).
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - opened < 3.0
        # Dribbling one more header byte does not buy time: the deadline is for the whole head.
        for connection in slow[:50]:
            connection.sendall(b"x")
        deadline = opened + 15
        closed = sum(_closed_by_server(connection, deadline) for connection in slow)
        assert closed == len(slow)
        assert 3.5 < time.monotonic() - opened < 15
    finally:
        for connection in slow:
            connection.close()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_connections_above_the_limit_are_shed_with_503_until_the_slow_ones_are_cut(live_server):
    server = live_server({"server": {"header_timeout": "2s", "limit_concurrency": 40}})
    slow = _open_slow_connections(server, 60)
    try:
        shed = httpx.get(f"{server.url}/healthz", timeout=5)
        assert shed.status_code == 503
        deadline = time.monotonic() + 10
        assert all(_closed_by_server(connection, deadline) for connection in slow)
    finally:
        for connection in slow:
            connection.close()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_an_idle_keep_alive_connection_gets_the_head_deadline_again(live_server):
    server = live_server({"server": {"header_timeout": "1s", "timeout_keep_alive": "30s"}})
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: driftline\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head, never finished
        started = time.monotonic()
        assert _closed_by_server(connection, started + 8)
        assert 0.8 < time.monotonic() - started < 5


def test_a_request_head_past_max_header_bytes_closes_the_connection(live_server):
    server = live_server({"server": {"header_timeout": "30s", "max_header_bytes": 4096}})
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(SLOW_HEAD)
        started = time.monotonic()
        sent = 0
        try:
            while sent < 1024 * 1024 and time.monotonic() - started < 10:
                connection.sendall(b"a" * 1024)  # one header value that never ends
                sent += 1024
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        # Closed long before the 30 s deadline (bytes may still sit in the loopback buffers).
        assert _closed_by_server(connection, started + 10)
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
