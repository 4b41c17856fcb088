"""`python -m backend.local run` (and `make run`) on ports that are taken: one line, nothing started."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from backend.local.__main__ import main as local_main
from backend.local.stack import LocalStack, PortInUse, ensure_port_free


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_taken_port_is_named_with_its_flag(taken_port: int) -> None:
    with pytest.raises(PortInUse) as caught:
        ensure_port_free("127.0.0.1", taken_port, "API", "--port (make run PORT=...)")
    message = str(caught.value)
    assert f"port {taken_port} on 127.0.0.1 is already in use" in message
    assert "--port" in message and "PORT=" in message and "\n" not in message


def test_port_zero_and_a_free_port_are_fine() -> None:
    ensure_port_free("127.0.0.1", 0, "API", "--port")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    ensure_port_free("127.0.0.1", free, "API", "--port")


@pytest.mark.parametrize(
    ("flag", "names"),
    [("--port", ("API", "--port", "PORT=")), ("--ui-port", ("web UI", "--ui-port", "UI_PORT="))],
)
def test_run_on_a_taken_port_says_one_line_and_starts_nothing(
    taken_port: int, flag: str, names: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    started = []
    monkeypatch.setattr(LocalStack, "_start", lambda self: started.append(self))  # would start moto
    other = "--ui-port" if flag == "--port" else "--port"
    assert local_main(["run", flag, str(taken_port), other, "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(taken_port) in lines[0] and all(name in lines[0] for name in names)
    assert started == []


def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        local_main(["run", "--port", "70000"])
    assert exited.value.code == 2
    assert "70000 is not a TCP port" in capsys.readouterr().err


def test_make_run_passes_its_port_variables_to_the_flags() -> None:
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "PORT ?= 8000\n" in makefile and "UI_PORT ?= 8501\n" in makefile
    assert "-m backend.local run --port $(PORT) --ui-port $(UI_PORT)" in makefile


def test_the_cutout_setting_chooses_the_stacks_engine(monkeypatch) -> None:
    """`--cutout estimate` (make run CUTOUT=estimate): the stack cuts out with the classical
    estimate even where the model is installed, as the scale and cost benchmarks need."""
    from backend.local import cutout

    started: list[LocalStack] = []

    def start_nothing(self: LocalStack) -> None:
        started.append(self)
        raise PortInUse("127.0.0.1", 1, "API", "--port")  # stop here: the engine is chosen by now

    monkeypatch.setattr(LocalStack, "_start", start_nothing)
    monkeypatch.setattr(LocalStack, "stop", lambda self: None)
    assert local_main(["run", "--port", "0", "--no-ui", "--cutout", "estimate"]) == 2
    assert len(started) == 1 and isinstance(started[0].cutout, cutout.ForegroundEstimate)


def test_asking_for_the_model_where_it_is_missing_is_one_line(monkeypatch, capsys) -> None:
    from backend.local import cutout

    def missing(distribution: str = cutout.MODEL_DISTRIBUTION) -> object:
        raise FileNotFoundError(f"{distribution} ships no model file here")

    monkeypatch.setattr(cutout, "model_path", missing)
    started = []
    monkeypatch.setattr(LocalStack, "_start", lambda self: started.append(self))
    assert local_main(["run", "--port", "0", "--no-ui", "--cutout", "model"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the local cut-out model is not installed")
    assert "--cutout" in lines[0] and started == []


def test_make_run_and_demo_pass_the_cutout_setting() -> None:
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "CUTOUT ?= auto\n" in makefile
    assert "-m backend.local run --port $(PORT) --ui-port $(UI_PORT) --cutout $(CUTOUT)" in makefile
    assert "-m backend.local demo --cutout $(CUTOUT)" in makefile
