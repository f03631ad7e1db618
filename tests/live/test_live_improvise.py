"""The live improviser: its OSC server driven over real UDP on loopback, its message layouts,
its WAV rendering, a policy loaded from a run folder, the CLI, and the Pure Data patch."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("pythonosc", reason="python-osc is in musicgym's 'live' extra")
from pythonosc.osc_message import OscMessage  # noqa: E402
from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from musicgym.cli import main  # noqa: E402
from musicgym.envs.improvise_play import (  # noqa: E402
    Improviser,
    NearestNeighbour,
    PolicyController,
    make_core,
)
from musicgym.errors import ImproviseConfigError  # noqa: E402
from musicgym.live import improvise as live  # noqa: E402
from musicgym.live.improvise import (  # noqa: E402
    ImproviseServer,
    MalformedMessageError,
    OscPortError,
    read_message,
)

SR = 44100
PATCH = Path(__file__).resolve().parents[2] / "pd" / "musicgym_improvise.pd"
# the sine synth (freq 20 + 2500 u Hz, amp u) following loudness and pitch, as the Pd patch asks
SINE = {"synth": "sine", "features_keep": ["loudness-dB", "pitch"],
        "features_reward": ["loudness-dB", "pitch"], "subdiv": 21}


@pytest.fixture(scope="module")
def core():
    return make_core(SINE, listen="lookup")


def _improviser(core) -> Improviser:
    return Improviser(core, NearestNeighbour.from_core(core))


def _message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address=address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


def _tone(hz: float, amp: float, n: int) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A musician's side on loopback: sends packets, reads replies by address."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def replies(self, n: int) -> dict[str, list]:
        out = {}
        for _ in range(n):
            msg = OscMessage(self.sock.recvfrom(65536)[0])
            out[msg.address] = list(msg.params)
        return out


def test_server_answers_descriptors_audio_and_rl_impro_over_udp_and_counts_malformed(core):
    server = ImproviseServer(_improviser(core), port=0)
    packets = 15
    thread = threading.Thread(target=server.serve, kwargs={"seconds": 30,
                                                           "max_packets": packets})
    thread.start()
    client = Client(server.port)
    try:
        client.send(_message("/musicgym/descriptors", "loudness-dB", 0.3, "pitch", 440.0))
        first = client.replies(2)
        assert first["/musicgym/controls"][0] == "sine"
        freq_hz, amp = first["/musicgym/controls"][1:]
        assert abs(freq_hz - 440.0) < 80 and amp > 0
        assert len(first["/musicgym/params"]) == 2

        tone = _tone(1000.0, 0.5, 4 * 512)
        for k in range(4):   # floats, one hop per message: the server analyses its last window
            client.send(_message("/musicgym/audio", *tone[k * 512:(k + 1) * 512].tolist()))
            heard = client.replies(2)
        assert abs(heard["/musicgym/controls"][1] - 1000.0) < 80
        client.send(_message("/musicgym/audio", _tone(2000.0, 0.5, 1024).tobytes()))  # a blob
        assert abs(client.replies(2)["/musicgym/controls"][1] - 2000.0) < 80

        # RL-impro's layout: 55 agent features, 55 musician features, N parameters
        rl = [0.0] * 55 + [-20.0, -19.0, 0.1] + [0.0] * 52 + [0.5, 0.5]
        client.send(_message("/feats/loudness", *rl))
        answer = client.replies(3)
        values = [float(v) for v in answer["/agent-params"][0].split()]
        np.testing.assert_allclose(values, answer["/musicgym/params"], atol=1e-6)

        malformed = [b"not osc at all", _message("/musicgym/descriptors", "pitch"),
                     _message("/musicgym/descriptors", "no-such-descriptor", 1.0),
                     _message("/musicgym/descriptors", "pitch", float("nan")),
                     _message("/musicgym/audio", "loud"), _message("/feats/loudness", 1.0, 2.0),
                     _message("/elsewhere", 1.0)]
        for data in malformed:
            client.send(data)
        client.send(_message("/musicgym/descriptors", "pitch", 1500.0))
        last = client.replies(2)   # the first reply after the malformed ones is this one's
        assert abs(last["/musicgym/controls"][1] - 1500.0) < 80
        thread.join(timeout=10)
        assert not thread.is_alive()   # stopped by itself after `packets` packets
    finally:
        server.stop()
        thread.join(timeout=5)
        server.close()
        client.sock.close()
    summary = server.summary()
    assert summary["packets"] == packets
    assert summary["decisions"] == {"descriptors": 2, "audio": 5, "rl-impro": 1}
    assert summary["malformed"] == len(malformed)
    assert summary["malformed_by_reason"] == {
        "unparsable packet": 1, "bad argument count": 2, "unknown descriptor": 1,
        "non-finite value": 1, "bad argument type": 1, "unknown address": 1}
    assert 0 < summary["latency_ms_median"] <= summary["latency_ms_p99"] < 1000


@pytest.mark.parametrize(("address", "args", "reason"), [
    ("/musicgym/descriptors", (), "bad argument count"),
    ("/musicgym/descriptors", (3.0, 1.0), "bad argument type"),
    ("/musicgym/descriptors", ("mfcc-3", 1.0), "no kept descriptor"),
    ("/musicgym/audio", (b"\x00\x00\x00",), "bad audio blob"),
    ("/musicgym/audio", (), "bad argument count"),
    ("/feats/loudness", tuple([0.0] * 54), "bad argument count"),
])
def test_read_message_rejects_what_fits_no_layout(core, address, args, reason):
    with pytest.raises(MalformedMessageError) as info:
        read_message(_improviser(core), address, args)
    assert info.value.reason == reason


def test_rl_impro_columns_map_to_musicgym_descriptors(core):
    improviser = _improviser(core)
    musician = np.arange(55, dtype=float)
    target, layout = read_message(improviser, "/feats/loudness", tuple(musician))
    assert layout == "rl-impro"
    # RL-impro's third column, "loudness-dB", is musicgym's loudness-amp; it has no pitch
    assert improviser.features == ("loudness-amp", "pitch", "pitch-confidence")
    assert target[0] == 2.0 and np.isnan(target[1:]).all()


def test_port_in_use_raises_a_clear_error(core):
    server = ImproviseServer(_improviser(core), port=0)
    try:
        with pytest.raises(OscPortError, match=f"cannot listen on UDP 127.0.0.1:{server.port}"):
            ImproviseServer(_improviser(core), port=server.port)
    finally:
        server.close()


def test_render_history_plays_each_decision_for_one_hop(core, tmp_path):
    improviser = _improviser(core)
    for hz in [440.0] * 20 + [1500.0] * 20:
        improviser.decide(np.array([0.5, hz, 1.0]))
    path = improviser.write_wav(tmp_path / "agent.wav")
    audio, sr = sf.read(path)
    assert sr == SR and len(audio) == 41 * 512
    for segment, hz in ((audio[2 * 512:18 * 512], 440.0), (audio[22 * 512:38 * 512], 1500.0)):
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
        peak_hz = np.argmax(spectrum) * SR / len(segment)
        assert abs(peak_hz - hz) < 80
    # a held state continues its phase: its level is steady within one period
    held = audio[2 * 512:18 * 512]
    rms = np.sqrt((held.reshape(-1, 512) ** 2).mean(axis=1))
    assert rms.min() > 0.9 * rms.max()


def test_render_before_any_decision_says_so(core):
    with pytest.raises(ImproviseConfigError, match="no decision"):
        _improviser(core).render_history()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as `musicgym train` writes it: config.yaml and model.zip (an untrained PPO
    policy is still a policy of the right shape; training is the training CLI's business)."""
    pytest.importorskip("stable_baselines3")
    import yaml
    from stable_baselines3 import PPO

    from musicgym.envs.improvise import ImproviseEnv
    from musicgym.train.config import TrainConfig
    from musicgym.train.runfiles import save_checkpoint

    env_kwargs = {**SINE, "mode": "lookup", "action_type": "multidiscrete"}
    folder = tmp_path_factory.mktemp("run")
    model = PPO("MlpPolicy", ImproviseEnv(**env_kwargs), n_steps=32, batch_size=32, seed=0,
                device="cpu")
    config = TrainConfig(env_id="musicgym/Improvise-v0", steps=32, n_envs=1,
                         env_kwargs=env_kwargs)
    save_checkpoint(model, folder, config, name="model")  # with the record load_run checks
    (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    return folder


def test_policy_moves_by_its_action_steps_and_must_fit_the_synth(run_dir):
    from musicgym.train.evaluate import load_run

    config, model = load_run(run_dir)
    core = make_core(config.env_kwargs)
    improviser = Improviser(core, PolicyController(model, core))
    before = improviser.params.copy()
    after = improviser.decide(np.array([0.5, 440.0, 1.0]))
    moved = np.round((after - before) / 0.05, 6)
    assert set(moved.tolist()) <= {-1.0, 0.0, 1.0}
    fm = make_core({"synth": "fm", "mode": "lookup", "subdiv": 3})
    with pytest.raises(ImproviseConfigError, match="use the synth and features_keep"):
        PolicyController(model, fm)


def _serve_cli(argv: list[str], port: int, messages: list[bytes], n_replies: int):
    """Run `musicgym ...argv` in a thread while a client sends ``messages``; (rc, replies)."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(rc=main(argv)))
    thread.start()
    client = Client(port)
    replies = {}
    try:
        deadline = time.monotonic() + 20
        while not replies and time.monotonic() < deadline:   # until the server is up
            client.send(messages[0])
            client.sock.settimeout(0.5)
            try:
                replies = client.replies(n_replies)
            except TimeoutError:
                continue
        client.sock.settimeout(5.0)
        for data in messages[1:]:
            client.send(data)
            replies = client.replies(n_replies)
        thread.join(timeout=20)
    finally:
        client.sock.close()
    assert not thread.is_alive()
    return result["rc"], replies


def test_cli_live_improvise_serves_a_trained_run_and_writes_its_wav(run_dir, tmp_path, capsys):
    port, wav = _free_port(), tmp_path / "agent.wav"
    messages = [_message("/musicgym/descriptors", "loudness-dB", 0.2, "pitch", 330.0)] * 3
    rc, replies = _serve_cli(["live", "improvise", "--model", str(run_dir), "--port", str(port),
                              "--reply-port", "0", "--max-packets", "3", "--seconds", "30",
                              "--wav", str(wav)], port, messages, 2)
    assert rc == 0
    assert replies["/musicgym/controls"][0] == "sine"
    out = capsys.readouterr().out
    assert f"listening on udp 127.0.0.1:{port}" in out and f"the policy of {run_dir}" in out
    assert '"packets": 3' in out and "latency_ms_p99" in out
    assert sf.info(wav).frames == 4 * 512


def test_cli_live_improvise_refuses_a_synth_the_run_does_not_play(run_dir, capsys):
    rc = main(["live", "improvise", "--model", str(run_dir), "--synth", "fm", "--port", "0",
               "--seconds", "0"])
    assert rc == 1
    assert "--synth fm: the run's agent plays 'sine'" in capsys.readouterr().err


def test_cli_live_improvise_baseline_runs_without_a_model(capsys):
    port = _free_port()
    audio = _message("/musicgym/audio", _tone(660.0, 0.5, 1024).tobytes())
    rc, replies = _serve_cli(["live", "improvise", "--synth", "sine", "--features",
                              "loudness-dB", "pitch", "--subdiv", "21", "--port", str(port),
                              "--reply-port", "0", "--max-packets", "2"], port, [audio] * 2, 2)
    assert rc == 0
    assert abs(replies["/musicgym/controls"][1] - 660.0) < 80
    assert "nearest-neighbour lookup" in capsys.readouterr().out


@pytest.fixture(scope="module")
def pd_binary() -> str:
    path = shutil.which("pd")
    if path is None:
        pytest.skip("Pure Data is not installed (apt-get install puredata-core)")
    return path


def test_pd_patch_loads_with_vanilla_objects_only(pd_binary):
    done = subprocess.run([pd_binary, "-nogui", "-noaudio", "-noprefs", "-stderr", "-batch",
                           "-open", str(PATCH), "-send", "pd quit"],
                          capture_output=True, text=True, timeout=30)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "couldn't create" not in log and "error" not in log.lower(), log


@pytest.mark.parametrize("send", ["audio", "descriptors"])
def test_pd_patch_talks_to_the_server_over_udp(core, pd_binary, send):
    """The patch's test tone (440 Hz at 0.5) sent as raw audio (the default: the server
    analyses it) or as sigmund~'s descriptors; the server's controls come back and the patch
    prints them (and would play them)."""
    listen = _free_port()
    server = ImproviseServer(_improviser(core), port=0, reply_to=("127.0.0.1", listen))
    thread = threading.Thread(target=server.serve, kwargs={"seconds": 15, "max_packets": 60})
    thread.start()
    choose = [] if send == "audio" else ["-send", f"musicgym-send {send}"]
    pd = subprocess.Popen([pd_binary, "-nogui", "-noaudio", "-noprefs", "-stderr",
                           "-send", f"musicgym-port {server.port}",
                           "-send", f"musicgym-listen {listen}", "-send", "musicgym-tone 440",
                           *choose, "-open", str(PATCH)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        thread.join(timeout=20)
    finally:
        server.stop()
        thread.join(timeout=5)
        server.close()
        pd.terminate()
        log = pd.communicate(timeout=10)[0]
    summary = server.summary()
    assert summary["decisions"].get(send, 0) >= 30 and len(summary["decisions"]) == 1, summary
    assert summary["malformed"] == 0
    printed = [line.split()[1:] for line in log.splitlines()
               if line.startswith("musicgym-controls: sine")]
    assert printed, log
    freq_hz, amp = map(float, printed[-1][1:])
    assert abs(freq_hz - 440.0) < 80 and amp > 0.2


def _patch_objects() -> list[list[str]]:
    """The patch's top-level boxes in creation order (what `#X connect` numbers), as words."""
    boxes, depth = [], 0
    for record in PATCH.read_text().split(";\n"):   # records end in ";" + newline
        words = record.split()
        if words[:2] == ["#N", "canvas"]:
            depth += 1
        elif words[:2] == ["#X", "restore"]:
            depth -= 1
            if depth == 1:
                boxes.append(words[4:])
        elif depth == 1 and words[:2] in (["#X", "obj"], ["#X", "msg"], ["#X", "text"]):
            boxes.append(words[4:])
    return boxes


def test_pd_patch_messages_fit_what_the_server_reads(core):
    """Without Pd: the addresses the patch formats, the descriptor names it sends, the size
    of its audio frames and the replies it routes, against the server's layouts."""
    boxes = _patch_objects()
    formats = sorted("/" + "/".join(b[1:]) for b in boxes if b and b[0] == "oscformat")
    assert formats == sorted([live.AUDIO, live.DESCRIPTORS])
    # the descriptor message: name value pairs whose names the server knows
    (pairs,) = [b[1:] for b in boxes if b[:1] == ["list"] and "pitch" in b]
    names = pairs[0::2]
    assert all(v.startswith("\\$") for v in pairs[1::2]) and len(names) == 4
    args = tuple(x for n in names for x in (n, 0.5))
    target, layout = read_message(_improviser(core), live.DESCRIPTORS, args)
    assert layout == "descriptors" and np.isfinite(target).all()   # every kept one is sent
    # the audio frames: block~ 512 into a 512-point array, read whole
    text = PATCH.read_text()
    assert "#X obj 200 20 block~ 512;" in text and "array define musicgym-frame 512" in text
    assert "tabsend~ musicgym-frame" in text and "array get musicgym-frame" in text
    frame = tuple(float(x) for x in _tone(440.0, 0.5, 512))
    assert read_message(_improviser(core), live.AUDIO, frame)[1] == "audio"
    # the replies: route musicgym -> route controls -> route sine fm
    routes = [b[1:] for b in boxes if b[:1] == ["route"]]
    assert live.REPLY_CONTROLS.strip("/").split("/") == [routes[0][0], routes[1][0]]
    assert routes[2] == ["sine", "fm"]
    assert ["musicgym-send"] in [b[1:] for b in boxes if b[:1] == ["r"]]
