"""kubelet-cert-agent: watches kubelet certificates and reports what will break."""

from __future__ import annotations

# A constant, not importlib.metadata.version(): that import alone costs more than the whole
# of `check`'s own code at start-up. tests/test_packaging.py keeps it equal to pyproject's.
__version__ = "0.1.0"
