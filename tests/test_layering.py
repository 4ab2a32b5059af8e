"""Imports flow one way: sources -> snapshot -> checks -> sinks, the daemon on top.

Read from the source text with ``ast`` (not by importing), so a lazy import inside a
function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parent.parent / "agent"

# package (or module) -> the agent packages/modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "agent.kubelet": ("agent.sources", "agent.checks", "agent.sinks", "agent.daemon",
                      "agent.snapshot", "agent.config"),
    "agent.model": ("agent.",),
    "agent.codes": ("agent.",),
    "agent.checks": ("agent.sources", "agent.sinks", "agent.daemon", "agent.snapshot"),
    "agent.sinks": ("agent.checks", "agent.sources", "agent.daemon", "agent.snapshot"),
    "agent.sources": ("agent.checks", "agent.sinks", "agent.daemon", "agent.snapshot"),
    "agent.snapshot": ("agent.checks", "agent.sinks", "agent.daemon"),
}
# Only the daemon itself and the command table may name the daemon package.
DAEMON_IMPORTERS = ("agent.daemon", "agent.cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


MODULES = sorted((_module_name(p), p) for p in AGENT.rglob("*.py"))


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix.rstrip(".") + ".") or (
        prefix.endswith(".") and name.startswith(prefix))


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_module_imports_flow_one_way(module: str, path: Path) -> None:
    """No module imports a layer downstream of it (checks never read sources, sinks never
    judge, nothing but the daemon's own modules reaches into the daemon)."""
    imported = _imports(path)
    for owner, banned in FORBIDDEN.items():
        if not _under(module, owner):
            continue
        wrong = sorted({i for i in imported for b in banned if _under(i, b)})
        assert not wrong, f"{module} imports {wrong}"
    if not any(_under(module, owner) for owner in DAEMON_IMPORTERS):
        wrong = sorted({i for i in imported if _under(i, "agent.daemon")})
        assert not wrong, f"{module} imports the daemon: {wrong}"


def test_the_rule_catches_a_wrong_import(tmp_path: Path) -> None:
    """The checker itself sees a lazy import inside a function (it can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from agent.sources.certdir import scan_cert_dir\n")
    assert "agent.sources.certdir" in _imports(bad)


def test_daemon_modules_live_in_the_daemon_package() -> None:
    """The long-running side is one package, not modules flat at the top of agent/."""
    flat = {p.stem for p in AGENT.glob("*.py")}
    assert not flat & {"daemon", "services", "settle", "state", "supervise", "watch"}
    assert (AGENT / "daemon" / "loop.py").is_file()
