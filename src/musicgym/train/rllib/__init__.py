"""Train any registered env with Ray RLlib's PPO: the same envs, on one machine or a cluster.

``train_rllib(config, num_env_runners=K, address=...)`` writes ``runs/<timestamp>-RLLIB-PPO/``:

* ``config.yaml``: the resolved :class:`~musicgym.train.config.TrainConfig`;
* ``rllib.json``: how it ran (env runners, envs per runner, Ray address and version, the
  cluster's nodes and the node of each env runner, the policy (masks, LSTM), the budget's
  iterations and batch sizes), with one entry per session in ``sessions`` (resumes add one);
* ``metrics.json``: one row per training iteration (env steps so far, mean episode return of
  the episodes that ended in it, seconds);
* ``evaluations.json``: deterministic evaluations on a fresh env in the driver, in the same
  layout as the Stable-Baselines3 runs (``steps``, ``mean_return``, ``std_return``,
  ``mean_clip_distance`` for sound tasks);
* ``checkpoint/``: RLlib's checkpoint of the whole algorithm (``load_rllib_run`` restores it),
  written to a temporary folder first and then renamed into place; then ``checkpoint.json``,
  the env steps it holds (what ``resume`` continues from).

How the :class:`TrainConfig` fields map onto RLlib: ``steps`` env steps are split into PPO
iterations of equal batches (:func:`~musicgym.train.rllib.run.plan_budget`; the run says in
one line when the total differs from ``steps``); ``n_envs`` is spread over the env runners
(``ceil(n_envs / K)`` envs each); ``algo_kwargs`` go to ``PPOConfig.training()`` under RLlib's
names (``train_batch_size_per_learner``, ``minibatch_size``, ``num_epochs``, ``lr``...);
``seed``, ``eval_every``, ``eval_episodes`` and ``checkpoint_every`` mean what they mean for
SB3. ``algo`` is ``ppo``, ``maskable_ppo`` or ``recurrent_ppo``, all RLlib's PPO on the CPU:
envs with ``action_masks()`` (Counterpoint, Melody) get the mask in their observation and
:class:`~musicgym.train.rllib.module.MaskedPPOTorchModule`; ``recurrent_ppo`` and Accompany
get an LSTM (RLlib's ``use_lstm``).

Env runners are separate processes (on other machines, with a cluster), so the env is
registered with RLlib through :func:`~musicgym.train.rllib.envs.make_env`, which imports
musicgym there before calling ``gymnasium.make``. This package is not the Stable-Baselines3
path (``musicgym.train.runner``); it imports Ray only when a run starts.
"""

from musicgym.train.rllib.envs import make_env
from musicgym.train.rllib.ray_setup import check_address, check_num_env_runners
from musicgym.train.rllib.run import (
                                      choose_policy,
                                      evaluate_rllib_returns,
                                      load_rllib_run,
                                      plan_budget,
                                      train_rllib,
)

__all__ = ["check_address", "check_num_env_runners", "choose_policy", "evaluate_rllib_returns",
           "load_rllib_run", "make_env", "plan_budget", "train_rllib"]
