"""Reading configuration files that may come from someone else, with bounded work.

A config (a training run's ``config.yaml``, a composition config, RL-impro's settings JSON) is
data, and a small one must not hang or exhaust the machine: a 485-byte YAML of nested anchors
expands to a billion nodes once a program walks it, a deeply nested one overflows Python's
stack, and a file in another encoding is not text. :func:`load_mapping` reads YAML or JSON under
limits on size, nesting and *expanded* node count (an alias counts as the whole node it
repeats), and raises one :class:`~musicgym.errors.ConfigError` (or the class the caller names)
that names the file and what to change.

This module sits at the bottom of the layers beside ``errors.py``: it imports only that and the
standard library (PyYAML lazily, where a YAML file is read), so every layer may use it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from musicgym.errors import ConfigError, MusicgymError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 100_000


def load_mapping(
    path_or_text: str | bytes | os.PathLike,
    *,
    source: str | None = None,
    kind: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
    error: type[MusicgymError] = ConfigError,
) -> dict[str, Any]:
    """Read a YAML or JSON mapping from a file or a string, refusing what would not be bounded.

    Parameters
    ----------
    path_or_text : path-like, str or bytes
        A path (``pathlib.Path`` or any ``os.PathLike``) is read as a file; a ``str`` or
        ``bytes`` is the document itself. (Pass ``Path(name)`` for a file name held in a str.)
    source : str, optional
        The name used in error messages; default the path, or ``"<text>"``.
    kind : {"yaml", "json"}, optional
        The format; default JSON where ``source`` (or the path) ends in ``.json``, else YAML.
    max_bytes : int
        Largest document accepted, in bytes (checked before the file is read whole).
    max_depth : int
        Deepest nesting of lists and mappings accepted, aliases expanded.
    max_nodes : int
        Most values accepted once every YAML alias is expanded (a billion-laughs document has
        few nodes as written and ~10^9 expanded). A recursive alias is always refused.
    error : MusicgymError subclass
        The exception class raised (default :class:`~musicgym.errors.ConfigError`); pass e.g.
        ``ImproviseConfigError`` to keep a module's own error type.

    Returns
    -------
    dict
        The mapping; an empty document gives ``{}``.

    Raises
    ------
    ConfigError (or ``error``)
        One line naming ``source`` and: a missing or unreadable file, a file over ``max_bytes``,
        bytes that are not UTF-8 (with the byte offset), a parse error (with the line), nesting
        deeper than ``max_depth``, more than ``max_nodes`` values expanded, a recursive alias,
        a value Python cannot hold (an integer of thousands of digits), or a top level that is
        not a mapping.
    """
    if isinstance(path_or_text, os.PathLike):
        path = Path(path_or_text)
        source = source or str(path)
        data = read_bounded(path, max_bytes=max_bytes, error=error, source=source)
    else:
        source = source or "<text>"
        data = path_or_text.encode("utf-8") if isinstance(path_or_text, str) else path_or_text
        if len(data) > max_bytes:
            raise error(f"{source}: the document is {len(data)} bytes, over the limit of "
                        f"{max_bytes} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{source}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); "
                    "save the file as UTF-8") from None
    if kind is None:
        kind = "json" if source.lower().endswith(".json") else "yaml"
    if kind == "json":
        value = _load_json(text, source, max_depth, max_nodes, error)
    elif kind == "yaml":
        value = _load_yaml(text, source, max_depth, max_nodes, error)
    else:
        raise ValueError(f"kind must be 'yaml' or 'json', got {kind!r}")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(f"{source}: expected a mapping of fields at the top level, got a "
                    f"{type(value).__name__}")
    return value


def read_bounded(path: Path, *, max_bytes: int, error: type[MusicgymError],
                 what: str = "config file", source: str | None = None) -> bytes:
    """The bytes of ``path``, reading no more than ``max_bytes + 1`` of them.

    Raises ``error`` naming the file (``source``, default the path) if it cannot be read or is
    larger than ``max_bytes``: a huge file costs no memory before it is refused.
    """
    source = source or str(path)
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} {source!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{source}: over the limit of {max_bytes} bytes for a {what}")
    return data


def _load_json(text: str, source: str, max_depth: int, max_nodes: int,
               error: type[MusicgymError]) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{source}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise error(f"{source}: nested deeper than the limit of {max_depth} levels") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise error(f"{source}: a value cannot be read ({exc})") from None
    # JSON has no aliases, so its size is bounded by the text; only the depth needs a walk
    stack, n_nodes = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        n_nodes += 1
        if depth > max_depth:
            raise error(f"{source}: nested deeper than the limit of {max_depth} levels")
        if n_nodes > max_nodes:
            raise error(f"{source}: more than the limit of {max_nodes} values")
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


def _load_yaml(text: str, source: str, max_depth: int, max_nodes: int,
               error: type[MusicgymError]) -> Any:
    import yaml

    loader = None
    try:
        loader = _bounded_loader_class()(text)
        loader.limits = (source, max_depth, max_nodes, error)
        return loader.get_single_data()
    except MusicgymError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise error(f"{source}{where}: not valid YAML ({reason})") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # a scalar PyYAML resolves but Python cannot build: 5,000 digits, a date 2001-13-45
        raise error(f"{source}: a value cannot be read ({exc})") from None
    finally:
        if loader is not None:
            loader.dispose()


@functools.cache
def _bounded_loader_class():
    """A SafeLoader whose composer counts nodes (aliases expanded) and depth as it goes."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        limits: tuple

        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._count = 0
            self._open_anchors: set[str] = set()
            self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)

        def _refuse(self, what: str):
            source, max_depth, max_nodes, error = self.limits
            mark = self.peek_event().start_mark if self.check_event() else None
            where = f", line {mark.line + 1}" if mark is not None else ""
            return error(f"{source}{where}: {what}")

        def _add(self, size: int, height: int) -> None:
            _, max_depth, max_nodes, _ = self.limits
            if self._depth + height - 1 > max_depth:
                raise self._refuse(f"nested deeper than the limit of {max_depth} levels")
            self._count += size
            if self._count > max_nodes:
                raise self._refuse(f"more than the limit of {max_nodes} values once its "
                                   "aliases are expanded")

        def _measure(self, node) -> tuple[int, int]:
            known = self._sizes.get(id(node))
            if known is not None:
                return known
            children = [c for pair in node.value for c in pair] \
                if isinstance(node, yaml.MappingNode) else \
                node.value if isinstance(node, yaml.SequenceNode) else []
            sizes = [self._measure(c) for c in children]
            result = (1 + sum(s for s, _ in sizes), 1 + max((h for _, h in sizes), default=0))
            self._sizes[id(node)] = result
            return result

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in self._open_anchors:
                    raise self._refuse(f"the alias *{event.anchor} refers to a node that "
                                       "contains it (a recursive structure)")
                node = self.anchors.get(event.anchor)
                if node is not None:
                    self._depth += 1
                    try:
                        self._add(*self._measure(node))
                    finally:
                        self._depth -= 1
                return super().compose_node(parent, index)
            self._depth += 1
            self._add(1, 1)
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                self._open_anchors.add(anchor)
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
                self._open_anchors.discard(anchor)

    return BoundedLoader
