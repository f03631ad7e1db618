"""Train goal-conditioned inverse improvisers: the musician's descriptors -> synth parameters.

The agent (:class:`musicgym.envs.improvise_agents.InverseAgent`) is trained on the synth's own
lookup table and on the *training* tracks of the corpus, in two stages:

1. **distil the table's nearest neighbour** (supervised regression): for every training frame
   and every table row, the label is the parameters of the table row nearest it in the reward's
   descriptors (normalised as the env normalises them, weighted as the reward weighs them);
2. **analysis by synthesis**: the synth's table, interpolated multilinearly in torch, is a
   differentiable model of what the synth sounds like at any parameters; the agent is then
   trained to minimise the reward's squared error between what it would sound like and the
   frame it was given (with the stage-1 loss kept as a small anchor).

Stage 1 finds the right basin (the table's global search, amortised); stage 2 refines between
the grid points. Nothing here sees a held-out track. One run takes tens of seconds on one core.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from musicgym.envs.improvise_agents import InverseAgent
from musicgym.envs.improvise_play import make_core
from musicgym.errors import ImproviseConfigError

FEATURE_SETS = {
    "lp": ["loudness-dB", "pitch"],
    "lps": ["loudness-dB", "pitch", "specshape"],
    "lpsm": ["loudness-dB", "pitch", "specshape", "mfcc"],
}
DEFAULT_SUBDIV = {2: 65, 3: 21}   # grid points per parameter of the training table


def env_kwargs_for(synth: str, feature_set: str, corpus) -> dict[str, Any]:
    """The env keywords of an agent: every descriptor kept is one the reward compares."""
    if feature_set not in FEATURE_SETS:
        raise ImproviseConfigError(f"unknown feature set {feature_set!r}: choose one of "
                                   f"{sorted(FEATURE_SETS)}")
    features = FEATURE_SETS[feature_set]
    return {"synth": synth, "features_keep": features, "features_reward": features,
            "corpus": str(corpus) if isinstance(corpus, os.PathLike) else corpus}


def train_command(synth: str, feature_set: str, *, seed: int, distil_steps: int,
                  refine_steps: int, hidden, anchor: float, search: bool = False,
                  search_grid: bool = False, stay_margin: float = 0.0,
                  search_from_current: bool = False, subdiv: int | None = None,
                  corpus=None) -> str:
    """The ``musicgym train-improviser`` command that trains :func:`train_inverse` with these
    options (what an agent's JSON records as its ``command``)."""
    import shlex

    return (f"musicgym train-improviser {synth} --features {feature_set} --seed {seed} "
            f"--distil-steps {distil_steps} --refine-steps {refine_steps} "
            f"--hidden {' '.join(map(str, hidden))} --anchor {anchor}"
            + (" --search" if search else "")
            + (" --search-grid" if search_grid else "")
            + (f" --stay-margin {stay_margin}" if stay_margin else "")
            + (" --search-from-current" if search_from_current else "")
            + (f" --subdiv {subdiv}" if subdiv else "")
            + (f" --corpus {shlex.quote(str(corpus))}" if corpus else ""))


def _interp_torch(values, subdiv: int, u):
    """Multilinear interpolation of a (subdiv**N, F) C-order grid table at u (B, N), in torch."""
    import torch

    n = u.shape[1]
    pos = u.clamp(0.0, 1.0) * (subdiv - 1)
    cell = pos.detach().floor().clamp(max=subdiv - 2).long()
    frac = pos - cell
    strides = torch.tensor(subdiv ** np.arange(n - 1, -1, -1), dtype=torch.long)
    out = 0.0
    for corner in range(2 ** n):
        bits = torch.tensor([(corner >> (n - 1 - k)) & 1 for k in range(n)], dtype=torch.long)
        w = torch.where(bits.bool(), frac, 1.0 - frac).prod(dim=1, keepdim=True)
        out = out + w * values[((cell + bits) * strides).sum(dim=1)]
    return out


def train_inverse(synth: str, feature_set: str, corpus, *, seed: int = 0,
                  subdiv: int | None = None, hidden: tuple[int, ...] = (128, 128),
                  distil_steps: int = 3000, refine_steps: int = 3000, batch_size: int = 512,
                  max_frames: int = 40000, anchor: float = 0.1, search: bool = False,
                  search_grid: bool = False, stay_margin: float = 0.0,
                  search_from_current: bool = False, log=None, on_step=None) -> InverseAgent:
    """Train an :class:`InverseAgent` for ``synth`` on ``feature_set``'s descriptors.

    Parameters
    ----------
    synth : str
        A built-in synth name.
    feature_set : str
        ``"lp"`` (loudness, pitch), ``"lps"`` (+ spectral shape), ``"lpsm"`` (+ 13 MFCC).
    corpus : path-like
        A corpus folder; only its training tracks are read.
    subdiv : int, optional
        Grid points per parameter of the training table (default 65 for 2 parameters, 21
        for 3).
    distil_steps, refine_steps : int
        Adam steps of stage 1 (nearest-neighbour labels) and stage 2 (analysis by synthesis).
    anchor : float
        Weight of the stage-1 loss kept in stage 2 (0.1): it holds the agent near the
        table's nearest neighbour; 0 lets analysis by synthesis alone pick among the
        parameter settings that sound alike.
    search : bool
        Ship the training table with the agent, so it refines each answer by a local search
        through it (:class:`InverseAgent`'s ``table``; adds ``subdiv**N * F * 4`` bytes).
    search_grid : bool
        Implies ``search``; the search reads the table's grid points only, never between them
        (``meta["search_grid"]``): where neighbouring grid points sound far apart (a silent
        row beside a quiet one) the interpolated table describes blends no setting plays.
    stay_margin : float
        With a table: the agent keeps the parameters playing now unless its answer sounds
        closer to the target, in the table, by more than this fraction of the current error
        (``meta["stay_margin"]``; 0, the default, always jumps).
    search_from_current : bool
        With a table: the search also starts from the parameters playing now, and the agent
        answers the closer of its two ends (``meta["search_from_current"]``).
    log : callable, optional
        Told one line of progress at a time.
    on_step : callable, optional
        Called after every Adam step as ``on_step(step, loss, agent)``: ``step`` counts from
        1, ``loss`` is that step's loss and ``agent()`` builds the agent as it stands (what
        ``musicgym train``'s ``algo: inverse`` shows and evaluates on the way). It must not
        draw from torch's random generator, or the same seed no longer gives the same agent.
    """
    import torch

    if not float(anchor) >= 0.0:
        raise ImproviseConfigError(f"anchor must be a number >= 0, got {anchor!r}")
    if not 0.0 <= float(stay_margin) < 1.0:
        raise ImproviseConfigError(f"stay_margin must be in [0, 1), got {stay_margin!r}")
    search = bool(search or search_grid or search_from_current or stay_margin)
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    kwargs = env_kwargs_for(synth, feature_set, corpus)
    n_params = make_core({**kwargs, "corpus": None, "training_mode": "mixed_random",
                          "mode": "render"}).n_params
    subdiv = int(subdiv or DEFAULT_SUBDIV.get(n_params, 11))
    core = make_core({**kwargs, "mode": "lookup", "subdiv": subdiv, "training_mode": "corpus"})
    table_z, grid, w = core.normalise(core.table.values), core.table.grid, core.weights
    frames = np.concatenate(core.tracks_z)
    if len(frames) > max_frames:
        frames = frames[rng.choice(len(frames), max_frames, replace=False)]
    # the table's rows, jittered, teach the whole of the synth's range besides the corpus's
    jitter = table_z + rng.normal(0.0, 0.05, table_z.shape)
    x = np.concatenate([frames, jitter]).astype(np.float32)
    labels = np.empty((len(x), n_params))
    for i in range(0, len(x), 64):   # the table's nearest neighbour of each input
        d = ((table_z[None, :, :] - x[i:i + 64, None, :]) ** 2) @ w
        labels[i:i + 64] = grid[np.argmin(d, axis=1)]
    if log:
        log(f"{synth}/{feature_set}: table {subdiv}^{n_params}, {len(frames)} corpus frames, "
            f"{len(table_z)} table rows ({time.perf_counter() - start:.1f} s)")

    sizes = [x.shape[1], *hidden, n_params]
    net = torch.nn.Sequential(*[m for a, b in zip(sizes[:-1], sizes[1:], strict=True)
                                for m in (torch.nn.Linear(a, b), torch.nn.Tanh())][:-1])
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels.astype(np.float32))
    values = torch.from_numpy(table_z.astype(np.float32))
    wt = torch.from_numpy((w / w.sum()).astype(np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    total = distil_steps + refine_steps
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    env_kwargs = {k: v for k, v in kwargs.items() if k != "corpus"}

    def snapshot() -> InverseAgent:
        """The agent as the net stands now (its weights copied)."""
        layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                  for m in net if isinstance(m, torch.nn.Linear)]
        seconds = time.perf_counter() - start
        return InverseAgent(synth, list(core.features), dict(env_kwargs), core.mean.copy(),
                            core.std.copy(), layers,
                            {"feature_set": feature_set, "seed": seed, "subdiv": subdiv,
                             "hidden": list(hidden), "distil_steps": distil_steps,
                             "refine_steps": refine_steps, "anchor": anchor,
                             "train_seconds": round(seconds, 1),
                             "search": bool(search),
                             **({"search_grid": True} if search_grid else {}),
                             **({"stay_margin": float(stay_margin)} if stay_margin else {}),
                             **({"search_from_current": True} if search_from_current else {}),
                             "train_tracks": [t.name for t in core.tracks]},
                            table_z.astype(np.float32) if search else None)

    for step in range(total):
        idx = torch.from_numpy(rng.integers(0, len(x), batch_size))
        u = torch.sigmoid(net(xt[idx]))
        distil = ((u - yt[idx]) ** 2).mean()
        if step < distil_steps:
            loss = distil
        else:
            heard = _interp_torch(values, subdiv, u)
            loss = (((heard - xt[idx]) ** 2) @ wt).mean() + anchor * distil
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (step + 1) % 1000 == 0:
            log(f"  step {step + 1}/{total}: loss {loss.item():.4f}")
        if on_step is not None:
            on_step(step + 1, float(loss.item()), snapshot)
    return snapshot()
