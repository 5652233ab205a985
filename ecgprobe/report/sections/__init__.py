"""Section renderers and summary rules, one module per result family (discovered on import)."""

from ecgprobe._discover import import_submodules

import_submodules(__name__)
