"""Train PPO to match a kick with plain Stable-Baselines3, the way you would write it yourself.

One file, top to bottom: arguments (every hyperparameter visible), the env (64 kick renders per
engine call), the agent, training with TensorBoard logs, then the matched sound as a WAV next to
the target.

    python examples/train_synth_match_sb3.py --steps 20000
    tensorboard --logdir runs/examples
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO

import musicgym  # noqa: F401  (registers the env ids)
from musicgym.audio.io import write_wav
from musicgym.train.sb3 import make_sb3_vec_env


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="musicgym/Kick-v0", help="a SynthMatch preset")
    p.add_argument("--target", default=None, help="an audio file to match (default: built-in)")
    p.add_argument("--steps", type=int, default=20_000, help="total env steps")
    p.add_argument("--num-envs", type=int, default=64, help="envs rendered per engine call")
    p.add_argument("--learning-rate", type=float, default=3e-3, help="Adam's step size")
    p.add_argument("--n-steps", type=int, default=8, help="rollout length per env")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size of an update")
    p.add_argument("--n-epochs", type=int, default=10, help="passes over each rollout")
    p.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    p.add_argument("--seed", type=int, default=1, help="seeds the envs and the policy")
    p.add_argument("-o", "--output", default="runs/examples", metavar="DIR",
                   help="output folder: a run folder of TensorBoard logs and WAVs per run")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # SB3's advice on CPU; the envs use the other core
    run = Path(args.output) / f"{args.env_id.split('/')[-1]}-{int(time.time())}"
    env_kwargs = {"target": args.target} if args.target else {}

    # the env: one engine call renders all num_envs candidates
    envs = make_sb3_vec_env(args.env_id, args.num_envs, seed=args.seed, env_kwargs=env_kwargs)

    # the agent
    model = PPO("MlpPolicy", envs, learning_rate=args.learning_rate, n_steps=args.n_steps,
                batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=args.gamma,
                seed=args.seed, tensorboard_log=str(run), verbose=0)
    model.learn(total_timesteps=args.steps, progress_bar=False)

    # what it learned: one forward pass proposes the parameters
    env = gym.make(args.env_id, **env_kwargs)
    obs, _ = env.reset(seed=args.seed)
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    core = env.unwrapped.core
    write_wav(run / "target.wav", core.target_clips[0], core.sr)
    write_wav(run / "agent.wav", env.unwrapped.clip_audio, core.sr)
    print(f"distance to the target: {info['clip_distance']:.4f}; parameters: {info['params']}")
    print(f"listen: {run}/target.wav and {run}/agent.wav; logs: tensorboard --logdir {args.output}")
    np.save(run / "params.npy", np.array(list(info["params"].values())))


if __name__ == "__main__":
    main()
