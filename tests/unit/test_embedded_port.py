"""The embedded server's TCP port is drawn below the kernel's ephemeral range, so a client
socket cannot take it between two starts; a taken remembered port is replaced."""

from __future__ import annotations

import socket
from pathlib import Path

from loadgen import embedded


def test_a_new_port_lies_below_the_ephemeral_range_and_is_free() -> None:
    low = embedded._ephemeral_low()
    for _ in range(20):
        port = embedded._free_port(None)
        assert embedded._PORT_FLOOR <= port < low
        assert embedded._bindable(port)


def test_a_taken_remembered_port_is_replaced(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((embedded.TCP_HOST, 0))
        holder.listen()
        taken = holder.getsockname()[1]
        assert not embedded._bindable(taken)
        assert embedded._free_port(taken) != taken


def test_an_unreadable_port_range_falls_back_to_the_usual_bound(tmp_path: Path) -> None:
    assert embedded._ephemeral_low(str(tmp_path / "absent")) == 32768
    (tmp_path / "range").write_text("40000\t60999\n")
    assert embedded._ephemeral_low(str(tmp_path / "range")) == 40000


def test_a_port_left_in_time_wait_by_a_stopped_server_is_still_its_own() -> None:
    """The server closes first (as PostgreSQL does on a client's Terminate), so its side of
    the connection waits in TIME_WAIT on the port after the listener is gone: the port is
    kept, as PostgreSQL itself can bind it again."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((embedded.TCP_HOST, 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection((embedded.TCP_HOST, port))
    served, _ = listener.accept()
    served.close()  # the server's side closes first: its socket goes to TIME_WAIT
    assert client.recv(1) == b""
    client.close()
    assert not embedded._bindable(port)  # still listening: taken
    listener.close()
    assert embedded._bindable(port)
    assert embedded._free_port(port) == port
