"""The thresholds' defaults live in one place (the model's Policy)."""

from __future__ import annotations

import argparse

from agent.config import add_policy_arguments, settings_from_args
from agent.model import Policy


def test_flags_left_out_give_the_models_policy() -> None:
    """No threshold flag: the parsed policy is exactly Policy(), field for field."""
    parser = argparse.ArgumentParser()
    add_policy_arguments(parser)
    ns = parser.parse_args([])
    ns.cert_dir, ns.kubelet_config, ns.ca_file, ns.watch, ns.node_name = "/x", None, [], [], "n"
    assert settings_from_args(ns).policy == Policy()


def test_a_flag_changes_only_its_own_threshold() -> None:
    parser = argparse.ArgumentParser()
    add_policy_arguments(parser)
    ns = parser.parse_args(["--warning-days", "12"])
    ns.cert_dir, ns.kubelet_config, ns.ca_file, ns.watch, ns.node_name = "/x", None, [], [], "n"
    policy = settings_from_args(ns).policy
    assert policy.warning_days == 12
    assert policy.critical_days == Policy().critical_days
