"""Importers: public measurement data (OONI, RIPE Atlas) as res64 datasets.

Imported rows use the same schema as the probe's own (SPEC §4), flagged ``data_source``
``ooni`` (OONI) or written to the ``hops`` table (Atlas), so ``res64 analyze`` runs on them
unchanged.  :mod:`probe.imports.ooni` and :mod:`probe.imports.atlas` are pure mappings;
:mod:`probe.imports.writer` reads files and writes datasets; :mod:`probe.imports.ooni_api` pages
through OONI's public API.
"""

from probe.imports.ooni_api import OoniApi as OoniApi
from probe.imports.ooni_api import import_ooni_api as import_ooni_api
from probe.imports.writer import ImportSummary as ImportSummary
from probe.imports.writer import import_atlas_files as import_atlas_files
from probe.imports.writer import import_ooni_files as import_ooni_files

__all__ = [
    "ImportSummary",
    "OoniApi",
    "import_atlas_files",
    "import_ooni_api",
    "import_ooni_files",
]
