"""Measurement campaigns: a TOML spec, a schedule, a restart-safe loop, uploads.

- :mod:`probe.campaign.spec` — the TOML spec and its validation (pure);
- :mod:`probe.campaign.schedule` — next run times, jitter, state transitions (pure);
- :mod:`probe.campaign.state` — the state file and the campaign lock;
- :mod:`probe.campaign.runner` — the foreground loop (``res64 campaign run``) and status;
- :mod:`probe.campaign.install` — systemd units and crontab lines (``res64 campaign install``).
"""

from __future__ import annotations

from probe.campaign.install import InstallResult as InstallResult
from probe.campaign.install import install_campaign as install_campaign
from probe.campaign.runner import CampaignResult as CampaignResult
from probe.campaign.runner import campaign_status as campaign_status
from probe.campaign.runner import exit_code as exit_code
from probe.campaign.runner import run_campaign as run_campaign
from probe.campaign.spec import CampaignSpec as CampaignSpec
from probe.campaign.spec import load_spec as load_spec

__all__ = [
    "CampaignResult",
    "CampaignSpec",
    "InstallResult",
    "campaign_status",
    "exit_code",
    "install_campaign",
    "load_spec",
    "run_campaign",
]
