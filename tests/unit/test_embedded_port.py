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
