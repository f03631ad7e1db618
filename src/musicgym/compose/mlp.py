"""The small NumPy MLPs the composition models share (the counterpoint policy and its value,
the melody policy): the forward pass, and the counterpoint models' ``.npz`` weights with their
``.json`` record beside them. Torch is needed only to train (:func:`torch_weights`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from musicgym.errors import ConfigError

Weights = list[tuple[np.ndarray, np.ndarray]]


def forward(x: np.ndarray, weights: Weights) -> np.ndarray:
    """``x`` (n,) or (b, n) through the layers: ReLU after every layer but the last."""
    h = x
    for w, b in weights[:-1]:
        h = np.maximum(h @ w + b, 0.0)
    w, b = weights[-1]
    return h @ w + b


def save(path: str | Path, weights: Weights, meta: dict) -> Path:
    """Write ``path`` (.npz: ``w0, b0, w1, ...``) and ``meta`` as the .json beside it; returns
    the .npz path."""
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, (w, b) in enumerate(weights):
        arrays[f"w{k}"], arrays[f"b{k}"] = w, b
    np.savez_compressed(path, **arrays)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return path


def load(path: str | Path, *, builtin: Path, filename: str, what: str,
         trainer: str) -> tuple[Weights, dict, Path]:
    """The weights, record and file written by :func:`save`: ``path`` is ``"builtin"`` (then
    ``builtin``), a ``.npz`` file, or a folder holding ``filename``.

    Raises
    ------
    ConfigError
        Naming ``what`` (e.g. "composing policy") and the ``trainer`` module that writes one,
        if there is no such file or it holds no weights.
    """
    path = builtin if str(path) == "builtin" else Path(path)
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise ConfigError(f"no {what} at {str(path)!r}; give 'builtin', a .npz written by "
                          f"python -m {trainer}, or its folder")
    try:
        with np.load(path) as data:
            n = len([k for k in data.files if k.startswith("w")])
            weights = [(data[f"w{k}"], data[f"b{k}"]) for k in range(n)]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path} is not a {what} ({exc})") from None
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return weights, meta, path


def torch_weights(net) -> Weights:
    """The ``(W (in, out), b)`` pairs of a trained ``torch.nn.Sequential``'s linear layers."""
    from torch import nn

    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
            for m in net if isinstance(m, nn.Linear)]
