"""Fine-tune a trained matcher with RL on the perceptual reward (issue 13, deliverable 1).

The second stage of Masuda & Saito's parameter-loss-then-spectral-loss training, for an engine
that is not differentiable: the spectral loss becomes a reward and its gradient a policy
gradient. The matcher's net is the mean of a Gaussian policy over the pre-``tanh`` settings
(a squashed Gaussian, so a net saturated at +-1 still gets a gradient); an episode is one step
(hear the target, name the settings, get ``-MR-STFT`` of the rendered guess to the target,
the distance every benchmark uses). Each update draws ``targets`` targets, ``samples``
settings per target, renders them in one batch with the engine (:class:`musicgym.synth.Patch`)
and takes a REINFORCE step whose baseline is the mean reward of the same target's other
samples (leave-one-out, as RLOO / GRPO do: no critic, and a hard target does not look bad
because it is hard). Masuda & Saito keep the parameter loss beside the spectral loss; so does
this, on the synthetic targets whose settings are known (``anchor``), with the saturation
penalty of :func:`musicgym.train.matcher.finetune_matcher`.

Targets: fresh synthetic sounds of the patch (drawn every update) and given recorded
one-shots (the SoundFont ones, :func:`musicgym.train.matcher.soundfont_oneshots`), never the
benchmark's real one-shots.

    python -m musicgym.train.matcher --preset Snare-v0 --init src/musicgym/data/matchers/Snare-v0 \\
        --rl-finetune 200 --seed 0 -o /tmp/rl/Snare-v0
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from musicgym.audio.distances import make_distance
from musicgym.envs.matcher_model import Matcher
from musicgym.envs.spaces import ParameterMap
from musicgym.errors import ConfigError, OutputError
from musicgym.synth import Patch

PRE_TANH_LIMIT = 3.0  # pre-activations beyond this are penalised (finetune_matcher's penalty)
SATURATION_PENALTY = 1e-2


def _check(name: str, value, low: float, integer: bool = True) -> None:
    ok = isinstance(value, (int, np.integer)) if integer else \
        isinstance(value, (int, float, np.number)) and np.isfinite(value)
    if isinstance(value, bool) or not ok or value < low:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"RL fine-tune: {name} must be {kind} >= {low}, got {value!r}")


def _torch_net(matcher: Matcher):
    """The matcher's MLP in torch, returning pre-``tanh`` values."""
    import torch

    sizes = [matcher.layers[0][0].shape[0]] + [w.shape[1] for w, _ in matcher.layers]
    layers: list = []
    for i in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(matcher.layers[i][0].T)))
            lin.bias.copy_(torch.from_numpy(matcher.layers[i][1]))
        layers += [lin] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    return torch.nn.Sequential(*layers)


def rl_finetune(matcher: Matcher, spec: dict, clips: np.ndarray | None, *, steps: int = 200,
                targets: int = 32, samples: int = 8, sigma: float = 0.15, lr: float = 1e-4,
                synthetic_share: float = 0.5, anchor: float = 1.0, seed: int = 0,
                input_clip: float | None = None, progress: bool = True,
                log=print) -> tuple[Matcher, list[dict]]:
    """The matcher's net fine-tuned by ``steps`` policy-gradient updates on ``-MR-STFT``.

    Parameters
    ----------
    matcher : Matcher
        The trained matcher (its standardisation and codebook are kept; only the net moves).
    spec : dict
        The patch (:func:`musicgym.train.matcher.patch_spec`).
    clips : numpy.ndarray or None
        (N, samples) recorded targets at the matcher's rate (``None``: synthetic ones only).
    steps, targets, samples : int
        Updates; targets per update; settings drawn per target (>= 2: the baseline is the
        other samples' mean reward). Each update renders ``targets * samples`` sounds.
    sigma : float
        The policy's standard deviation on the pre-``tanh`` settings.
    lr : float
        Adam's learning rate.
    synthetic_share : float
        Share of each update's targets that are fresh synthetic sounds of the patch
        (1 when ``clips`` is ``None``).
    anchor : float
        Weight of the parameter loss (MSE to the known settings of the synthetic targets).
    input_clip : float, optional
        Standardised features clipped to +-this (default: the matcher's ``input_clip``, 6).

    Returns
    -------
    (Matcher, list of dict)
        The fine-tuned matcher (``meta`` records the run) and the learning curve: per update,
        the mean reward of its samples overall, on synthetic and on recorded targets.

    Raises
    ------
    ConfigError
        A count or rate out of range, or ``clips`` that are not a 2-D array of samples.
    """
    import torch

    _check("steps", steps, 1)
    _check("targets", targets, 1)
    _check("samples", samples, 2)
    for name, value, low in (("sigma", sigma, 1e-6), ("lr", lr, 1e-9), ("anchor", anchor, 0.0),
                             ("synthetic_share", synthetic_share, 0.0)):
        _check(name, value, low, integer=False)
    if synthetic_share > 1:
        raise ConfigError(f"RL fine-tune: synthetic_share is a share in [0, 1], got "
                          f"{synthetic_share!r}")
    if clips is not None:
        clips = np.asarray(clips, np.float32)
        if clips.ndim != 2 or len(clips) == 0:
            raise ConfigError("RL fine-tune: clips must be an (N, samples) array of N >= 1 "
                              f"recorded targets, got shape {clips.shape}")
    else:
        synthetic_share = 1.0
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    sr, n_samples = matcher.sr, matcher.clip_samples
    patch = Patch(spec["code"], sr=sr)
    pmap = ParameterMap(spec["action_space"], n_holes=patch.n_params, flat=True)
    dim = matcher.action_dim
    distance = make_distance("mrstft", sr=sr)
    clip_at = float(matcher.meta.get("input_clip", 6.0) if input_clip is None else input_clip)

    def render(actions: np.ndarray) -> np.ndarray:
        audio = patch.render(pmap.params(actions.astype(np.float32), len(actions)),
                             n_samples=n_samples, progress=False)[:, 0]
        return np.nan_to_num(audio, nan=0.0, posinf=10.0, neginf=-10.0)

    def standardised(audio: np.ndarray):
        h = (matcher.features(audio) - matcher.mean) / matcher.std
        return torch.from_numpy(np.clip(h, -clip_at, clip_at).astype(np.float32))

    if clips is not None:
        fixed = np.zeros((len(clips), n_samples), np.float32)
        fixed[:, :min(n_samples, clips.shape[1])] = clips[:, :n_samples]
        clips, real_h = fixed, standardised(fixed)
        real_prepared = [distance.prepare(c) for c in clips]
    n_syn = targets if clips is None else int(round(targets * synthetic_share))
    n_real = targets - n_syn
    net = _torch_net(matcher)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    curve: list[dict] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="RL fine-tune", unit="update")
    t0 = time.perf_counter()
    for step in range(steps):
        syn_actions = rng.uniform(-1.0, 1.0, (n_syn, dim)).astype(np.float32)
        syn_audio = render(syn_actions) if n_syn else np.zeros((0, n_samples), np.float32)
        rows = rng.integers(len(clips), size=n_real) if n_real else np.zeros(0, np.int64)
        parts = [standardised(syn_audio)] if n_syn else []
        if n_real:
            parts.append(real_h[torch.from_numpy(rows)])
        h = torch.cat(parts)
        prepared = [distance.prepare(a) for a in syn_audio] + \
                   [real_prepared[r] for r in rows]
        z = net(h)  # (T, d) pre-tanh means
        with torch.no_grad():
            noise = torch.from_numpy(rng.standard_normal((len(prepared), samples, dim))
                                     .astype(np.float32))
            drawn = z.detach()[:, None, :] + sigma * noise  # (T, K, d)
            actions = torch.tanh(drawn).numpy().reshape(-1, dim)
        audio = render(actions)
        reward = np.empty((len(prepared), samples), np.float32)
        for t, prep in enumerate(prepared):
            reward[t] = -distance(audio[t * samples:(t + 1) * samples], prep)
        # leave-one-out baseline per target, advantages scaled by their spread in the batch
        base = (reward.sum(1, keepdims=True) - reward) / (samples - 1)
        adv = reward - base
        adv = torch.from_numpy(adv / (adv.std() + 1e-8))
        # log N(drawn; z, sigma): -|drawn - z|^2 / (2 sigma^2) + const (the squashing's
        # Jacobian depends on the draw only, not on the net)
        logp = -((drawn - z[:, None, :]) ** 2).sum(-1) / (2 * sigma ** 2)
        loss = -(adv * logp).mean()
        loss = loss + SATURATION_PENALTY * torch.relu(z.abs() - PRE_TANH_LIMIT).pow(2).mean()
        if n_syn and anchor > 0:
            loss = loss + anchor * torch.nn.functional.mse_loss(
                torch.tanh(z[:n_syn]), torch.from_numpy(syn_actions))
        opt.zero_grad()
        loss.backward()
        opt.step()
        point = {"update": step + 1, "mean_reward": float(reward.mean()),
                 "synthetic_reward": float(reward[:n_syn].mean()) if n_syn else None,
                 "recorded_reward": float(reward[n_syn:].mean()) if n_real else None,
                 "seconds": round(time.perf_counter() - t0, 2)}
        curve.append(point)
        if bar is not None:
            bar.set_postfix(reward=f"{point['mean_reward']:.3f}")
            bar.update(1)
        elif step % 20 == 19 or step == steps - 1:
            log(f"RL update {step + 1}/{steps}: mean reward {point['mean_reward']:.3f}")
    if bar is not None:
        bar.close()
    from musicgym.train.matcher import net_weights

    weights = net_weights(net, matcher.mean, matcher.std)
    if matcher.codebook is not None:
        weights.update(pca_mean=matcher.pca_mean, pca=matcher.pca, codebook=matcher.codebook,
                       codebook_actions=matcher.codebook_actions)
    meta = dict(matcher.meta)
    meta.update(rl_steps=steps, rl_targets=targets, rl_samples=samples, rl_sigma=sigma,
                rl_lr=lr, rl_synthetic_share=synthetic_share, rl_anchor=anchor, rl_seed=seed,
                rl_recorded_targets=0 if clips is None else len(clips),
                rl_first_reward=curve[0]["mean_reward"], rl_last_reward=curve[-1]["mean_reward"],
                input_clip=clip_at)
    return Matcher(weights, meta), curve


def write_curve(curve: list[dict], path: str | Path) -> Path:
    """Write the learning curve as CSV (``update,mean_reward,synthetic_reward,...``)."""
    path = Path(path)
    keys = list(curve[0])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            f.write(",".join(keys) + "\n")
            for p in curve:
                f.write(",".join("" if p[k] is None else json.dumps(p[k]) for k in keys) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the learning curve: {exc}") from None
    return path
