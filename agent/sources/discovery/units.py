"""Read ``kubelet.service`` with its drop-ins and environment files, under a host root.

Search paths and their order are systemd's for system units (highest priority first):
the first ``kubelet.service`` found is the unit; ``kubelet.service.d/*.conf`` is
collected from every path, a name in a higher-priority path hiding the same name below,
and all are applied in lexical order of their names. ``Environment=`` settings come
first, then each ``EnvironmentFile=`` in order overrides them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.model import ReadProblem
from agent.sources.discovery import unitfile
from agent.sources.discovery.envfile import parse_env
from agent.sources.discovery.hostfs import read_host, resolve, under
from agent.sources.discovery.words import expand

UNIT = "kubelet.service"
SEARCH_PATHS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system",
                "/lib/systemd/system")
MAX_DROPINS = 256  # a directory of thousands of drop-ins is not a kubelet unit
# systemd (>= 232) re-points this link at every start of the unit: watching it tells the
# daemon the kubelet (re)started without scanning processes.
INVOCATION = "/run/systemd/units/invocation:" + UNIT


@dataclass(frozen=True)
class UnitCommand:
    """The kubelet command line systemd would run, and what it was built from."""

    unit: str | None  # host path of kubelet.service; None: no unit
    argv: tuple[tuple[str, str], ...] = ()  # (word, origin); empty: no usable ExecStart
    inputs: tuple[str, ...] = ()  # host paths read or looked for (to watch them)
    problems: tuple[str, ...] = ()


def _text(root: str, path: str, problems: list[str]) -> str | None:
    data, error = read_host(root, path)
    if error is not None:
        problems.append(f"{path} unreadable: {error.detail} ({error.problem.value})")
        return None
    assert data is not None  # noqa: S101 - read_host returns data when error is None
    if b"\0" in data:
        problems.append(f"{path} unreadable: binary data, not a unit file")
        return None
    return data.decode("utf-8", errors="replace")


def _dropins(root: str, problems: list[str]) -> list[str]:
    """Host paths of the drop-ins that apply, in the order systemd applies them."""
    chosen: dict[str, str] = {}
    for base in SEARCH_PATHS:
        directory = f"{base}/{UNIT}.d"
        try:
            names = sorted(os.listdir(resolve(root, directory)))
        except OSError:
            continue
        for name in names[:MAX_DROPINS]:
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = f"{directory}/{name}"
        if len(names) > MAX_DROPINS:
            problems.append(f"{directory} has {len(names)} entries; read the first "
                            f"{MAX_DROPINS}")
    return [chosen[n] for n in sorted(chosen)]


def _environment(root: str, service: unitfile.Service, inputs: list[str],
                 problems: list[str]) -> dict[str, tuple[str, str]]:
    env = {name: (value, origin) for name, value, origin in service.environment}
    for ref in service.env_files:
        inputs.append(ref.path)
        data, error = read_host(root, ref.path)
        if error is not None:
            if error.problem is ReadProblem.NOT_FOUND and ref.optional:
                continue  # "-": systemd ignores a missing file
            problems.append(f"{ref.path} unreadable: {error.detail} ({error.problem.value})"
                            + ("" if ref.optional else "; systemd will not start the unit"))
            continue
        assert data is not None  # noqa: S101
        parsed = parse_env(data.decode("utf-8", errors="replace"))
        problems.extend(f"{ref.path}: {p}" for p in parsed.problems)
        env.update({k: (v, f"{ref.path} {k}") for k, v in parsed.values.items()})
    return env


def read_unit(root: str) -> UnitCommand:
    """The kubelet's command line from its unit under ``root``. Never raises."""
    problems: list[str] = []
    candidates = [f"{base}/{UNIT}" for base in SEARCH_PATHS]
    inputs = [*candidates, INVOCATION]
    unit = next((p for p in candidates if os.path.lexists(under(root, p))), None)
    if unit is None:
        return UnitCommand(unit=None, inputs=tuple(inputs))
    if os.path.realpath(resolve(root, unit)) in (os.devnull, under(root, os.devnull)):
        return UnitCommand(unit=unit, inputs=tuple(inputs),
                           problems=(f"{unit} is masked (a link to /dev/null)",))
    files = [unit, *_dropins(root, problems)]
    inputs += [f"{base}/{UNIT}.d" for base in SEARCH_PATHS] + files[1:]
    items: list[unitfile.Assignment] = []
    for path in files:
        text = _text(root, path, problems)
        if text is not None:
            items.extend(unitfile.assignments(text, path))
    service = unitfile.fold(items)
    problems.extend(service.problems)
    env = _environment(root, service, inputs, problems)
    if not service.exec_start:
        problems.append(f"{unit}: no ExecStart= after its drop-ins")
        return UnitCommand(unit, (), tuple(inputs), tuple(problems))
    argv = expand(service.exec_start[0], env)
    return UnitCommand(unit, tuple(argv), tuple(dict.fromkeys(inputs)), tuple(problems))
