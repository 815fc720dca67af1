"""Reading what `docker load` was given, once extracted: a docker-archive (manifest.json) or an OCI
layout (index.json, blobs/). Every path a manifest names is checked (a relative path without `..` to a
regular file of the archive) and every field's type, so a malformed archive is a 400, never a 500."""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

from pyd.daemon.errors import BadParameter
from pyd.daemon.storage import archive
from pyd.formats.reference import parse_reference

# the OCI digest grammar: algorithm ":" encoded
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
_MAX_INDEX_DEPTH = 8


@dataclass
class ArchivedImage:
    config: str              # member path of the config JSON
    layers: list[str]        # member paths of the layer tars, base first
    names: list[str]         # references to tag it with (RepoTags, or the OCI layout's name)


def blob_path(digest: str) -> str:
    """Where an OCI layout keeps the blob `digest`: blobs/<algorithm>/<encoded>."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BadParameter(f"invalid digest {digest!r}")
    algo, _, encoded = digest.partition(":")
    return f"blobs/{algo}/{encoded}"


def member_path(value: Any, where: str) -> str:
    """A path a manifest names: a string, relative, with no `..` component."""
    if not isinstance(value, str) or not value:
        raise BadParameter(f"invalid archive: {where} must be a path, not {value!r}")
    if value.startswith("/") or ".." in value.split("/") or "\0" in value:
        raise BadParameter(f"invalid archive: {where} {value!r} is not a path inside the archive")
    return value


def open_member(work: str, rel: str) -> BinaryIO:
    """The archive's regular file `rel` (symlinks in the archive resolved inside it)."""
    path = archive.secure_join(work, rel)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise BadParameter(f"invalid archive: {rel} is missing") from None
    except OSError as exc:
        raise BadParameter(f"invalid archive: {rel}: {os.strerror(exc.errno or 0)}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadParameter(f"invalid archive: {rel} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_member(work: str, rel: str) -> bytes:
    with open_member(work, rel) as f:
        return f.read()


def read_json(work: str, rel: str, kind: type = object) -> Any:
    try:
        value = json.loads(read_member(work, rel))
    except ValueError as exc:
        raise BadParameter(f"invalid archive: {rel}: {exc}") from None
    if not isinstance(value, kind):
        raise BadParameter(f"invalid archive: {rel} is not a JSON {_KIND_NAMES.get(kind, kind.__name__)}")
    return value


_KIND_NAMES = {dict: "object", list: "array"}


def _list_of(value: Any, kind: type, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise BadParameter(f"invalid archive: {where} must be a list of {'objects' if kind is dict else 'strings'}")
    return value


def docker_archive_images(work: str) -> Iterator[ArchivedImage]:
    """The images of manifest.json, each checked before any is yielded."""
    entries = read_json(work, "manifest.json", list)
    images = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadParameter(f"invalid archive: manifest.json[{i}] is not a JSON object")
        config = member_path(entry.get("Config"), f"manifest.json[{i}].Config")
        layers = [member_path(p, f"manifest.json[{i}].Layers[{j}]")
                  for j, p in enumerate(_list_of(entry.get("Layers"), str, f"manifest.json[{i}].Layers"))]
        tags = _list_of(entry.get("RepoTags"), str, f"manifest.json[{i}].RepoTags")
        images.append(ArchivedImage(config, layers, tags))
    yield from images


def oci_images(work: str, host_arch: str) -> Iterator[ArchivedImage]:
    """The images of an OCI layout's index.json (nested indexes followed; for a multi-platform index, the
    image for `host_arch`)."""
    for manifest_path, name in _oci_manifests(work, read_json(work, "index.json", dict), None, 0, host_arch):
        manifest = read_json(work, manifest_path, dict)
        config = manifest.get("config")
        if not isinstance(config, dict):
            raise BadParameter(f"invalid archive: {manifest_path}: config is not a descriptor")
        layers = _list_of(manifest.get("layers"), dict, f"{manifest_path}: layers")
        yield ArchivedImage(blob_path(config.get("digest")), [blob_path(d.get("digest")) for d in layers],
                            [name] if name else [])


def _oci_manifests(work: str, index: dict, name: str | None, depth: int,
                   host_arch: str) -> Iterator[tuple[str, str | None]]:
    """(manifest blob path, familiar name or None) for each image of an index."""
    if depth > _MAX_INDEX_DEPTH:
        raise BadParameter(f"invalid archive: image indexes nested more than {_MAX_INDEX_DEPTH} deep")
    for desc in _list_of(index.get("manifests"), dict, "index manifests"):
        ann = desc.get("annotations") or {}
        if not isinstance(ann, dict):
            raise BadParameter("invalid archive: descriptor annotations must be an object")
        own = ann.get("io.containerd.image.name")
        ref_name = ann.get("org.opencontainers.image.ref.name", "")
        if not own and isinstance(ref_name, str) and (":" in ref_name or "/" in ref_name):
            own = ref_name   # a full reference; a bare tag names no repository
        own_ref = _try_parse(own) if isinstance(own, str) and own else None
        label = (own_ref.familiar() if own_ref else None) or name
        path = blob_path(desc.get("digest"))
        if desc.get("mediaType") in _INDEX_TYPES:
            yield from _oci_manifests(work, read_json(work, path, dict), label, depth + 1, host_arch)
            continue
        platform_ = desc.get("platform") or {}
        if isinstance(platform_, dict) and platform_ and platform_.get("architecture") not in (None, host_arch):
            continue   # a multi-platform index: keep the image for this machine
        yield path, label


def _try_parse(s: str):
    try:
        return parse_reference(s, default_tag=False)
    except BadParameter:
        return None
