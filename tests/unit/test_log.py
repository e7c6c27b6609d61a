"""skiff.log: forwards to `logging` where nothing was configured (so pytest's caplog and
daemons see records), and writes text or runc-style JSON lines where it was."""

from __future__ import annotations

import json
import logging

import pytest

from skiff import log


@pytest.fixture(autouse=True)
def unconfigured():
    saved = (log._Sink.level, log._Sink.stream, log._Sink.json)
    log._Sink.stream = None
    yield
    stream = log._Sink.stream
    if stream is not None and stream is not saved[1] and hasattr(stream, "name") \
            and not stream.name.startswith("<"):
        stream.close()
    log._Sink.level, log._Sink.stream, log._Sink.json = saved


def test_forwards_to_logging_when_not_configured(caplog):
    caplog.set_level(logging.DEBUG, "skiff.test")
    log.logger("skiff.test").debug("hello %s", "there")
    assert "hello there" in caplog.text


def test_json_lines_as_containerd_reads_them(tmp_path):
    path = tmp_path / "log.json"
    log.configure(log.DEBUG, str(path), json_format=True)
    log.logger("skiff").error("it broke: %d", 42)
    log.logger("skiff").debug("detail")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["level"], x["msg"]) for x in lines] == [("error", "it broke: 42"), ("debug", "detail")]
    assert lines[0]["time"].endswith("Z")


def test_level_filters_and_text_format(tmp_path):
    path = tmp_path / "log.txt"
    log.configure(log.WARNING, str(path))
    log.logger("skiff").info("quiet")
    log.logger("skiff").warning("loud")
    text = path.read_text()
    assert "quiet" not in text and " warning loud" in text
