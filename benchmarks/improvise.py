"""Improvise-v0 env steps per second: rendering mode and lookup mode at B = 1 and 64, beside
the per-step cost of RL-impro's design (one nearest-row table lookup per env and step, in a
Python loop, no audio).

    python benchmarks/improvise.py [--repeats 5] [--steps 30] [--messages 500] [--live-only]

Prints a table and writes benchmarks/results/improvise.json. An env step is one env moving
once (a vector step of B envs counts B). Then the live server's decision latency per OSC
message over real UDP on loopback (the server in its own process; the server's own clock,
arrival to replies sent, and the client's round trip), for descriptor and audio messages,
nearest-neighbour and policy (an untrained PPO MlpPolicy: the cost does not depend on the
weights). Goals
(issue 6): lookup >= 20,000 steps/s at B = 64, rendering >= 1,000 steps/s at B = 64, live p99
under 5 ms.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import time
from pathlib import Path

import numpy as np

from musicgym.envs.improvise import ImproviseVectorEnv
from musicgym.envs.improvise_data import build_lookup
from musicgym.envs.synths import make_synth

RESULTS = Path(__file__).parent / "results" / "improvise.json"
SYNTH = "fm"                 # RL-impro's FM3, 3 parameters
SUBDIV = 10                  # RL-impro's FM3 table: 10^3 rows
FEATURES = ["loudness-dB", "specshape", "mfcc", "chroma"]   # RL-impro's usual set, F = 33


def time_env(env: ImproviseVectorEnv, steps: int, repeats: int) -> float:
    """Median env steps per second over ``repeats`` runs of ``steps`` vector steps."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    actions = rng.integers(0, 27, size=(steps, env.num_envs))
    env.step(actions[0])    # warm-up (JIT, caches)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        rates.append(steps * env.num_envs / (time.perf_counter() - start))
    return float(np.median(rates))


def time_rl_impro(table, batch: int, steps: int, repeats: int) -> float:
    """RL-impro's step: decode a ternary action, move, take the L1-nearest table row, for one
    env at a time (its envs are separate processes or a DummyVecEnv loop)."""
    rng = np.random.default_rng(0)
    params = rng.random((batch, 3))
    actions = rng.integers(0, 27, size=(steps, batch))
    powers = 3 ** np.arange(2, -1, -1)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for row in actions:
            for b in range(batch):
                digits = (row[b] // powers) % 3
                params[b] = np.clip(params[b] + (1 - digits) * 0.05, 0.0, 1.0)
                table.nearest(params[b:b + 1])
        rates.append(steps * batch / (time.perf_counter() - start))
    return float(np.median(rates))


def time_listening(batch: int, steps: int, repeats: int) -> dict:
    """Per-step cost of hearing B synths in rendering mode: the stream (set the parameters,
    render one frame on, analyse it: what the env does now) against a window rendered from
    silence each step (pre-roll + frame: what the env did before the stream), in steps/s."""
    from musicgym.envs.improvise_data import analyze_synth, analyze_window, feature_names

    synth, features = make_synth(SYNTH), feature_names(FEATURES)
    frame = 1024
    u = np.random.default_rng(0).random((steps, batch, synth.n_params))
    stream = synth.patch(44100).stream(synth.hole_matrix(u[0]))
    heard = stream.render(2 * frame).mean(axis=1)

    def streamed(params):
        nonlocal heard
        stream.set_params(synth.hole_matrix(params))
        heard = np.concatenate([heard[:, frame:], stream.render(frame).mean(axis=1)], axis=1)
        analyze_window(heard, features=features, frame_length=frame)

    def windowed(params):
        analyze_synth(synth, params, features=features, frame_length=frame)

    def streamed_render(params):   # the synth's part alone, without the descriptors
        stream.set_params(synth.hole_matrix(params))
        stream.render(frame)

    def windowed_render(params):
        synth.render(params, n_samples=frame, preroll=frame)

    out = {"B": batch}
    for name, fn in (("stream", streamed), ("window_from_silence", windowed),
                     ("stream_render_only", streamed_render),
                     ("window_render_only", windowed_render)):
        fn(u[0])   # warm-up
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for params in u:
                fn(params)
            rates.append(steps * batch / (time.perf_counter() - start))
        out[name] = float(np.median(rates))
    return out


WARM_UP = 10   # live messages sent first and left out of the latency figures


def _live_server(controller: str, messages: int, realtime: bool, conn,
                 listen: str = "lookup") -> None:
    """The server's side of :func:`time_live`, in its own process as ``musicgym live
    improvise`` would be: builds the improviser, reports its port and normalisation, serves
    ``messages`` packets, returns its per-message latencies."""
    from musicgym.envs.improvise_play import (
        Improviser,
        NearestNeighbour,
        PolicyController,
        make_core,
    )
    from musicgym.live.improvise import ImproviseServer, set_realtime

    core = make_core({"synth": SYNTH, "features_keep": FEATURES, "mode": listen,
                      "subdiv": SUBDIV})
    if controller in ("policy", "policy-predict"):
        import torch
        from stable_baselines3 import PPO

        torch.set_num_threads(1)   # as `musicgym live improvise --model` does

        from musicgym.envs.improvise import ImproviseEnv

        env = ImproviseEnv(synth=SYNTH, features_keep=FEATURES, mode="lookup", lookup=core.table)
        numpy = controller == "policy"
        agent = PolicyController(PPO("MlpPolicy", env, device="cpu", seed=0), core, numpy=numpy)
        if numpy and agent.numpy is None:
            raise RuntimeError("PPO's MlpPolicy should run as a NumPy forward pass")
    else:
        agent = NearestNeighbour.from_core(core)
    server = ImproviseServer(Improviser(core, agent), port=0)
    scheduling = set_realtime() if realtime else "normal priority"
    conn.send((server.port, list(core.features), core.mean, core.std, scheduling))
    server.serve(max_packets=messages, seconds=120)
    server.close()
    conn.send(server.summary() | {"latencies_s": server.latencies_s})


def time_live(controller: str, layout: str, messages: int, realtime: bool = False,
              listen: str = "lookup") -> dict:
    """Decision latency of ``musicgym live improvise`` (fm, F = 33, lookup listening) over UDP
    on loopback, the server in a process of its own: one message at a time, each answered
    before the next is sent (``WARM_UP`` more first, not counted)."""
    import multiprocessing

    from pythonosc.osc_message_builder import OscMessageBuilder

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    total = messages + WARM_UP
    proc = context.Process(target=_live_server,
                           args=(controller, total, realtime, child, listen), daemon=True)
    proc.start()
    port, features, mean, std, scheduling = parent.recv()
    rng = np.random.default_rng(0)
    packets = []
    for _ in range(total):
        if layout == "audio":
            builder = OscMessageBuilder("/musicgym/audio")
            builder.add_arg((0.3 * rng.standard_normal(512)).astype("<f4").tobytes())
        else:
            builder = OscMessageBuilder("/musicgym/descriptors")
            values = mean + std * rng.standard_normal(len(features))
            for name, value in zip(features, values, strict=True):
                builder.add_arg(name)
                builder.add_arg(float(value))
        packets.append(builder.build().dgram)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5.0)
    round_trips = []
    for data in packets:
        start = time.perf_counter()
        client.sendto(data, ("127.0.0.1", port))
        client.recvfrom(65536)
        client.recvfrom(65536)
        round_trips.append(time.perf_counter() - start)
    summary = parent.recv()
    proc.join(timeout=30)
    client.close()
    if summary["decisions"] != {layout: total} or summary["malformed"]:
        raise RuntimeError(f"the server did not answer every message as {layout}: {summary}")
    server = np.asarray(summary["latencies_s"][WARM_UP:]) * 1e3
    rt = np.asarray(round_trips[WARM_UP:]) * 1e3
    return {"controller": controller, "layout": layout, "messages": messages, "listen": listen,
            "realtime": realtime, "scheduling": scheduling,
            "server_ms_median": float(np.median(server)),
            "server_ms_p99": float(np.percentile(server, 99)),
            "server_ms_max": float(server.max()),
            "round_trip_ms_median": float(np.median(rt)),
            "round_trip_ms_p99": float(np.percentile(rt, 99))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--messages", type=int, default=500,
                        help="OSC messages per live latency measurement")
    parser.add_argument("--live-only", action="store_true",
                        help="measure the live server's latency only (no env steps)")
    args = parser.parse_args()
    table = build_lookup(make_synth(SYNTH), subdiv=SUBDIV, features=FEATURES)
    common = {"synth": SYNTH, "features_keep": FEATURES, "max_episode_steps": 10_000}
    rows = []
    for batch in () if args.live_only else (1, 64):
        row = {"B": batch}
        for mode in ("render", "lookup"):
            env = ImproviseVectorEnv(batch, mode=mode, lookup=table, **common)
            row[mode] = time_env(env, args.steps, args.repeats)
        row["rl_impro_nearest_row"] = time_rl_impro(table, batch, args.steps, args.repeats)
        rows.append(row)
    if rows:
        print(f"Improvise-v0 env steps/s ({SYNTH}, F = 33, frame 1024 at 44.1 kHz, median of "
              f"{args.repeats})")
        print(f"{'B':>4} {'rendering':>12} {'lookup':>12} {'RL-impro lookup':>16} "
              f"{'lookup/RL-impro':>16}")
    for row in rows:
        print(f"{row['B']:>4} {row['render']:>12,.0f} {row['lookup']:>12,.0f} "
              f"{row['rl_impro_nearest_row']:>16,.0f} "
              f"{row['lookup'] / row['rl_impro_nearest_row']:>15.1f}x")
    listening = [] if args.live_only else [time_listening(b, args.steps, args.repeats)
                                           for b in (1, 64)]
    if listening:
        print(f"\nrendering mode, hearing the synths (steps/s, {SYNTH}, F = 33): the stream "
              "against a window from silence per step")
        print(f"{'B':>4} {'stream':>12} {'from silence':>14} {'speed-up':>9} "
              f"{'render only: stream':>20} {'from silence':>13} {'speed-up':>9}")
    for row in listening:
        print(f"{row['B']:>4} {row['stream']:>12,.0f} {row['window_from_silence']:>14,.0f} "
              f"{row['stream'] / row['window_from_silence']:>8.2f}x "
              f"{row['stream_render_only']:>20,.0f} {row['window_render_only']:>13,.0f} "
              f"{row['stream_render_only'] / row['window_render_only']:>8.2f}x")
    live = []
    # rendering-mode listening: the improviser's synth streams on, one frame per decision
    live.append(time_live("nearest", "descriptors", args.messages, listen="render"))
    for realtime in (False, True):
        for controller in ("nearest", "policy"):
            for layout in ("descriptors", "audio"):
                live.append(time_live(controller, layout, args.messages, realtime))
    # the same policy through SB3's model.predict, for comparison (not a goal row)
    live.append(time_live("policy-predict", "descriptors", args.messages))
    print(f"\nlive server over UDP loopback ({SYNTH}, F = 33, lookup listening, "
          f"{args.messages} messages), decision latency in ms")
    print(f"{'controller':>14} {'message':>12} {'sched':>8} {'median':>8} {'p99':>8} {'max':>8} "
          f"{'round trip':>11} {'rt p99':>8}")
    for row in live:
        sched = "fifo" if row["scheduling"].startswith("real-time scheduling (") else "normal"
        name = row["controller"] + ("+render" if row["listen"] == "render" else "")
        print(f"{name:>14} {row['layout']:>12} {sched:>8} "
              f"{row['server_ms_median']:>8.3f} {row['server_ms_p99']:>8.3f} "
              f"{row['server_ms_max']:>8.3f} {row['round_trip_ms_median']:>11.3f} "
              f"{row['round_trip_ms_p99']:>8.3f}")
    refused = {r["scheduling"] for r in live if r["realtime"]} - {
        "real-time scheduling (SCHED_FIFO, priority 10)"}
    if refused:
        print("--realtime rows:", *refused)

    def p99(realtime: bool) -> float:
        return max(r["server_ms_p99"] for r in live
                   if r["controller"] != "policy-predict" and r["realtime"] == realtime)

    goals = {"live_p99_under_5ms": p99(False) < 5.0,
             "live_p99_under_5ms_realtime": p99(True) < 5.0}
    if rows:
        goals = {"lookup_B64_ge_20000": rows[-1]["lookup"] >= 20_000,
                 "render_B64_ge_1000": rows[-1]["render"] >= 1_000, **goals}
    if listening:
        goals["stream_ge_window_from_silence"] = all(
            r["stream"] >= r["window_from_silence"] for r in listening)
    print("goals:", ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in goals.items()))
    if args.live_only:
        return 0   # the results file keeps the last full run
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "listening": listening, "live": live,
                                   "goals": goals, "synth": SYNTH,
                                   "features": FEATURES, "table_rows": SUBDIV ** 3,
                                   "machine": platform.platform(), "time": time.ctime()},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
