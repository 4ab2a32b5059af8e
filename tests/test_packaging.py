"""Package description, maintainer scripts and the packaged flags file, without building.

The heavy part (build, install, upgrade, purge, lintian, rpmlint) is `make package-check`;
these tests keep the inputs of that build honest on every `make test`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NFPM = ROOT / "packaging" / "nfpm.yaml"
DEFAULTS = ROOT / "packaging" / "default" / "kubelet-cert-agent"
SCRIPTS = ROOT / "packaging" / "scripts"
GENERATED = {"build/changelog.gz"}  # made by the Makefile before nfpm runs
VENV_TREE = "build/venv/"


def nfpm_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(NFPM.read_text())
    return data


def contents() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = nfpm_config()["contents"]
    return entries


def entry_for(dst: str, packager: str | None = None) -> dict[str, Any]:
    found = [e for e in contents()
             if e["dst"] == dst and e.get("packager") in (None, packager)]
    assert len(found) == 1, f"{dst} for {packager}: {found}"
    return found[0]


def run_flags() -> set[str]:
    """Every long option of `kubelet-cert-agent run`, as argparse defines it."""
    from agent.cli import build_parser

    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    run = subparsers.choices["run"]
    return {opt for action in run._actions for opt in action.option_strings
            if opt.startswith("--") and opt != "--help"}


def run_sh(script: Path, *args: str, path_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run a maintainer script with a PATH whose systemctl only logs its arguments."""
    env = {"PATH": f"{path_dir}:/usr/bin:/bin", "SYSTEMCTL_LOG": str(path_dir / "calls")}
    return subprocess.run(["/bin/sh", str(script), *args], capture_output=True, text=True,
                          env=env, check=False, timeout=30)


class TestNfpmConfig:
    def test_version_comes_from_pyproject_through_the_environment(self) -> None:
        """nfpm takes ${VERSION}, and the Makefile derives VERSION from pyproject.toml."""
        assert nfpm_config()["version"] == "${VERSION}"
        makefile = (ROOT / "Makefile").read_text()
        assert 'tomllib.load(open("pyproject.toml", "rb"))["project"]["version"]' in makefile
        assert re.search(r"^export VERSION ARCH$", makefile, re.MULTILINE)

    def test_package_name_matches_the_project(self) -> None:
        """The package is named like the Python project."""
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert nfpm_config()["name"] == project["name"]

    @pytest.mark.parametrize(
        "entry", [e for e in contents() if e["src"] not in GENERATED | {VENV_TREE}],
        ids=lambda e: f"{e.get('packager', 'all')}:{e['dst']}",
    )
    def test_every_source_exists_in_the_repository(self, entry: dict[str, Any]) -> None:
        """Each file the packages contain is in the repository."""
        assert (ROOT / entry["src"]).is_file(), entry["src"]

    @pytest.mark.parametrize("src", sorted(GENERATED))
    def test_generated_sources_are_made_before_packaging(self, src: str) -> None:
        """A source not in the repository is a Makefile target the deb target depends on."""
        makefile = (ROOT / "Makefile").read_text()
        assert re.search(rf"^{re.escape(src)}:", makefile, re.MULTILINE)
        deb_rule = re.search(r"^deb:(.*)$", makefile, re.MULTILINE)
        assert deb_rule and src in deb_rule.group(1)

    def test_the_venv_tree_is_built_by_build_venv(self) -> None:
        """/opt/kubelet-cert-agent is the tree packaging/build-venv.sh stages."""
        entry = entry_for("/opt/kubelet-cert-agent")
        assert entry["src"] == VENV_TREE and entry["type"] == "tree"
        assert 'STAGE="${1:-build/venv}"' in (ROOT / "packaging" / "build-venv.sh").read_text()

    def test_conffile_is_never_overwritten_on_upgrade(self) -> None:
        """/etc/default/kubelet-cert-agent is config|noreplace and comes from packaging/default."""
        entry = entry_for("/etc/default/kubelet-cert-agent")
        assert entry["type"] == "config|noreplace"
        assert entry["src"] == "packaging/default/kubelet-cert-agent"

    @pytest.mark.parametrize(
        ("packager", "dst"),
        [("deb", "/lib/systemd/system/kubelet-cert-agent.service"),
         ("rpm", "/usr/lib/systemd/system/kubelet-cert-agent.service")],
        ids=["deb", "rpm"],
    )
    def test_unit_goes_where_each_distribution_looks(self, packager: str, dst: str) -> None:
        """The one unit file lands in each family's systemd unit directory."""
        assert entry_for(dst, packager)["src"] == "systemd/kubelet-cert-agent.service"

    @pytest.mark.parametrize(
        "dst",
        ["/usr/bin/kubelet-cert-agent",
         "/usr/share/kubelet-cert-agent/kubernetes/rbac.yaml",
         "/usr/share/kubelet-cert-agent/prometheus/kubelet-cert-agent-rules.yaml",
         "/usr/share/doc/kubelet-cert-agent/README.md"],
    )
    def test_ships(self, dst: str) -> None:
        """The entry point, RBAC, alert rules and README are in both packages."""
        assert "packager" not in entry_for(dst)

    def test_deb_has_a_debian_copyright_file(self) -> None:
        """The .deb carries a machine-readable Debian copyright file naming Apache-2.0."""
        entry = entry_for("/usr/share/doc/kubelet-cert-agent/copyright", "deb")
        text = (ROOT / entry["src"]).read_text()
        assert text.startswith("Format: https://www.debian.org/doc/packaging-manuals/"
                               "copyright-format/1.0/")
        assert "License: Apache-2.0" in text

    def test_deb_changelog_is_at_the_project_version(self) -> None:
        """The newest Debian changelog entry carries pyproject.toml's version (bump both)."""
        first = (ROOT / "packaging" / "deb" / "changelog").read_text().splitlines()[0]
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert first.startswith(f"kubelet-cert-agent ({project['version']}) ")

    def test_the_agent_reports_the_project_version(self) -> None:
        """agent.__version__ (a constant, for start-up time) is pyproject.toml's (bump both)."""
        from agent import __version__

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert __version__ == project["version"]

    def test_license_is_the_apache_2_text(self) -> None:
        """LICENSE is the full Apache License 2.0, as pyproject.toml declares."""
        text = (ROOT / "LICENSE").read_text()
        assert "Apache License" in text and "Version 2.0, January 2004" in text
        assert "END OF TERMS AND CONDITIONS" in text
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert project["license"] == "Apache-2.0" == nfpm_config()["license"]

    @pytest.mark.parametrize("hook", ["postinstall", "preremove", "postremove"])
    def test_maintainer_scripts_exist_and_are_executable(self, hook: str) -> None:
        """Each maintainer script nfpm embeds is an executable POSIX sh script."""
        script = ROOT / nfpm_config()["scripts"][hook]
        assert script.is_file()
        assert os.access(script, os.X_OK)
        assert script.read_text().startswith("#!/bin/sh\n")

    @pytest.mark.parametrize(
        "path",
        ["packaging/build-venv.sh", "packaging/check-packages.sh",
         "packaging/kubelet-cert-agent.sh", ".ci/run"],
    )
    def test_helper_scripts_are_executable(self, path: str) -> None:
        """The build, check and CI scripts can be run directly."""
        assert os.access(ROOT / path, os.X_OK)


def ci_apt_packages() -> set[str]:
    """The package names .ci/run passes to `apt-get install`."""
    text = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if "apt-get install" in ln)
    words = line.partition("apt-get install")[2].split()
    return {w for w in words if not w.startswith("-") and not w.startswith("<")}


class TestPyproject:
    def test_build_backend_understands_the_license_string(self) -> None:
        """`license = "Apache-2.0"` (a PEP 639 SPDX string) needs setuptools >= 77; older
        ones reject pyproject.toml, so the build requirement must say so."""
        data = tomllib.loads((ROOT / "pyproject.toml").read_text())
        assert isinstance(data["project"]["license"], str)
        floor = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", data["build-system"]["requires"][0])
        assert floor and int(floor.group(1)) >= 77, data["build-system"]["requires"]


class TestCiScript:
    def test_installs_every_program_the_unit_runs(self) -> None:
        """Each absolute program in an Exec*= line (but the agent) comes from a package
        .ci/run installs: `systemd-analyze verify` fails on a fresh machine otherwise."""
        dpkg_query = shutil.which("dpkg-query")
        if dpkg_query is None:
            if os.environ.get("CI"):
                pytest.fail("dpkg-query is not installed (CI runs on Debian)")
            pytest.skip("not a Debian system")
        unit = (ROOT / "systemd" / "kubelet-cert-agent.service").read_text()
        programs = {m.group(1) for m in re.finditer(r"^Exec\w+=[-@:+!]*(/\S+)", unit, re.M)}
        programs.discard("/usr/bin/kubelet-cert-agent")
        assert programs, "the unit runs no other program: update this test"
        for program in sorted(programs):
            result = subprocess.run([dpkg_query, "-S", program], capture_output=True,
                                    text=True, check=False, timeout=30)
            assert result.returncode == 0, f"{program}: {result.stderr}"
            packages = {name.strip().split(":")[0]
                        for name in result.stdout.partition(": ")[0].split(",")}
            assert packages & ci_apt_packages(), f"{program} comes from {packages}"


class TestDocumentedPaths:
    @pytest.mark.parametrize("doc", ["README.md", "packaging/default/kubelet-cert-agent"])
    def test_shared_files_named_in_the_docs_are_shipped(self, doc: str) -> None:
        """Every /usr/share/kubelet-cert-agent/ path the README or the flags file names is a
        file (or a directory of files) the packages install."""
        shipped = {e["dst"] for e in contents()}
        named = re.findall(r"/usr/share/kubelet-cert-agent/[\w./-]*", (ROOT / doc).read_text())
        assert named
        for path in named:
            assert any(dst == path.rstrip("/") or dst.startswith(path.rstrip("/") + "/")
                       for dst in shipped), path


class TestDefaultsFile:
    @pytest.mark.parametrize("flag", sorted(run_flags()))
    def test_documents_every_run_flag(self, flag: str) -> None:
        """/etc/default/kubelet-cert-agent mentions each flag of `run`."""
        assert re.search(rf"^#\s+{re.escape(flag)}\b", DEFAULTS.read_text(), re.MULTILINE), flag

    def test_sets_the_variable_the_unit_expands(self) -> None:
        """The only assignment is KUBELET_CERT_AGENT_ARGS, on one line (no continuation)."""
        lines = [ln for ln in DEFAULTS.read_text().splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(lines) == 1
        assert re.fullmatch(r'KUBELET_CERT_AGENT_ARGS="[^"\\]*"', lines[0])

    def test_default_args_parse_as_run_flags(self) -> None:
        """The shipped default arguments are accepted by `run`'s parser."""
        import shlex

        from agent.cli import build_parser

        line = next(ln for ln in DEFAULTS.read_text().splitlines()
                    if ln.startswith("KUBELET_CERT_AGENT_ARGS="))
        value = shlex.split(line.partition("=")[2])
        args = shlex.split(value[0]) if value else []
        ns = build_parser().parse_args(["run", *args])
        assert ns.command == "run"


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> Path:
    """A directory holding a `systemctl` that records its arguments and always fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "systemctl"
    tool.write_text('#!/bin/sh\necho "$*" >> "$SYSTEMCTL_LOG"\nexit 1\n')
    tool.chmod(0o755)
    return bin_dir


class TestMaintainerScripts:
    @pytest.mark.parametrize(
        ("hook", "args"),
        [("postinstall", ("configure", "")), ("postinstall", ("configure", "0.0.9")),
         ("postinstall", ("1",)), ("postinstall", ("2",)), ("postinstall", ("abort-upgrade",)),
         ("preremove", ("remove",)), ("preremove", ("upgrade", "0.2.0")), ("preremove", ("0",)),
         ("preremove", ("1",)), ("postremove", ("remove",)), ("postremove", ("upgrade",)),
         ("postremove", ("1",))],
        ids=lambda v: v if isinstance(v, str) else " ".join(v) or "-",
    )
    def test_never_fail_the_transaction(self, fake_systemctl: Path, hook: str,
                                        args: tuple[str, ...]) -> None:
        """With systemd absent or systemctl failing, every hook and argument exits 0."""
        script = ROOT / nfpm_config()["scripts"][hook]
        result = run_sh(script, *args, path_dir=fake_systemctl)
        assert result.returncode == 0, result.stderr

    @pytest.mark.parametrize("args", [("configure", ""), ("1",)], ids=["deb", "rpm"])
    def test_without_running_systemd_install_only_enables(self, fake_systemctl: Path,
                                                          args: tuple[str, ...]) -> None:
        """Without a running systemd (image builds, containers), install enables the unit
        offline, so a node booted from a baked image runs the agent, and starts nothing."""
        if Path("/run/systemd/system").is_dir():
            pytest.skip("systemd is running here")
        run_sh(SCRIPTS / "postinstall.sh", *args, path_dir=fake_systemctl)
        calls = (fake_systemctl / "calls").read_text().splitlines()
        assert calls == ["enable kubelet-cert-agent.service"]

    @pytest.mark.parametrize("args", [("configure", "0.0.9"), ("2",)], ids=["deb", "rpm"])
    def test_without_running_systemd_upgrade_touches_nothing(self, fake_systemctl: Path,
                                                             args: tuple[str, ...]) -> None:
        """An upgrade without a running systemd keeps the operator's enabled/disabled choice."""
        if Path("/run/systemd/system").is_dir():
            pytest.skip("systemd is running here")
        run_sh(SCRIPTS / "postinstall.sh", *args, path_dir=fake_systemctl)
        assert not (fake_systemctl / "calls").exists()

    @pytest.mark.parametrize(("args"), [("upgrade", "0.2.0"), ("1",)], ids=["deb", "rpm"])
    def test_upgrade_does_not_disable_the_service(self, fake_systemctl: Path,
                                                  args: tuple[str, ...]) -> None:
        """preremove during an upgrade leaves the service enabled."""
        run_sh(SCRIPTS / "preremove.sh", *args, path_dir=fake_systemctl)
        assert not (fake_systemctl / "calls").exists()

    @pytest.mark.parametrize(("args"), [("remove",), ("0",)], ids=["deb", "rpm"])
    def test_removal_disables_the_service(self, fake_systemctl: Path,
                                          args: tuple[str, ...]) -> None:
        """preremove on a real removal disables the unit (which needs no running systemd)."""
        run_sh(SCRIPTS / "preremove.sh", *args, path_dir=fake_systemctl)
        assert "disable kubelet-cert-agent.service" in (fake_systemctl / "calls").read_text()

    @pytest.mark.parametrize("hook", ["postinstall", "preremove", "postremove"])
    def test_scripts_pass_a_posix_shell_syntax_check(self, hook: str) -> None:
        """`sh -n` (dash on Debian) parses each script."""
        shell = shutil.which("dash") or "/bin/sh"
        script = ROOT / nfpm_config()["scripts"][hook]
        result = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True,
                                check=False, timeout=30)
        assert result.returncode == 0, result.stderr
