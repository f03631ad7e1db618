"""Bring your own Pd synth: a synth.pd rendered through ``pd -batch``, its lookup table,
training on it and playing it live (skipped where Pure Data is not installed)."""

from pathlib import Path

import numpy as np
import pytest

import musicgym
from musicgym.envs.pd_synth import PdSynth, pd_binary
from musicgym.errors import ImproviseConfigError

SINE_PD = Path(musicgym.__file__).parent / "data" / "pd" / "sine_synth.pd"
needs_pd = pytest.mark.skipif(pd_binary() is None,
                              reason="Pure Data (pd) is not installed: apt install puredata-core")
FEATURES = {"features_keep": ["loudness-dB", "specshape-centroid", "pitch"],
            "features_reward": ["loudness-dB", "specshape-centroid"]}


@needs_pd
def test_pd_batch_renders_the_rows_in_turn():
    synth = PdSynth(SINE_PD)
    assert synth.n_params == 2
    audio = synth.render([[0.0, 1.0], [1 / 9, 0.5], [1.0, 0.0]], n_samples=4096, preroll=0)
    np.testing.assert_allclose(np.abs(audio).max(axis=1), [1.0, 0.5, 0.0], atol=1e-3)
    spectrum = np.abs(np.fft.rfft(audio[:2] * np.hanning(4096), axis=1))
    hz = spectrum.argmax(axis=1) * 44100 / 4096
    np.testing.assert_allclose(hz, [100.0, 200.0], atol=11.0)   # freq = 100 + 900 u


@needs_pd
def test_pd_synth_trains_and_plays_in_lookup_mode():
    import gymnasium
    from stable_baselines3 import PPO

    from musicgym.envs.improvise_play import Improviser, NearestNeighbour, make_core

    env = gymnasium.make("musicgym/Improvise-v0", synth=str(SINE_PD), mode="lookup", subdiv=5,
                         **FEATURES)
    table = env.unwrapped._core.table
    assert table.values.shape[0] == 25 and np.isfinite(table.values).all()
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    env.step(action)
    core = make_core({"synth": str(SINE_PD), "mode": "lookup", "subdiv": 5, **FEATURES})
    player = Improviser(core, NearestNeighbour.from_core(core, subdiv=5))
    params = player.decide(core.mean)
    assert params.shape == (2,) and ((0 <= params) & (params <= 1)).all()


def test_pd_synth_errors(tmp_path):
    with pytest.raises(ImproviseConfigError, match="no Pd synth"):
        PdSynth(tmp_path / "missing.pd")
    odd = tmp_path / "odd.pd"
    odd.write_text("#N canvas 0 50 450 300 12;\n#X obj 20 30 inlet;\n")
    with pytest.raises(ImproviseConfigError, match="n_params"):
        PdSynth(odd)
    with pytest.raises(ImproviseConfigError, match="use mode='lookup'"):
        from musicgym.envs.improvise_core import Improvisers

        Improvisers(1, synth=str(SINE_PD), mode="render")
