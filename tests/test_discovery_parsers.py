"""The pure discovery parsers: pflag, systemd words and units, env files, config merge."""

from __future__ import annotations

import pytest

from agent.sources.discovery import pflags, unitfile
from agent.sources.discovery.envfile import parse_env
from agent.sources.discovery.kubeletconf import flatten
from agent.sources.discovery.words import QuoteError, expand, split


def parse(*words: str) -> pflags.ParsedFlags:
    return pflags.parse([(w, "test") for w in words])


def value(flags: pflags.ParsedFlags, name: str) -> str | None:
    flag = flags.get(name)
    return None if flag is None else flag.value


class TestPflag:
    @pytest.mark.parametrize(("words", "expected"), [
        pytest.param(["--cert-dir=/a"], "/a", id="equals"),
        pytest.param(["--cert-dir", "/a"], "/a", id="next-word"),
        pytest.param(["--cert-dir=/a", "--cert-dir", "/b"], "/b", id="last-wins"),
        pytest.param(["--cert_dir=/a"], "/a", id="underscore-normalized"),
        pytest.param(["--", "--cert-dir=/a"], None, id="double-dash-ends-flags"),
        pytest.param(["--cert-dir", "--config=/c"], "--config=/c", id="value-taken-verbatim"),
    ])
    def test_value_flags(self, words: list[str], expected: str | None) -> None:
        assert value(parse(*words), "cert-dir") == expected

    @pytest.mark.parametrize(("words", "expected"), [
        pytest.param(["--rotate-certificates"], "true", id="bare-is-true"),
        pytest.param(["--rotate-certificates=false"], "false", id="equals-false"),
        pytest.param(["--rotate-certificates=F"], "false", id="go-parsebool-F"),
        pytest.param(["--rotate-certificates", "false"], "true", id="next-word-not-consumed"),
        pytest.param(["--rotate-certificates=0", "--rotate-certificates"], "true",
                     id="last-wins"),
    ])
    def test_bool_flags(self, words: list[str], expected: str) -> None:
        """A bare boolean means true and never takes the next word, as pflag does."""
        assert value(parse(*words), "rotate-certificates") == expected

    def test_unknown_flags_are_ignored_and_take_no_word(self) -> None:
        """An unknown flag (kubelet versions differ) never swallows the next flag."""
        flags = parse("--allow-privileged", "--cert-dir=/x", "--v", "2", "-v=4", "positional")
        assert value(flags, "cert-dir") == "/x" and set(flags.values) == {"cert-dir"}

    def test_feature_gates_merge_key_by_key(self) -> None:
        flags = parse("--feature-gates=RotateKubeletServerCertificate=false,A=true",
                      "--feature-gates", "A=false")
        assert {k: v for k, (v, _) in flags.gates.items()} == {
            "RotateKubeletServerCertificate": False, "A": False}

    @pytest.mark.parametrize("words", [["--cert-dir"], ["--rotate-certificates=maybe"],
                                       ["--feature-gates=A"]])
    def test_what_the_kubelet_refuses_is_a_problem_not_a_crash(self, words: list[str]) -> None:
        flags = parse(*words)
        assert flags.problems and "cert-dir" not in flags.values

    def test_origin_is_kept(self) -> None:
        flags = pflags.parse([("--cert-dir", "a.conf"), ("/x", "b.env")])
        assert flags.get("cert-dir") == pflags.Flag("/x", "b.env")


class TestWords:
    @pytest.mark.parametrize(("text", "words"), [
        ('a "b c" d', ["a", "b c", "d"]),
        ("a 'b \"c\"' d", ["a", 'b "c"', "d"]),
        ('--x="y z"', ["--x=y z"]),
        (r"a\ b c\tz", ["a b", "c\tz"]),
        ("  ", []),
    ])
    def test_split_as_systemd(self, text: str, words: list[str]) -> None:
        assert split(text) == words

    @pytest.mark.parametrize("text", ['a "b', "a 'b", "a \\"])
    def test_bad_quoting_is_an_error(self, text: str) -> None:
        with pytest.raises(QuoteError):
            split(text)

    def test_dollar_word_splits_and_braces_keep_whitespace(self) -> None:
        env = {"A": ("--x=1 --y=2", "env A"), "B": ("p q", "env B")}
        out = expand([("$A", "unit"), ("--z=${B}", "unit"), ("$$A", "unit"),
                      ("$UNSET", "unit"), ("${UNSET}", "unit")], env)
        assert out == [("--x=1", "env A"), ("--y=2", "env A"), ("--z=p q", "env B"),
                       ("$A", "unit"), ("", "unit")]

    def test_quoted_dollar_word_still_splits(self) -> None:
        """systemd unquotes first: ExecStart=/k "$A" is the same as /k $A."""
        words = [(w, "u") for w in split('/k "$A"')]
        assert [w for w, _ in expand(words, {"A": ("a b", "e")})] == ["/k", "a", "b"]


class TestEnvFile:
    def test_kubeadm_flags_and_shell_forms(self) -> None:
        text = ("# comment\n; also a comment\n\n"
                'KUBELET_KUBEADM_ARGS="--a=1 --b=2"\n'
                "export KUBELET_EXTRA_ARGS='--node-ip=10.0.0.5 --x=\"q\"'\n"
                "PLAIN=  value with # hash   \n"
                'ESCAPED="a \\"b\\" \\$c"\n'
                "not an assignment\n"
                "1BAD=x\n")
        env = parse_env(text)
        assert env.values == {"KUBELET_KUBEADM_ARGS": "--a=1 --b=2",
                              "KUBELET_EXTRA_ARGS": '--node-ip=10.0.0.5 --x="q"',
                              "PLAIN": "value with # hash", "ESCAPED": 'a "b" $c'}
        assert len(env.problems) == 2

    def test_empty_value_and_unterminated_quote(self) -> None:
        env = parse_env('KUBELET_EXTRA_ARGS=\nOPEN="never closed\n')
        assert env.values["KUBELET_EXTRA_ARGS"] == ""
        assert env.values["OPEN"].startswith("never closed")


def fold(*files: tuple[str, str]) -> unitfile.Service:
    items = [a for text, origin in files for a in unitfile.assignments(text, origin)]
    return unitfile.fold(items)


class TestUnitFile:
    def test_continuations_and_comments_inside_them(self) -> None:
        service = fold(("[Service]\nExecStart=/k \\\n  --a=1 \\\n# skipped\n  --b=2\n", "u"))
        assert [w for w, _ in service.exec_start[0]] == ["/k", "--a=1", "--b=2"]

    def test_continuation_at_end_of_file_ends_the_line(self) -> None:
        service = fold(("[Service]\nExecStart=/k --a=1 \\", "u"))
        assert [w for w, _ in service.exec_start[0]] == ["/k", "--a=1"]

    def test_exec_start_reset_twice_across_drop_ins(self) -> None:
        service = fold(("[Service]\nExecStart=/usr/bin/kubelet --a\n", "unit"),
                       ("[Service]\nExecStart=\nExecStart=/k1 --b\n", "10.conf"),
                       ("[Service]\nExecStart=\nExecStart=/k2 --c\n", "20.conf"))
        assert service.exec_start == ((("/k2", "20.conf"), ("--c", "20.conf")),)
        assert not service.problems

    def test_only_the_service_section_counts(self) -> None:
        service = fold(("[Unit]\nExecStart=/no\n[Install]\nEnvironment=A=1\n", "u"))
        assert service.exec_start == () and service.environment == ()

    def test_prefixes_are_removed(self) -> None:
        service = fold(("[Service]\nExecStart=-@/usr/bin/kubelet kubelet-argv0 --a\n", "u"))
        assert [w for w, _ in service.exec_start[0]] == ["/usr/bin/kubelet", "--a"]

    def test_unterminated_quote_ignores_that_assignment(self) -> None:
        service = fold(('[Service]\nExecStart=/k --a\nExecStart=\nExecStart=/k "--b\n', "u"))
        assert service.exec_start == () and "unterminated" in service.problems[0]

    def test_environment_and_env_files_reset_and_optional(self) -> None:
        service = fold(('[Service]\nEnvironment="A=1 2" B=3\nEnvironment=\nEnvironment=C=4\n'
                        "EnvironmentFile=-/opt/a.env\nEnvironmentFile=/opt/b.env\n", "u"))
        assert service.environment == (("C", "4", "u"),)
        assert [(f.path, f.optional) for f in service.env_files] == [
            ("/opt/a.env", True), ("/opt/b.env", False)]

    def test_two_exec_starts_left_is_what_systemd_refuses(self) -> None:
        service = fold(("[Service]\nExecStart=/a\nExecStart=/b\n", "u"))
        assert "refuses" in service.problems[0]


class TestConfigMerge:
    def test_scalar_overrides_struct_merges_list_replaces(self) -> None:
        fields = flatten({"port": 1, "authentication": {"x509": {"clientCAFile": "/a"},
                                                        "webhook": {"enabled": True}},
                          "clusterDNS": ["1.1.1.1", "2.2.2.2"]}, "main")
        flatten({"port": 2, "authentication": {"x509": {"clientCAFile": "/b"}},
                 "clusterDNS": ["3.3.3.3"]}, "drop-in", into=fields)
        assert fields == {"port": (2, "drop-in"),
                          "authentication.x509.clientCAFile": ("/b", "drop-in"),
                          "authentication.webhook.enabled": (True, "main"),
                          "clusterDNS": (["3.3.3.3"], "drop-in")}
