"""Campaign spec: parsing, defaults, and line-numbered errors for every kind of mistake."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from probe.campaign.spec import (
    format_duration,
    key_lines,
    load_spec,
    parse_duration,
    parse_spec,
)
from probe.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """\
name = "t1"
targets = "t.csv"
out = "data"

[schedule]
interval = "20s"
runs = 3
"""


def _spec(tmp_path: Path, text: str, check_files: bool = False):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return load_spec(p, check_files=check_files)


def _error(tmp_path: Path, text: str) -> tuple[int, str]:
    with pytest.raises(ConfigError) as ei:
        _spec(tmp_path, text)
    msg = str(ei.value)
    m = re.match(rf"^{re.escape(str(tmp_path / 'c.toml'))}:(\d+): (.*)$", msg, re.S)
    assert m, f"not FILE:LINE: message: {msg!r}"
    return int(m.group(1)), m.group(2)


def test_documented_example_is_valid():
    spec = load_spec(REPO / "docs" / "campaign.example.toml")
    assert spec.name == "global-weekly"
    assert spec.schedule.interval == 6 * 3600 and spec.schedule.jitter == 20 * 60
    assert spec.schedule.runs == 28
    assert spec.upload is not None and spec.upload.dest.startswith("s3://")
    assert spec.retention.local_days == 30
    assert all(p.is_file() for p in spec.targets)


def test_minimal_spec_defaults_and_relative_paths(tmp_path):
    spec = _spec(tmp_path, MINIMAL)
    assert spec.targets == (tmp_path / "t.csv",)
    assert spec.data_dir == tmp_path / "data"
    assert spec.out == str(tmp_path / "data")
    assert spec.state_dir == tmp_path / "data" / "_campaign"
    assert spec.schedule.interval == 20.0 and spec.schedule.jitter == 0.0
    assert spec.schedule.mode == "interval"
    assert spec.upload is None and spec.trace == "none"
    assert spec.vantage.control_resolver == "1.1.1.1" and spec.vantage.discover is True
    assert spec.measure.concurrency == 64


def test_full_vantage_and_measure(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "ov.csv").write_text("prefix,cc,asn,as_name\n")
    (tmp_path / "t.csv").write_text("url\nhttps://example.org/\n")
    text = MINIMAL + (
        '[vantage]\ncountry = "de"\nsource_address = "127.10.1.1"\n'
        'proxy = "socks5://127.0.0.1:1080"\nresolver = "127.53.0.1:5353"\n'
        'control_resolver = "none"\nca_bundle = "ca.pem"\ngeoip_overrides = "ov.csv"\n'
        'vantage_id = "lab-1"\ndiscover = false\n'
        "[measure]\nconcurrency = 1\nper_host = 1\ntimeout = 3\nbody_bytes = 0\nbatch = 1\n"
    )
    spec = _spec(tmp_path, text, check_files=True)
    v = spec.vantage
    assert (v.country, v.source_address, v.resolver) == ("DE", "127.10.1.1", "127.53.0.1:5353")
    assert v.control_resolver is None and v.discover is False
    assert v.ca_bundle == tmp_path / "ca.pem" and v.geoip_overrides == tmp_path / "ov.csv"
    m = spec.measure
    assert (m.concurrency, m.per_host, m.timeout, m.body_bytes, m.batch) == (1, 1, 3.0, 0, 1)


def test_times_absolute_and_daily(tmp_path):
    base = MINIMAL.replace('interval = "20s"\nruns = 3\n', "")
    spec = _spec(tmp_path, base + "times = [2026-12-02T06:00:00Z, 2026-12-01T18:00:00+02:00]\n")
    assert spec.schedule.times == (
        datetime(2026, 12, 1, 16, 0, tzinfo=UTC),
        datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
    )
    assert spec.schedule.mode == "times" and spec.schedule.runs is None
    spec = _spec(tmp_path, base + "times = [18:00:00, 06:30:00]\nruns = 4\n")
    assert spec.schedule.daily == (time(6, 30), time(18, 0)) and spec.schedule.mode == "daily"


def test_out_url_uses_staging_and_uploads_there(tmp_path):
    text = MINIMAL.replace('out = "data"', 'out = "s3://bucket/prefix/"\nstaging_dir = "stage"')
    spec = _spec(tmp_path, text)
    assert spec.out_is_url and spec.out == "s3://bucket/prefix/"
    assert spec.data_dir == tmp_path / "stage"
    assert spec.upload is not None and spec.upload.dest == "s3://bucket/prefix"


def test_syntax_error_has_tomllib_line(tmp_path):
    line, msg = _error(tmp_path, MINIMAL + "\n[upload]\ndest = s3://no-quotes\n")
    assert line == 10
    assert "column" in msg


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (MINIMAL.replace('name = "t1"', 'name = "bad name!"'), 1, "name: 1-64 characters"),
        (MINIMAL.replace('name = "t1"\n', ""), 1, "missing key 'name'"),
        (MINIMAL + '[vantage]\ncountry = "DEU"\n', 9, "alpha-2"),
        (MINIMAL + '[vantage]\n\nsource_address = "host"\n', 10, "not an IP address"),
        (MINIMAL + '[vantage]\nresolver = "1.2.3.4:99999"\n', 9, "bad port"),
        (MINIMAL + '[vantage]\nproxy = "ftp://x"\n', 9, "vantage.proxy"),
        (MINIMAL + '[vantage]\ncolour = "red"\n', 9, "unknown key 'vantage.colour'"),
        (MINIMAL.replace('interval = "20s"', 'interval = "soon"'), 6, "expected a duration"),
        (MINIMAL.replace('interval = "20s"', 'interval = "0.5s"'), 6, "at least 1s"),
        (MINIMAL.replace("runs = 3", "runs = 0"), 7, "runs must be an integer"),
        (MINIMAL.replace("runs = 3", "runs = 3\njitter = \"1m\""), 8, "shorter than"),
        (MINIMAL.replace("runs = 3\n", ""), 5, "give runs = N or until"),
        (MINIMAL + 'times = [06:00:00]\n', 5, "either interval or times"),
        (MINIMAL + 'until = 2020-01-01\nstart = 2021-01-01\n', 8, "until must be after"),
        (MINIMAL + "[measure]\nconcurrency = 0\n", 9, "concurrency must be an integer"),
        (MINIMAL + '[measure]\ntimeout = "fast"\n', 9, "expected a duration"),
        (MINIMAL + "[upload]\nretries = 2\n", 8, "missing key 'dest'"),
        (MINIMAL + '[upload]\ndest = "relative/dir"\n', 9, "absolute path"),
        (MINIMAL + '[upload]\ndest = "s3://b/p"\nendpoint_url = "ftp://x"\n', 10, "http(s)"),
        (MINIMAL + "[retention]\nlocal_days = 3\n", 9, "once they are uploaded"),
        (MINIMAL + 'trace = "some"\n', 8, "unknown key 'schedule.trace'"),
        ('trace = "some"\n' + MINIMAL, 1, "trace must be one of"),
        ('colour = 1\n' + MINIMAL, 1, "unknown key 'colour'"),
    ],
)  # fmt: skip
def test_semantic_errors_name_the_line(tmp_path, text, line, fragment):
    got_line, msg = _error(tmp_path, text)
    assert fragment in msg
    assert got_line == line, msg


@pytest.mark.parametrize(
    "extra",
    [
        '[upload]\ndest = "s3://b/p"\naws_secret_access_key = "x"\n',
        '[upload]\ndest = "s3://b/p"\naccess_key = "x"\n',
        '[upload]\ndest = "s3://b/p"\ntoken = "x"\n',
        '[upload]\ndest = "s3://b/p"\nkey = "x"\n',
        '[vantage]\npassword = "x"\n',
    ],
)
def test_credentials_are_refused(tmp_path, extra):
    line, msg = _error(tmp_path, MINIMAL + extra)
    assert "never read from a campaign spec" in msg
    assert line == MINIMAL.count("\n") + extra.count("\n")


def test_credentials_in_urls_are_refused(tmp_path):
    line, msg = _error(tmp_path, MINIMAL + '[upload]\ndest = "s3://AKIA:sec@bucket/p"\n')
    assert line == 9 and "user or password" in msg
    line, msg = _error(
        tmp_path,
        MINIMAL.replace('out = "data"', 'out = "s3://u:p@bucket/x"'),
    )
    assert line == 3 and "user or password" in msg


def test_missing_files_are_reported_with_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(MINIMAL)
    with pytest.raises(ConfigError, match=r"c\.toml:2: targets: .*t\.csv is not a readable"):
        load_spec(p)
    (tmp_path / "t.csv").write_text("url\nhttps://example.org/\n")
    p.write_text(MINIMAL + '[vantage]\nca_bundle = "nope.pem"\n')
    with pytest.raises(ConfigError, match=r"c\.toml:9: vantage.ca_bundle: .*nope.pem"):
        load_spec(p)


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="no such campaign spec"):
        load_spec(tmp_path / "nope.toml")


def test_key_lines_tables_dotted_and_quoted():
    text = (
        'name = "x"\n'
        "# comment = 1\n"
        "[schedule]\n"
        "  interval = 5\n"
        '"quoted key" = 1\n'
        "[upload]\n"
        "a.b = 2\n"
        "times = [\n  1,\n  2,\n]\n"
    )
    lines = key_lines(text)
    assert lines[("name",)] == 1
    assert ("comment",) not in lines
    assert lines[("schedule",)] == 3 and lines[("schedule", "interval")] == 4
    assert lines[("schedule", "quoted key")] == 5
    assert lines[("upload", "a")] == 7 and lines[("upload", "a", "b")] == 7
    assert lines[("upload", "times")] == 8


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (2.5, 2.5), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("6h", 21600.0),
     ("1d", 86400.0), ("1h30m", 5400.0), ("1 h 30 m", 5400.0), ("500ms", 0.5), ("2w", 1209600.0)],
)  # fmt: skip
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "5x", "m5", True, None, [1], "1h-5m"])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_format_duration():
    assert format_duration(3600) == "1h"
    assert format_duration(5400) == "1h30m"
    assert format_duration(90061) == "1d1h1m1s"
    assert format_duration(0.25) == "0.25s"


def test_parse_spec_text_directly(tmp_path):
    spec = parse_spec(MINIMAL, tmp_path / "x.toml", check_files=False)
    assert spec.name == "t1" and spec.path == tmp_path / "x.toml"
