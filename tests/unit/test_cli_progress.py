"""Pull and push progress as docker's jsonmessage shows it: the expected terminal bytes were
recorded from docker 28 (`script`, 120 and 80 columns) for the same stream of messages."""

from __future__ import annotations

import io

import pytest

from skiff.cli.progress import Display, go_duration, progress_text
from skiff.errors import SkiffError

L1, L2 = "111111111111", "222222222222"


def pull_messages() -> list[dict[str, object]]:
    msgs: list[dict[str, object]] = [
        {"status": "Pulling from library/busybox", "id": "latest"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": L1},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": L2},
        {"status": "Waiting", "progressDetail": {}, "id": L2}]
    for i in range(0, 50_000_001, 10_000_000):
        msgs.append({"status": "Downloading", "id": L1, "progress": "[>  ] x",
                     "progressDetail": {"current": i, "total": 50_000_000}})
    msgs += [{"status": "Verifying Checksum", "progressDetail": {}, "id": L1},
             {"status": "Download complete", "progressDetail": {}, "id": L1},
             {"status": "Extracting", "progressDetail": {"current": 32768, "total": 50_000_000},
              "progress": "x", "id": L1},
             {"status": "Pull complete", "progressDetail": {}, "id": L1},
             {"status": "Already exists", "progressDetail": {}, "id": L2},
             {"status": "Digest: sha256:" + "d" * 64},
             {"status": "Status: Downloaded newer image for busybox:latest"}]
    return msgs


def _line(ident: str, text: str, up: int) -> str:
    return f"\x1b[{up}A\x1b[2K\r{ident}: {text}\r\x1b[{up}B"


def _bar(done: int) -> str:
    return "[" + "=" * done + ">" + " " * (50 - done) + "] "


def expected_terminal(wide: bool) -> str:
    def dl(mb: int) -> str:
        bar = _bar(mb) if wide else ""
        return _line(L1, f"Downloading {bar}{'%8s' % f'{mb}MB' if mb else '      0B'}/50MB", 2)
    text = "latest: Pulling from library/busybox\n"
    text += "\n" + _line(L1, "Pulling fs layer ", 1)
    text += "\n" + _line(L2, "Pulling fs layer ", 1) + _line(L2, "Waiting ", 1)
    text += "".join(dl(mb) for mb in (0, 10, 20, 30, 40, 50))
    text += _line(L1, "Verifying Checksum ", 2) + _line(L1, "Download complete ", 2)
    text += _line(L1, f"Extracting {_bar(0) if wide else ''} 32.77kB/50MB", 2)
    text += _line(L1, "Pull complete ", 2) + _line(L2, "Already exists ", 1)
    text += "Digest: sha256:" + "d" * 64 + "\nStatus: Downloaded newer image for busybox:latest\n"
    return text


RECORDED_120 = (
    "latest: Pulling from library/busybox\n\n\x1b[1A\x1b[2K\r111111111111: Pulling fs layer \r"
    "\x1b[1B\n\x1b[1A\x1b[2K\r222222222222: Pulling fs layer \r\x1b[1B\x1b[1A\x1b[2K\r"
    "222222222222: Waiting \r\x1b[1B\x1b[2A\x1b[2K\r111111111111: Downloading [>"
    "                                                  ]       0B/50MB\r\x1b[2B")


@pytest.mark.parametrize("wide", [True, False])
def test_terminal_redraws_each_layer_in_place(wide: bool) -> None:
    out = io.StringIO()
    Display(out, terminal=True, width=120 if wide else 80).show_all(pull_messages())
    assert out.getvalue() == expected_terminal(wide)
    if wide:
        assert out.getvalue().startswith(RECORDED_120)


def test_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    Display(out, terminal=False).show_all(pull_messages())
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox", f"{L1}: Pulling fs layer",
        f"{L2}: Pulling fs layer", f"{L2}: Waiting", f"{L1}: Verifying Checksum",
        f"{L1}: Download complete", f"{L1}: Pull complete", f"{L2}: Already exists",
        "Digest: sha256:" + "d" * 64, "Status: Downloaded newer image for busybox:latest"]


def test_errors_end_the_stream_and_aux_is_kept() -> None:
    out = io.StringIO()
    display = Display(out, terminal=False)
    display.show({"aux": {"Tag": "v1", "Digest": "sha256:x", "Size": 527}, "progressDetail": {}})
    display.show({"stream": "Loaded image: a:b\n"})
    assert display.aux == [{"Tag": "v1", "Digest": "sha256:x", "Size": 527}]
    with pytest.raises(SkiffError, match="^manifest unknown$"):
        display.show({"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"})
    with pytest.raises(SkiffError, match="^old style$"):
        display.show({"error": "old style"})
    assert out.getvalue() == "Loaded image: a:b\n"


def test_progress_text() -> None:
    assert progress_text({}, 200) == ""
    assert progress_text({"current": 1500}, 200) == "   1.5kB"
    assert progress_text({"current": 600, "total": 500}, 80) == "    600B"
    assert progress_text({"current": 3, "total": 10, "units": "items"}, 80) == "3/10 items"
    assert progress_text({"current": 5, "total": 10, "hidecounts": True}, 120) == _bar(25)
    # a start time gives the time left
    assert progress_text({"current": 50, "total": 100, "start": 1000}, 80, now=1010) == \
        "     50B/100B 10s"
    assert go_duration(3725) == "1h2m5s" and go_duration(61) == "1m1s" and go_duration(0) == "0s"
