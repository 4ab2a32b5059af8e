"""One certificate file -> :class:`agent.model.CertFile`; trust anchors and CA files.

Reading follows :mod:`agent.sources.files` (bounded, never blocks), parsing follows
:mod:`agent.sources.parse`. A private key (in the file or in ``key_path``) is read only
to compare its public key with the leaf's.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509

from agent.kubelet import KUBELET_ROLES
from agent.model import CertFile, KeyMatch, LinkState, ReadError, ReadProblem, Role
from agent.sources.files import problem_for, read_file
from agent.sources.parse import ParsedBundle, parse_bundle, parse_key

CERT_SUFFIXES = (".crt", ".pem", ".cer", ".der")
KEY_SUFFIX = ".key"
AUTHORITY_ROLES = frozenset({Role.TRUST_ANCHOR, Role.KUBEADM_CA})  # files whose CAs verify others


def load_parsed(role: Role, path: str, anchors: Sequence[x509.Certificate], max_bytes: int,
                *, pre_stat: os.stat_result | None = None
                ) -> tuple[CertFile, ParsedBundle | None]:
    """:func:`load_cert_file` and the parse behind it (None when the file was not read)."""
    return _load(role, path, anchors, max_bytes, read_path=None, link=None, key_path=None,
                 pre_stat=pre_stat)


def load_cert_file(role: Role, path: str, anchors: Sequence[x509.Certificate], max_bytes: int,
                   *, read_path: str | None = None, link: LinkState | None = None,
                   key_path: str | None = None,
                   pre_stat: os.stat_result | None = None) -> CertFile:
    """Read and parse ``read_path`` (default ``path``) into a CertFile. Never raises."""
    return _load(role, path, anchors, max_bytes, read_path=read_path, link=link,
                 key_path=key_path, pre_stat=pre_stat)[0]


def _load(role: Role, path: str, anchors: Sequence[x509.Certificate], max_bytes: int,
          *, read_path: str | None, link: LinkState | None, key_path: str | None,
          pre_stat: os.stat_result | None) -> tuple[CertFile, ParsedBundle | None]:
    target = read_path or path

    def result(size: int | None, read_error: ReadError | None = None, **facts: Any) -> CertFile:
        return CertFile(role=role, path=path, target=target, link=link, key_path=key_path,
                        size=size, read_error=read_error, **facts)

    try:
        st = pre_stat or os.stat(target)
    except OSError as exc:
        return result(None, problem_for(exc, target)), None
    # The kubelet's own certificates are checked field by field (SANs, key): decode all now.
    eager = role in KUBELET_ROLES
    cache_key = _cache_key(target, st, anchors, eager) if stat.S_ISREG(st.st_mode) else None
    parsed = _PARSED.get(cache_key) if cache_key else None
    size: int | None = st.st_size
    if parsed is None:
        read = read_file(target, max_bytes, pre_stat=st)
        if read.error is not None:
            return result(read.size, read.error), None
        assert read.data is not None  # noqa: S101 - read_file returns data when error is None
        parsed = parse_bundle(read.data, anchors, keep_x509=role in AUTHORITY_ROLES,
                              eager=eager)
        size = read.size
        if cache_key and size == st.st_size:  # read what was stat'ed: safe to reuse
            _PARSED.put(cache_key, parsed)
    if parsed.error is not None:
        return result(size, parsed.error), parsed
    key_match, key_error = _key_match(parsed, key_path, max_bytes,
                                      any_certificate=role in AUTHORITY_ROLES)
    return result(size, chain=parsed.certificates, leaf=parsed.leaf, key_match=key_match,
                  key_error=key_error, trusted=parsed.chain_verified_to_anchor,
                  self_signed=parsed.self_signed), parsed


CacheKey = tuple[object, ...]


def _cache_key(path: str, st: os.stat_result, anchors: Sequence[x509.Certificate],
               eager: bool) -> CacheKey:
    """A file is unchanged while path, inode, size, mtime and ctime are (ctime cannot be set)."""
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
            tuple(anchors), eager)


class _ParseCache:
    """A bounded, thread-safe LRU of parse results (certificates only: no key bytes)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[CacheKey, ParsedBundle] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> ParsedBundle | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: CacheKey, parsed: ParsedBundle) -> None:
        with self._lock:
            self._items[key] = parsed
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Rebuilding the snapshot on every change re-stats each file but re-reads and re-parses
# only the files that changed. 16,384 entries of certificate facts: ~25 MB at most.
_PARSED = _ParseCache(16_384)


def clear_cache() -> None:
    """Forget every cached parse (benchmarks measure cold builds)."""
    _PARSED.clear()


def _key_match(parsed: ParsedBundle, key_path: str | None, max_bytes: int, *,
               any_certificate: bool = False) -> tuple[KeyMatch, ReadError | None]:
    """A separate key file wins over a key inside the bundle (the kubelet's order).

    ``any_certificate``: a CA file mid-rotation holds the retired CA beside the one
    whose key sits next to it; the key matches if it belongs to any of them."""
    if key_path is not None:
        read = read_file(key_path, max_bytes)
        if read.error is not None:
            absent = read.error.problem is ReadProblem.NOT_FOUND
            return (KeyMatch.ABSENT if absent else KeyMatch.UNREADABLE), read.error
        assert read.data is not None  # noqa: S101
        spki, error = parse_key(read.data)
    elif parsed.key_present:
        spki, error = parsed.key_spki_sha256, parsed.key_error
    else:
        return KeyMatch.ABSENT, None
    if error is not None or spki is None or parsed.leaf is None:
        return KeyMatch.UNREADABLE, error
    owners = parsed.certificates if any_certificate else (parsed.leaf,)
    if not any(c.spki_sha256 for c in owners):  # public keys cryptography cannot load
        return KeyMatch.UNREADABLE, None
    matched = any(spki == c.spki_sha256 for c in owners)
    return (KeyMatch.MATCH if matched else KeyMatch.MISMATCH), None


def load_authority(role: Role, path: str, max_bytes: int, *, key_path: str | None = None
                   ) -> tuple[CertFile, tuple[x509.Certificate, ...]]:
    """A CA file and every certificate it holds (each one can verify a leaf)."""
    cert_file, parsed = _load(role, path, (), max_bytes, read_path=None, link=None,
                              key_path=key_path, pre_stat=None)
    ok = parsed is not None and parsed.error is None
    return cert_file, (parsed.x509_certificates if ok and parsed else ())


def load_anchors(paths: Iterable[str], max_bytes: int) -> tuple[
        tuple[CertFile, ...], tuple[x509.Certificate, ...]]:
    """Trust-anchor files (deduplicated, in order) and every certificate they hold."""
    files: list[CertFile] = []
    certs: list[x509.Certificate] = []
    for path in dict.fromkeys(os.path.abspath(p) for p in paths):
        cert_file, held = load_authority(Role.TRUST_ANCHOR, path, max_bytes)
        files.append(cert_file)
        certs.extend(held)
    return tuple(files), tuple(certs)
