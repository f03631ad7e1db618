"""PPO's default RLModule with action masks, for RLlib's new API stack (imports Ray and torch).

Written after Ray's example ``ray/rllib/examples/rl_modules/classes/action_masking_rlm.py``,
but without changing the batch it is given (the example pops the mask out of the
observation in ``compute_values`` and relies on that in ``_forward_train``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.utils.torch_utils import FLOAT_MIN

from musicgym.train.rllib.envs import MASK_KEY, OBS_KEY


class MaskedPPOTorchModule(DefaultPPOTorchRLModule):
    """PPO's networks on ``obs["observations"]``; logits of actions ``obs["action_mask"]``
    forbids pushed to the lowest float, so they are never sampled (nor chosen greedily).

    The observation space must be the Dict that
    :class:`~musicgym.train.rllib.envs.MaskInObservation` makes; the networks are built for
    its ``"observations"`` part.
    """

    def __init__(self, *args, observation_space: gym.spaces.Dict | None = None,
                 **kwargs) -> None:
        if not isinstance(observation_space, gym.spaces.Dict) \
                or set(observation_space.spaces) != {MASK_KEY, OBS_KEY}:
            raise ValueError(f"MaskedPPOTorchModule needs a Dict observation space with keys "
                             f"{MASK_KEY!r} and {OBS_KEY!r}, got {observation_space}")
        self._space_with_mask = observation_space
        super().__init__(*args, observation_space=observation_space[OBS_KEY], **kwargs)

    def setup(self) -> None:
        super().setup()
        # the networks are built; from now on the module's space is what the env runners send
        self.observation_space = self._space_with_mask

    @staticmethod
    def _split(batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        obs = batch[Columns.OBS]
        return obs[MASK_KEY], {**batch, Columns.OBS: obs[OBS_KEY]}

    @staticmethod
    def _masked(out: dict[str, Any], mask) -> dict[str, Any]:
        out[Columns.ACTION_DIST_INPUTS] = out[Columns.ACTION_DIST_INPUTS] \
            + torch.clamp(torch.log(mask), min=FLOAT_MIN)
        return out

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._masked(super()._forward(batch, **kwargs), mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._masked(super()._forward_train(batch, **kwargs), mask)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None):
        if embeddings is None:
            batch = self._split(batch)[1]
        return super().compute_values(batch, embeddings)
