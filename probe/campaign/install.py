"""``res64 campaign install``: a systemd service + timer, or a crontab line, for a campaign.

The timer (or cron) starts ``res64 campaign run --once SPEC`` at the schedule's times; each start
runs the next run (or continues an interrupted one) and drains the upload queue.  systemd adds
the jitter (``RandomizedDelaySec``) and runs a start missed while the host was off once at
boot (``Persistent=true``); cron gets ``--delay`` instead.

The text builders are pure.  The I/O — default command, writing the units, and checking them
with ``systemd-analyze verify`` — is in the last section.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from probe.campaign.spec import CampaignSpec, ScheduleSpec, format_duration
from probe.errors import ConfigError

VERIFY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Units:
    """A systemd service and timer for one campaign."""

    name: str  # without suffix
    service: str
    timer: str


def unit_name(spec: CampaignSpec) -> str:
    return "res64-campaign-" + re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)


def systemd_quote(arg: str) -> str:
    """One ExecStart= argument: specifiers and variables escaped, quoted when needed."""
    s = arg.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", s) or not s:
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def on_calendar(sched: ScheduleSpec) -> list[str] | None:
    """``OnCalendar=`` values (UTC) for the schedule, or None if it has no calendar form."""
    if sched.times:
        return [f"{t:%Y-%m-%d %H:%M:%S} UTC" for t in sched.times]
    if sched.daily:
        return [f"*-*-* {t:%H:%M:%S} UTC" for t in sched.daily]
    i = sched.interval
    if i is None or i != int(i):
        return None
    i = int(i)
    if i == 7 * 86400:
        return ["Mon *-*-* 00:00:00 UTC"]
    if i == 86400:
        return ["*-*-* 00:00:00 UTC"]
    if i % 3600 == 0 and 24 % (i // 3600) == 0:
        return [f"*-*-* 00/{i // 3600}:00:00 UTC"]
    if i % 60 == 0 and 60 % (i // 60) == 0:
        return [f"*-*-* *:00/{i // 60}:00 UTC"]
    if i < 60 and 60 % i == 0:
        return [f"*-*-* *:*:00/{i} UTC"]
    return None


def systemd_units(
    spec: CampaignSpec, *, command: list[str], env_file: Path | None = None, user: bool = False
) -> Units:
    """Service (one run per start) and timer text for ``spec`` (``user``: a user unit)."""
    name = unit_name(spec)
    doc = "file://" + quote(str(spec.path)).replace("%", "%%")  # %% escapes a specifier
    sched = spec.schedule
    exec_start = " ".join(
        systemd_quote(a) for a in [*command, "campaign", "run", "--once", str(spec.path)]
    )
    service = [
        "[Unit]",
        f"Description=res64 campaign {spec.name}: one measurement run",
        f"Documentation={doc}",
    ]
    if not user:  # a user manager cannot order itself after system targets
        service += ["Wants=network-online.target", "After=network-online.target"]
    service += [
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={exec_start}",
    ]
    if env_file is not None:
        service += [
            "# Upload credentials (never in the spec): AWS_ACCESS_KEY_ID=..., "
            "AWS_SECRET_ACCESS_KEY=... (file mode 0600)",
            f"EnvironmentFile=-{env_file}",
        ]
    service += [
        "# SIGTERM flushes the finished measurements; the next start resumes the run",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=120",
        "Nice=10",
        "",
    ]
    timer = [
        "[Unit]",
        f"Description=res64 campaign {spec.name}: schedule",
        f"Documentation={doc}",
        "",
        "[Timer]",
    ]
    cal = on_calendar(sched)
    if cal is not None:
        timer += [f"OnCalendar={c}" for c in cal]
        timer.append("Persistent=true")
    else:
        assert sched.interval is not None
        timer += [
            "# this interval has no calendar form: a monotonic timer (Persistent= needs "
            "OnCalendar=; a start missed while off happens one interval after boot)",
            "OnActiveSec=10s",
            f"OnUnitActiveSec={math.ceil(sched.interval)}s",
        ]
    if sched.jitter > 0:
        timer.append(f"RandomizedDelaySec={math.ceil(sched.jitter)}s")
    timer += [
        "AccuracySec=1s",
        f"Unit={name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return Units(name=name, service="\n".join(service), timer="\n".join(timer))


def _cron_fields(sched: ScheduleSpec) -> list[str]:
    if sched.times:
        return [f"{t.minute} {t.hour} {t.day} {t.month} *" for t in sched.times]
    if sched.daily:
        return [f"{t.minute} {t.hour} * * *" for t in sched.daily]
    i = sched.interval
    assert i is not None
    hint = "use the systemd timer (res64 campaign install) or the foreground loop"
    if i != int(i) or int(i) % 60:
        raise ConfigError(
            f"cron cannot run every {format_duration(i)} (whole minutes only); {hint}"
        )
    m = int(i) // 60
    if m == 1:
        return ["* * * * *"]
    if m < 60 and 60 % m == 0:
        return [f"*/{m} * * * *"]
    if m % 60 == 0 and m // 60 < 24 and 24 % (m // 60) == 0:
        return [f"0 */{m // 60} * * *"]
    if m == 1440:
        return ["0 0 * * *"]
    if m == 7 * 1440:
        return ["0 0 * * 1"]
    raise ConfigError(f"cron cannot express an interval of {format_duration(i)}; {hint}")


def crontab_lines(spec: CampaignSpec, *, command: list[str], log: Path | None = None) -> list[str]:
    """Crontab lines (times in UTC) that start one run each, with a random delay."""
    args = [*command, "campaign", "run", "--once", "--delay", str(spec.path)]
    cmd = " ".join(shlex.quote(a) for a in args)
    if log is not None:
        cmd += f" >> {shlex.quote(str(log))} 2>&1"
    cmd = cmd.replace("%", "\\%")
    lines = [
        f"# res64 campaign {spec.name}: times are UTC (with cronie, put CRON_TZ=UTC above; "
        "otherwise convert them to the host's time zone)"
    ]
    lines += [f"{fields} {cmd}" for fields in _cron_fields(spec.schedule)]
    return lines


def unit_dir(*, user: bool, home: Path | None = None) -> Path:
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or str((home or Path.home()) / ".config")
        return Path(base) / "systemd" / "user"
    return Path("/etc/systemd/system")


def env_file_path(spec: CampaignSpec, *, user: bool, home: Path | None = None) -> Path:
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or str((home or Path.home()) / ".config")
        return Path(base) / "res64" / f"{spec.name}.env"
    return Path("/etc/res64") / f"{spec.name}.env"


def enable_hint(units: Units, *, user: bool) -> list[str]:
    flag = " --user" if user else ""
    lines = [
        f"systemctl{flag} daemon-reload",
        f"systemctl{flag} enable --now {units.name}.timer",
        f"systemctl{flag} list-timers {units.name}.timer",
    ]
    if user:
        lines.append("loginctl enable-linger $USER   # run while logged out")
    return lines


# --------------------------------------------------------------------------------------------
# I/O


def default_command() -> list[str]:
    """How systemd/cron should start res64: the ``res64`` script, else this Python."""
    exe = shutil.which("res64")
    if exe:
        return [str(Path(exe).resolve())]
    return [sys.executable, "-m", "probe.cli"]


@dataclass
class Verification:
    ok: bool
    output: str


def verify_units(paths: list[Path]) -> Verification | None:
    """``systemd-analyze verify`` the unit files; None when systemd-analyze is missing.

    User units are checked like system units: ``--user`` needs a running user manager.
    """
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None
    args = [tool, "verify", *(str(p) for p in paths)]
    try:
        p = subprocess.run(
            args, capture_output=True, text=True, timeout=VERIFY_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Verification(False, f"systemd-analyze did not run: {exc}")
    out = (p.stdout + p.stderr).strip()
    return Verification(p.returncode == 0, out)


@dataclass
class InstallResult:
    files: dict[Path, str] = field(default_factory=dict)  # path -> text (written unless dry)
    written: bool = False
    crontab: list[str] = field(default_factory=list)
    verification: Verification | None = None
    hints: list[str] = field(default_factory=list)


def install_campaign(
    spec: CampaignSpec,
    *,
    user: bool = False,
    cron: bool = False,
    dry_run: bool = False,
    command: list[str] | None = None,
    directory: Path | None = None,
) -> InstallResult:
    """Write (or with ``dry_run`` only build) the units, and verify them; or a crontab line."""
    cmd = command or default_command()
    res = InstallResult()
    if cron:
        res.crontab = crontab_lines(spec, command=cmd, log=spec.state_dir / f"{spec.name}.log")
        res.hints = ["add the lines with `crontab -e` (nothing was changed)"]
        return res
    units = systemd_units(spec, command=cmd, env_file=env_file_path(spec, user=user), user=user)
    d = directory or unit_dir(user=user)
    res.files = {d / f"{units.name}.service": units.service, d / f"{units.name}.timer": units.timer}
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="res64-units-") as tmp:
            paths = []
            for p, text in res.files.items():
                q = Path(tmp) / p.name
                q.write_text(text)
                paths.append(q)
            res.verification = verify_units(paths)
        return res
    try:
        d.mkdir(parents=True, exist_ok=True)
        for p, text in res.files.items():
            tmp_path = p.with_name(f".{p.name}.tmp")
            tmp_path.write_text(text)
            os.replace(tmp_path, p)
    except OSError as exc:
        raise ConfigError(f"cannot write units to {d}: {exc.strerror or exc}") from exc
    res.written = True
    res.verification = verify_units(list(res.files))
    res.hints = enable_hint(units, user=user)
    return res
