"""The live server's fast paths: its own OSC reader and writer against python-osc, the NumPy
forward pass against SB3's ``model.predict``, the audio ring buffer, the garbage collector's
handling while serving, and real-time scheduling."""

from __future__ import annotations

import gc
import os
import socket
import struct
import threading

import numpy as np
import pytest

pytest.importorskip("pythonosc", reason="python-osc is in musicgym's 'live' extra")
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder  # noqa: E402
from pythonosc.osc_message import OscMessage  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402
from pythonosc.osc_packet import OscPacket  # noqa: E402

from musicgym.envs.improvise_data import analyze_window  # noqa: E402
from musicgym.envs.improvise_play import (  # noqa: E402
    Improviser,
    NearestNeighbour,
    NumpyPolicy,
    PolicyController,
    make_core,
)
from musicgym.live import improvise as live  # noqa: E402
from musicgym.live.improvise import (  # noqa: E402
    ImproviseServer,
    osc_message,
    parse_packet,
    set_realtime,
)

SINE = {"synth": "sine", "features_keep": ["loudness-dB", "pitch"],
        "features_reward": ["loudness-dB", "pitch"], "subdiv": 11, "mode": "lookup"}


def _built(address: str, *args, arg_type=None) -> bytes:
    builder = OscMessageBuilder(address=address)
    for a in args:
        builder.add_arg(a, arg_type) if arg_type else builder.add_arg(a)
    return builder.build().dgram


def _python_osc(data: bytes) -> list[tuple[str, list]]:
    return [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]


MESSAGES = [
    _built("/musicgym/descriptors", "loudness-dB", 0.25, "pitch", 440.0),
    _built("/musicgym/audio", np.arange(7, dtype="<f4").tobytes()),
    _built("/musicgym/audio", *[float(x) for x in np.linspace(-1, 1, 512)]),
    _built("/feats/loudness", *range(-3, 60)),
    _built("/x", 1.5, arg_type="d"),
    _built("/x", 2 ** 40, arg_type="h"),
    _built("/x", True, False, None),
    _built("/x", "élan", ""),
    _built("/x"),
    _built("/x", b"abcd", b"abcde"),
    _built("/x", [1, 2.5]),     # an array: python-osc decodes it for the fast reader
    _built("/x", (1, 2, 3, 4), arg_type="m"),
]


@pytest.mark.parametrize("data", MESSAGES)
def test_osc_reader_decodes_as_python_osc_does(data):
    assert parse_packet(data) == _python_osc(data)


def test_osc_reader_flattens_bundles_in_order():
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessage(MESSAGES[1]))
    outer = OscBundleBuilder(IMMEDIATELY)
    outer.add_content(OscMessage(MESSAGES[0]))
    outer.add_content(inner.build())
    outer.add_content(OscMessage(MESSAGES[3]))
    data = outer.build().dgram
    assert parse_packet(data) == _python_osc(data)
    assert [a for a, _ in parse_packet(data)] == ["/musicgym/descriptors", "/musicgym/audio",
                                                  "/feats/loudness"]


@pytest.mark.parametrize("data", [
    b"", b"no slash\0\0\0\0", b"/x\0\0,f\0\0", b"/x\0\0,s\0\0abc",
    b"/x\0\0,b\0\0" + struct.pack(">i", 99) + b"abcd", b"/x\0\0f\0\0\0" + b"\0" * 4,
    b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 64) + b"/x\0\0", b"/x\0\0,s\0\0\xff\xfe\0\0",
])
def test_osc_reader_rejects_bytes_that_are_no_packet(data):
    with pytest.raises(Exception) as caught:  # noqa: PT011 - any error counts as unparsable
        parse_packet(data)
    assert isinstance(caught.value, (ValueError, struct.error, IndexError))


def test_osc_writer_is_read_back_by_python_osc():
    args = ["fm", 440.0, 0.25, -3, "", b"\x00\x01\x02", 1e-3]
    message = OscMessage(osc_message("/musicgym/controls", args))
    assert message.address == "/musicgym/controls"
    got = list(message.params)
    assert got[0] == "fm" and got[3] == -3 and got[4] == "" and got[5] == b"\x00\x01\x02"
    np.testing.assert_allclose([got[1], got[2], got[6]], [440.0, 0.25, 1e-3], rtol=1e-7)
    assert OscMessage(osc_message("/musicgym/params", [])).params == []


def test_server_replies_with_float32_params_and_controls():
    core = make_core(SINE)
    server = ImproviseServer(Improviser(core, NearestNeighbour.from_core(core)), port=0)
    try:
        improviser = server.improviser
        server._reply(np.array([0.5, 0.25]), "rl-impro", ("127.0.0.1", 9))  # must not raise
        params = OscMessage(osc_message(live.REPLY_PARAMS, [0.5, 0.25])).params
        assert params == [0.5, 0.25]
        controls = improviser.controls()
        expected = {k: float(v[0]) for k, v in core.synth.get_controls(
            improviser.params[None]).items()}
        assert controls == pytest.approx(expected)
    finally:
        server.close()


@pytest.fixture(scope="module")
def sine_core():
    return make_core(SINE)


@pytest.mark.parametrize("action_type", ["ternary", "multidiscrete", "continuous"])
@pytest.mark.parametrize("net", [None, {"net_arch": [32, 16], "activation_fn": "relu"}])
def test_numpy_policy_acts_as_model_predict(sine_core, action_type, net):
    pytest.importorskip("stable_baselines3")
    import torch
    from stable_baselines3 import PPO

    from musicgym.envs.improvise import ImproviseEnv

    kwargs = {**SINE, "action_type": action_type}
    policy_kwargs = None
    if net is not None:
        policy_kwargs = {"net_arch": net["net_arch"], "activation_fn": torch.nn.ReLU}
    model = PPO("MlpPolicy", ImproviseEnv(**kwargs), seed=3, device="cpu",
                policy_kwargs=policy_kwargs)
    with torch.no_grad():   # weights away from their initial scale, so that actions vary
        for p in model.policy.parameters():
            p.mul_(3.0)
    fast = NumpyPolicy.from_sb3(model)
    assert fast is not None
    obs = np.random.default_rng(0).uniform(-3, 3, (300, model.observation_space.shape[0]))
    obs[:, -2:] = np.random.default_rng(1).random((300, 2))
    obs = obs.astype(np.float32)
    for o in obs:
        want = model.predict(o, deterministic=True)[0]
        got = fast(o)
        assert np.shape(got) == np.shape(want)
        if action_type == "continuous":
            np.testing.assert_allclose(got, want, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, want)
    if action_type != "continuous":   # the test would be empty if every action were alike
        assert len({tuple(np.atleast_1d(fast(o))) for o in obs}) > 1


def test_policy_controller_falls_back_to_predict_where_numpy_cannot_follow(sine_core):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from musicgym.envs.improvise import ImproviseEnv

    env = ImproviseEnv(**{**SINE, "action_type": "continuous"})
    sde = PPO("MlpPolicy", env, use_sde=True, seed=0, device="cpu")
    assert NumpyPolicy.from_sb3(sde) is None
    core = make_core({**SINE, "action_type": "continuous"})
    controller = PolicyController(sde, core)
    assert controller.numpy is None
    before = np.full(2, 0.5)
    moved = controller(np.zeros(8, dtype=np.float32), np.zeros(3), np.ones(3, bool), before)
    assert np.all(np.abs(moved - before) <= core.step_size + 1e-9)
    plain = PPO("MlpPolicy", env, seed=0, device="cpu")
    assert PolicyController(plain, core).numpy is not None
    assert PolicyController(plain, core, numpy=False).numpy is None


def test_audio_ring_buffer_keeps_the_latest_two_windows(sine_core):
    improviser = Improviser(sine_core, NearestNeighbour.from_core(sine_core))
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal(n) * 0.3 for n in (300, 512, 2500, 7)]
    for chunk in chunks:
        got = improviser.hear_audio(chunk)
    heard = np.concatenate([np.zeros(2048), *chunks])[-2048:]
    want = analyze_window(heard[None], features=sine_core.features, sr=sine_core.sr,
                          frame_length=sine_core.frame_length)[0]
    np.testing.assert_allclose(got, want)


def test_serving_freezes_and_restores_the_garbage_collector(sine_core):
    server = ImproviseServer(Improviser(sine_core, NearestNeighbour.from_core(sine_core)),
                             port=0)
    seen = {}

    def watch(srv):
        seen["enabled"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()
        srv.stop()

    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    thread = threading.Thread(target=server.serve, kwargs={"seconds": 10, "on_packet": watch})
    try:
        assert gc.isenabled()
        thread.start()
        client.sendto(_built("/musicgym/descriptors", "pitch", 330.0), ("127.0.0.1",
                                                                         server.port))
        thread.join(timeout=10)
    finally:
        client.close()
        server.close()
    assert seen["enabled"] is False and seen["frozen"] > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_set_realtime_says_what_it_did(monkeypatch):
    calls = []

    def refuse(pid, policy, param):
        calls.append((pid, policy, param.sched_priority))
        raise PermissionError(1, "Operation not permitted")

    if not hasattr(os, "sched_setscheduler"):
        assert "not available" in set_realtime()
        return
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    words = set_realtime(7)
    assert calls == [(0, os.SCHED_FIFO, 7)]
    assert "refused" in words and "Operation not permitted" in words and "ulimit -r" in words
    monkeypatch.setattr(os, "sched_setscheduler", lambda pid, policy, param: None)
    assert set_realtime(7) == "real-time scheduling (SCHED_FIFO, priority 7)"


def test_cli_realtime_flag_reports_what_the_os_allowed(monkeypatch, capsys):
    from musicgym.cli import main

    if not hasattr(os, "sched_setscheduler"):
        pytest.skip("no sched_setscheduler on this OS")

    def refuse(pid, policy, param):   # never make the test process itself real-time
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    rc = main(["live", "improvise", "--synth", "sine", "--features", "pitch", "--subdiv", "3",
               "--port", "0", "--seconds", "0", "--realtime"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "--realtime: real-time scheduling refused (Operation not permitted)" in out
    assert '"packets": 0' in out
