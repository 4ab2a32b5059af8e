"""read_kubelet_config: the fields the checks need, and every way the file can be bad."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.model import ReadProblem
from agent.sources.kubeletconfig import read_kubelet_config

KUBEADM_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
rotateCertificates: true
serverTLSBootstrap: true
"""


HEADER = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


class TestReadKubeletConfig:
    def test_kubeadm_yaml_fields_are_read(self, tmp_path: Path) -> None:
        """A kubeadm config gives serverTLSBootstrap, rotateCertificates and clientCAFile."""
        info = read_kubelet_config(write(tmp_path, KUBEADM_CONFIG))
        assert info.present and info.error is None
        assert info.server_tls_bootstrap is True and info.rotate_certificates is True
        assert info.client_ca_file == "/etc/kubernetes/pki/ca.crt"
        assert info.tls_cert_file is None and info.tls_private_key_file is None

    def test_json_config_is_read(self, tmp_path: Path) -> None:
        """A KubeletConfiguration written as JSON is read too."""
        doc = {"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
               "serverTLSBootstrap": False,
               "tlsCertFile": "/srv/tls.crt", "tlsPrivateKeyFile": "/srv/tls.key"}
        info = read_kubelet_config(write(tmp_path, json.dumps(doc), "config.json"))
        assert info.error is None and info.server_tls_bootstrap is False
        assert info.tls_cert_file == "/srv/tls.crt" and info.tls_private_key_file == "/srv/tls.key"

    def test_relative_paths_are_relative_to_the_config_directory(self, tmp_path: Path) -> None:
        """tlsCertFile: certs/tls.crt next to /x/config.yaml means /x/certs/tls.crt."""
        info = read_kubelet_config(write(tmp_path, HEADER + "tlsCertFile: certs/tls.crt\n"
                                         "tlsPrivateKeyFile: ../k.key\n"
                                         "authentication: {x509: {clientCAFile: ca.crt}}\n"))
        assert info.tls_cert_file == str(tmp_path / "certs" / "tls.crt")
        assert info.tls_private_key_file == str(tmp_path.parent / "k.key")
        assert info.client_ca_file == str(tmp_path / "ca.crt")

    def test_absent_fields_and_empty_strings_are_none(self, tmp_path: Path) -> None:
        """Unset fields stay None; an empty tlsCertFile is the kubelet's "not set"."""
        info = read_kubelet_config(write(tmp_path, HEADER + "tlsCertFile: ''\n"))
        assert info.error is None
        assert (info.server_tls_bootstrap, info.rotate_certificates, info.tls_cert_file) == (
            None, None, None)

    def test_missing_file_is_absent_without_error(self, tmp_path: Path) -> None:
        """The config is optional: a missing file is present=False and no error."""
        info = read_kubelet_config(tmp_path / "config.yaml")
        assert not info.present and info.error is None
        assert info.path == str(tmp_path / "config.yaml")

    def test_no_path_means_not_configured(self) -> None:
        """``--kubelet-config ''`` gives path None, nothing read."""
        info = read_kubelet_config(None)
        assert info.path is None and not info.present and info.error is None

    def test_relative_config_path_is_made_absolute(self, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """The reported path is absolute, whatever the working directory."""
        write(tmp_path, KUBEADM_CONFIG)
        monkeypatch.chdir(tmp_path)
        assert read_kubelet_config(Path("config.yaml")).path == str(tmp_path / "config.yaml")

    @pytest.mark.parametrize(("text", "problem", "words"), [
        pytest.param("", ReadProblem.EMPTY, "empty", id="empty"),
        pytest.param("kind: [unclosed\n", ReadProblem.GARBAGE, "not YAML/JSON at line",
                     id="invalid-yaml"),
        pytest.param("- a\n- b\n", ReadProblem.GARBAGE, "not a mapping but list", id="a-list"),
        pytest.param("just a string\n", ReadProblem.GARBAGE, "not a mapping but str",
                     id="a-scalar"),
        pytest.param(b"\xff\xfe\x00garbage", ReadProblem.GARBAGE, "", id="binary"),
        pytest.param(HEADER + "serverTLSBootstrap: 'yes'\n", ReadProblem.GARBAGE,
                     "serverTLSBootstrap is not a boolean", id="string-not-bool"),
        pytest.param(HEADER + "tlsCertFile: 42\n", ReadProblem.GARBAGE,
                     "tlsCertFile is not a string", id="number-not-path"),
        pytest.param("{}\n", ReadProblem.GARBAGE, "not a KubeletConfiguration (no kind",
                     id="empty-mapping"),
        pytest.param("apiVersion: v1\nkind: Pod\n", ReadProblem.GARBAGE,
                     "kind 'Pod', apiVersion 'v1'", id="a-pod"),
        pytest.param("root:x:0:0:root:/root:/bin/bash\n", ReadProblem.GARBAGE,
                     "not a mapping but str", id="etc-shadow-like"),
        pytest.param("apiVersion: kubelet.config.k8s.io/v1alpha9\nkind: KubeletConfiguration\n",
                     ReadProblem.GARBAGE, "apiVersion 'kubelet.config.k8s.io/v1alpha9'",
                     id="unknown-version"),
    ])
    def test_bad_content_is_a_specific_error(self, tmp_path: Path, text: str | bytes,
                                             problem: ReadProblem, words: str) -> None:
        """Each kind of bad content is a ReadError that says what is wrong, present=True."""
        info = read_kubelet_config(write(tmp_path, text))
        assert info.present and info.error is not None
        assert info.error.problem is problem and words in info.error.detail

    def test_fields_of_the_right_type_survive_a_wrong_one(self, tmp_path: Path) -> None:
        """A bad field is reported while the good fields are still used."""
        info = read_kubelet_config(write(tmp_path, HEADER + "rotateCertificates: 1\n"
                                                   "serverTLSBootstrap: true\n"))
        assert info.error is not None and "rotateCertificates" in info.error.detail
        assert info.server_tls_bootstrap is True and info.rotate_certificates is None

    def test_directory_is_not_regular(self, tmp_path: Path) -> None:
        """A directory given as the config file is NOT_REGULAR."""
        info = read_kubelet_config(tmp_path)
        assert info.error is not None and info.error.problem is ReadProblem.NOT_REGULAR

    def test_fifo_is_never_opened(self, tmp_path: Path) -> None:
        """A FIFO as the config file is NOT_REGULAR and the call returns."""
        os.mkfifo(tmp_path / "config.yaml")
        info = read_kubelet_config(tmp_path / "config.yaml")
        assert info.error is not None and info.error.problem is ReadProblem.NOT_REGULAR

    def test_too_large_file_is_refused(self, tmp_path: Path) -> None:
        """A config over the size limit is TOO_LARGE."""
        info = read_kubelet_config(write(tmp_path, "a: b\n" * 100), max_bytes=64)
        assert info.error is not None and info.error.problem is ReadProblem.TOO_LARGE
