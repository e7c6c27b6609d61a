"""`engine.netns_wiring` without a container: the socket skiffd serves (root's only, gone at
close), a request handed to its wire callable, the callable's error the hook's failure with
its text, a bad request refused without a call, and a skiffd that is not there."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from skiff.engine.netns_wiring import NetnsWiring, _parse, ask_wiring
from skiff.errors import NetworkConflict


def test_a_request_is_wired_and_answered(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []
    wiring = NetnsWiring(str(tmp_path / "run" / "netns.sock"), lambda *a: calls.append(a))
    try:
        path = wiring.ensure()
        assert wiring.ensure() == path  # one socket, one thread
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
        ask_wiring(path, "c" * 64, 4242)
        assert calls == [("c" * 64, "/proc/4242/ns/net")]
    finally:
        wiring.close()
    assert not Path(path).exists()
    wiring.close()  # twice: nothing more to do


def test_the_wirings_error_fails_the_hook_with_its_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def wire(cid: str, key: str) -> None:
        raise NetworkConflict("Address already in use: 10.0.0.2")

    wiring = NetnsWiring(str(tmp_path / "netns.sock"), wire)
    try:
        with pytest.raises(SystemExit) as e:
            ask_wiring(wiring.ensure(), "c" * 64, 1)
        assert e.value.code == 1
        assert capsys.readouterr().err == "Address already in use: 10.0.0.2\n"
    finally:
        wiring.close()


def test_no_skiffd_to_ask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ask_wiring(str(tmp_path / "netns.sock"), "c" * 64, 1)
    assert "skiffd cannot wire the container's network" in capsys.readouterr().err


@pytest.mark.parametrize("line", [b"", b"abc", b"abc /etc/passwd", b"abc /proc/x/ns/net",
                                  b"abc /proc/1/ns/net more"])
def test_a_bad_request_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError, match="bad request"):
        _parse(line)
