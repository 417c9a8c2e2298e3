"""The ``isales`` command as a person meets it: help everywhere, exit codes that match the
help, times as the server sent them, one clean warning line, proxies, odd base URLs."""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner, Result

import isales_async.cli._settings as cli_module
from isales_async import ISalesClient, RetryPolicy
from isales_async.cli import cli
from isales_async.testing import DEFAULT_AK, DEFAULT_SK, FakeISales

from .forward_proxy import proxy_in_thread
from .server_thread import server_in_thread


@pytest.fixture
def threaded() -> Iterator[FakeISales]:
    with server_in_thread() as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def env(base_url: str, **more: str) -> dict[str, str]:
    return {"ISALES_BASE_URL": base_url, "ISALES_AK": DEFAULT_AK, "ISALES_SK": DEFAULT_SK, "ISALES_VDN_ID": "1", **more}


def run(base_url: str, *args: str, **more_env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env(base_url, **more_env), catch_exceptions=False)


# -- help text ------------------------------------------------------------------------------


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"external-results list", "external-results update", "journal export", "writeback", "demo"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "isales" for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert command.help, f"isales {' '.join(path)} has no help text"
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    assert [o.opts[0] for o in options if not o.help] == []
    result = CliRunner().invoke(cli, [*path, "--help"])
    first_words = " ".join(command.help.split()[:4])
    assert result.exit_code == 0 and first_words in " ".join(result.output.split())


# -- usage errors and unreachable servers exit 2, in every command ---------------------------------

NEEDS_THE_SERVER = [
    ["obs-codes"],
    ["business-results"],
    ["external-results", "list"],
    ["external-results", "show", "77"],
    ["external-results", "create", "--display-result", "busy", "--obs-code", "00605"],
    ["external-results", "update", "77", "--display-result", "busy", "--obs-code", "00605"],
    ["call-result", "1-1"],
    ["call-results", "1001"],
]


def a_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's clients try once: an unreachable server fails at once instead of after the backoff."""
    monkeypatch.setattr(cli_module, "ISalesClient", functools.partial(ISalesClient, retry=RetryPolicy(attempts=1)))


@pytest.mark.parametrize(
    "args", [*NEEDS_THE_SERVER, ["writeback", "FILE"], ["writeback", "FILE", "--no-check"]], ids=" ".join
)
def test_an_unreachable_server_exits_2_with_one_line(args: list[str], tmp_path: Path, one_attempt: None) -> None:
    source = tmp_path / "results.csv"
    source.write_text("dataId,busiResult\n1,B01\n")
    args = [str(source) if a == "FILE" else a for a in args]
    result = run(f"http://127.0.0.1:{a_closed_port()}", *args, *(["--no-progress"] if args[0] == "writeback" else []))
    assert result.exit_code == 2, result.output
    assert "ConnectError" in result.stderr or "the server is unreachable" in result.stderr
    assert "Traceback" not in result.output


USAGE_ERRORS = [
    *([*args, "--no-such-option"] for args in NEEDS_THE_SERVER),
    ["call-results", "1001", "--begin", "yesterday"],
    ["writeback", "no-such-file.csv"],
    ["journal", "show", "no-such-journal.sqlite"],
    ["journal", "export", "no-such-journal.sqlite"],
    ["fake-server", "--port", "eighty"],
    ["demo", "--records", "many"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=" ".join)
def test_a_usage_error_exits_2(args: list[str], threaded: FakeISales) -> None:
    result = run(threaded.base_url, *args)
    assert result.exit_code == 2 and "Usage:" in result.output
    assert threaded.requests == []


@pytest.mark.parametrize("value", ["0", "10000", "-1"])
def test_a_vdn_id_out_of_range_says_its_range(value: str, threaded: FakeISales) -> None:
    by_flag = run(threaded.base_url, "--vdn-id", value, "obs-codes")
    from_env = run(threaded.base_url, "obs-codes", ISALES_VDN_ID=value)
    for result in (by_flag, from_env):
        assert result.exit_code == 2 and "1<=x<=9999" in result.output and "missing" not in result.output
    assert threaded.requests == []


def test_an_https_url_to_a_plain_http_port_is_explained(threaded: FakeISales) -> None:
    result = run(threaded.base_url.replace("http://", "https://"), "obs-codes")
    assert result.exit_code == 2
    assert "TLSError" in result.stderr and "the server answered in plain HTTP, not TLS" in result.stderr


# -- what it prints ----------------------------------------------------------------------------


def test_json_prints_the_servers_local_times_without_an_offset(threaded: FakeISales) -> None:
    call = threaded.campaign_calls["1001"][0]
    result = run(threaded.base_url, "call-result", call["callId"], "--json")
    printed = orjson.loads(result.stdout)
    assert result.exit_code == 0
    assert printed["ack_begin_time"] == call["ackBeginTime"].replace(" ", "T")  # naive: no +00:00, no Z


@pytest.mark.filterwarnings("default:base_url .* uses plain http:UserWarning")
def test_the_plain_http_warning_is_one_clean_line_on_stderr(threaded: FakeISales, tmp_path: Path) -> None:
    source = tmp_path / "results.csv"
    source.write_text("dataId,busiResult\n1,B01\n")
    for args in (["obs-codes", "--json"], ["writeback", str(source), "--no-progress", "--json"]):
        result = run(threaded.base_url, *args)
        warnings = [line for line in result.stderr.splitlines() if "plain http" in line]
        host = threaded.base_url.removeprefix("http://")
        assert warnings == [
            f"warning: base_url {host} uses plain http: the signed requests and their data travel unencrypted"
        ]
        assert "ISalesClient(" not in result.stderr and "UserWarning" not in result.stderr
        assert "plain http" not in result.stdout


def test_a_base_url_with_the_api_path_works(threaded: FakeISales) -> None:
    result = run(threaded.base_url + "/rest/isales/v1/openapi/", "obs-codes", "--json", "--max-items", "3")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    assert {r.path.split("?")[0] for r in threaded.requests} == {
        "/rest/isales/v1/openapi/campaigns/1/queryOBSResultCode"
    }


# -- proxies ---------------------------------------------------------------------------------


def test_the_cli_goes_through_the_proxy_of_the_environment_unless_told_not_to(threaded: FakeISales) -> None:
    with proxy_in_thread() as proxy:
        through = run(threaded.base_url, "obs-codes", "--json", "--max-items", "3", HTTP_PROXY=proxy.url)
        forwarded = len(proxy.forwarded)
        direct = run(threaded.base_url, "--no-proxy", "obs-codes", "--json", "--max-items", "3", HTTP_PROXY=proxy.url)
        bypassed = run(
            threaded.base_url, "obs-codes", "--json", "--max-items", "3", HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1"
        )
    assert (through.exit_code, direct.exit_code, bypassed.exit_code) == (0, 0, 0)
    assert forwarded == 1 and len(proxy.forwarded) == 1 and len(threaded.requests) == 3
    assert threaded.rejected_auth == 0
