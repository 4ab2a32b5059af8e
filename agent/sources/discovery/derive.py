"""Derive the kubelet's effective settings from its flags, config and defaults. Pure.

Precedence, highest first (the kubelet's own, plus the agent's flags on top):
agent flag > kubelet command-line flag > ``--config-dir`` drop-ins > ``--config`` file >
kubelet default. Feature gates: ``featureGates`` in the config > ``--feature-gates`` >
default. Relative paths in a config file are relative to that file's directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from agent.model import DEFAULT_SOURCE as DEFAULT
from agent.model import Sourced
from agent.sources.discovery.kubeletconf import MergedConfig
from agent.sources.discovery.pflags import ParsedFlags, parse_bool

DEFAULT_CERT_DIR = "/var/lib/kubelet/pki"
DEFAULT_ADDRESS = "0.0.0.0"  # noqa: S104 - the kubelet's default, reported, never bound
DEFAULT_PORT = 10250
GATE = "RotateKubeletServerCertificate"


@dataclass(frozen=True)
class Overrides:
    """The agent's explicit flags (None / "" = not given: discover)."""

    cert_dir: str | None = None
    node_name: str | None = None
    kubeconfig: str | None = None


def flag_value(flags: ParsedFlags, name: str) -> Sourced[str] | None:
    flag = flags.get(name)
    return None if flag is None else Sourced(flag.value, f"{flag.origin}, --{name}")


def path_setting(flags: ParsedFlags, name: str, override: str | None = None,
                 agent_flag: str = "") -> Sourced[str | None]:
    """A flag-only path: the agent's flag, else the kubelet's flag, else unset."""
    if override:
        return Sourced(override, f"agent flag {agent_flag}")
    found = flag_value(flags, name)
    if found is None or not found.value:
        return Sourced(None, DEFAULT)
    return Sourced(found.value, found.source)


def _config_field(config: MergedConfig, key: str) -> tuple[Any, str] | None:
    return config.fields.get(key)


def _config_bool(config: MergedConfig, key: str, problems: list[str]) -> Sourced[bool] | None:
    found = _config_field(config, key)
    if found is None:
        return None
    if not isinstance(found[0], bool):
        problems.append(f"{found[1]}: {key} is not a boolean; ignored")
        return None
    return Sourced(found[0], found[1])


UNKNOWN_FLAGS = "unknown: no kubelet command line or config found"


def bool_setting(flags: ParsedFlags, flag: str, config: MergedConfig, key: str,
                 problems: list[str], *, known: bool = True) -> Sourced[bool | None]:
    """Flag over config over the default (false); None when the config is unreadable or
    nothing of the kubelet was found (``known`` False: its flags could say anything)."""
    given = flag_value(flags, flag)
    if given is not None:
        return Sourced(parse_bool(given.value) is True, given.source)
    from_config = _config_bool(config, key, problems)
    if from_config is not None:
        return Sourced(from_config.value, from_config.source)
    if config.error is not None:
        return Sourced(None, f"unknown: {config.error.detail}")
    if not known:
        return Sourced(None, UNKNOWN_FLAGS)
    return Sourced(False, DEFAULT)


def config_path_setting(flags: ParsedFlags, flag: str, config: MergedConfig,
                        key: str, problems: list[str]) -> Sourced[str | None]:
    """A path that is a flag or a config field; config paths are relative to their file."""
    given = flag_value(flags, flag)
    if given is not None and given.value:
        return Sourced(given.value, given.source)
    found = _config_field(config, key)
    if found is not None:
        value, origin = found
        if isinstance(value, str):
            if value:
                return Sourced(os.path.normpath(os.path.join(os.path.dirname(origin), value)),
                               origin)
        else:
            problems.append(f"{origin}: {key} is not a string; ignored")
    if config.error is not None:
        return Sourced(None, f"unknown: {config.error.detail}")
    return Sourced(None, DEFAULT)


def gate_setting(flags: ParsedFlags, config: MergedConfig) -> Sourced[bool]:
    found = _config_field(config, f"featureGates.{GATE}")
    if found is not None and isinstance(found[0], bool):
        return Sourced(found[0], f"{found[1]}, featureGates")
    if GATE in flags.gates:
        value, origin = flags.gates[GATE]
        return Sourced(value, f"{origin}, --feature-gates")
    return Sourced(True, f"{DEFAULT} (beta since 1.12)")


def address_setting(flags: ParsedFlags, config: MergedConfig) -> Sourced[str]:
    given = flag_value(flags, "address")
    if given is not None:
        return given
    found = _config_field(config, "address")
    if found is not None and isinstance(found[0], str) and found[0]:
        return Sourced(found[0], found[1])
    return Sourced(DEFAULT_ADDRESS, DEFAULT)


def port_setting(flags: ParsedFlags, config: MergedConfig,
                 problems: list[str]) -> Sourced[int | None]:
    given = flag_value(flags, "port")
    if given is not None:
        if given.value.isdigit():
            return Sourced(int(given.value), given.source)
        problems.append(f"{given.source} {given.value!r} is not a port; ignored")
    found = _config_field(config, "port")
    if found is not None and isinstance(found[0], int) and not isinstance(found[0], bool):
        return Sourced(found[0], found[1])
    return Sourced(DEFAULT_PORT, DEFAULT)


def node_name(flags: ParsedFlags, override: str | None,
              hostname: Sourced[str]) -> Sourced[str]:
    """--hostname-override else the host name, trimmed and lowercased (``GetHostname``)."""
    if override:
        return Sourced(override, "agent flag --node-name")
    given = flag_value(flags, "hostname-override")
    if given is not None and given.value.strip():
        return Sourced(given.value.strip().lower(), given.source)
    return Sourced(hostname.value.strip().lower(), hostname.source)


def cert_dir(flags: ParsedFlags, override: str | None) -> Sourced[str]:
    if override:
        return Sourced(override, "agent flag --cert-dir")
    given = flag_value(flags, "cert-dir")
    if given is not None and given.value:
        return given
    return Sourced(DEFAULT_CERT_DIR, DEFAULT)
