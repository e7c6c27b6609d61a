"""Docker's streamed messages: go-units sizes, the progress bar as dockerd draws it (moby's
jsonmessage tests' own cases), and the shapes of status, progress, aux and error lines."""

from __future__ import annotations

import json

import pytest

from skiff.engine import jsonmessage as jm


@pytest.mark.parametrize("size,text", [(0, "0B"), (999, "999B"), (1000, "1kB"),
                                       (1234567, "1.235MB"), (5_000_000, "5MB"),
                                       (2_129_920, "2.13MB"), (10**13, "10TB")])
def test_human_size_is_go_units(size: int, text: str) -> None:
    assert jm.human_size(size) == text


def test_progress_text_as_the_daemon_draws_it() -> None:
    assert jm.progress_text(None, None) == ""
    assert jm.progress_text(1, 0) == "      1B"
    assert jm.progress_text(50, 100) == "[" + "=" * 25 + ">" + " " * 25 + "]      50B/100B"
    assert jm.progress_text(100, 100) == "[" + "=" * 50 + ">]     100B/100B"
    assert jm.progress_text(200, 100) == "[" + "=" * 50 + ">]     200B"  # wonky total


def test_message_shapes() -> None:
    assert jm.status("Digest: sha256:x") == {"status": "Digest: sha256:x"}
    assert jm.status("Pulling from library/busybox", "latest") == {
        "status": "Pulling from library/busybox", "id": "latest"}
    assert jm.progress("Pull complete", "abc") == {"status": "Pull complete",
                                                   "progressDetail": {}, "id": "abc"}
    down = jm.progress("Downloading", "abc", 1, 2)
    assert down["progressDetail"] == {"current": 1, "total": 2} and down["progress"]
    assert jm.aux({"Tag": "v1"}) == {"progressDetail": {}, "aux": {"Tag": "v1"}}
    assert jm.error("boom") == {"errorDetail": {"message": "boom"}, "error": "boom"}
    assert jm.stream("Loaded image: x\n") == {"stream": "Loaded image: x\n"}
    line = jm.encode(jm.status("x"))
    assert line.endswith(b"\r\n") and json.loads(line) == {"status": "x"}


def test_from_progress_reads_any_progress_record() -> None:
    class P:
        id, status, current, total = "abc", "Extracting", 10, 20

    assert jm.from_progress(P())["progressDetail"] == {"current": 10, "total": 20}
