"""The engine's vectorised kernels give the same bits as the sample-by-sample code they replace
(which is itself bit-identical to the real Glicol engine: test_conformance_core.py)."""

import numpy as np
from numba import njit

from musicgym.synth.nodes.envelopes import envperc_kernel
from musicgym.synth.nodes.libm import sin_block, sin_turn, sinf
from musicgym.synth.nodes.sources import (
    SAW,
    SIN,
    SQU,
    TRI,
    _imp,
    _osc_const,
    _osc_const_fast,
    _osc_input,
    _osc_input_fast,
)

F32 = np.float32


@njit(cache=False)
def _sin_scalar(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = sin_turn(v) if v >= F32(0.0) else sinf(v)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.int32)


def test_sin_block_gives_the_scalar_bits():
    # every 97th float32 in [0, 7.1] (all of sin_turn's ranges and their edges' neighbours),
    # random arguments of both signs, and the special values the second pass handles
    grid = np.arange(0, F32(7.1).view(np.int32), 97, dtype=np.int32).view(F32)
    edges = np.array([0.785398125648498535, 2.35619449615478515625, 3.92699074745178222656,
                      5.49778699874877929688, 7.06858301162719726562, 2.44140625e-4], F32)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -1e-30, -1.0, 8.0, 1e10, -1e10], F32)
    rng = np.random.default_rng(0)
    x = np.concatenate([grid, edges, np.nextafter(edges, F32(0)), np.nextafter(edges, F32(9)),
                        special, rng.uniform(-30, 30, 200_000).astype(F32)])
    want, got = np.empty_like(x), np.empty_like(x)
    _sin_scalar(x, want)
    sin_block(x, got)
    assert np.array_equal(_bits(got), _bits(want))


def test_sin_at_a_constant_frequency_gives_the_scalar_bits_and_phases():
    rng = np.random.default_rng(1)
    for batch, n in ((64, 3712), (13, 1000), (1, 7)):  # full and partial blocks of 8 rows
        inc = (rng.uniform(-200, 30000, batch) / 44100).astype(F32)  # negative, > sr / 2
        inc[0] = F32(1.5)  # over one turn a sample: phases leave sin_turn's range
        phase0 = rng.uniform(0, 1, batch).astype(F32)
        want, got = np.empty((batch, n), F32), np.empty((batch, n), F32)
        p_want, p_got = phase0.copy(), phase0.copy()
        for _ in range(2):  # two chunks: the phases carry over
            _osc_const(SIN, inc, p_want, want)
            _osc_const_fast(SIN, inc, p_got, got)
            assert np.array_equal(_bits(got), _bits(want))
            assert np.array_equal(p_got, p_want)


@njit(cache=False)
def _envperc_scalar(x, attack, decay, pos, scale, out):
    """The sample-by-sample envelope envperc_kernel replaced."""
    B, n = out.shape
    for b in range(B):
        A = attack[b]
        D = decay[b]
        dur = A + D
        p = pos[b]
        s = scale[b]
        for i in range(n):
            v = x[b, i]
            if v > F32(0.0):
                p = 0
                s = v
            if p <= A:
                y = F32(0.0) if A == 0 else F32(p) / F32(A)
            elif p <= dur:
                y = F32(0.0) if D == 0 else F32(dur - p) / F32(D)
            else:
                y = F32(0.0)
            out[b, i] = y * s
            p += 1
        pos[b] = p
        scale[b] = s


def test_envperc_gives_the_scalar_bits_and_state():
    rng = np.random.default_rng(2)
    batch, n = 37, 2000
    # triggers of several heights (NaN and inf too) at random places, on rows with zero and
    # non-zero attacks and decays, from fresh and mid-envelope states
    x = np.where(rng.random((batch, n)) < 0.002, rng.uniform(0.1, 2.0, (batch, n)), 0.0)
    x = x.astype(F32)
    x[0, :6] = [1.0, np.nan, 0.5, -1.0, 3.0, np.inf]
    x[1, -1] = 1.0
    x[2, 63:66] = 1.0  # at the edges of the 64-sample blocks the trigger search counts
    attack = rng.integers(0, 400, batch)
    decay = rng.integers(0, 3000, batch)
    attack[:3], decay[3:6] = 0, 0
    pos0 = rng.integers(0, 5000, batch)
    scale0 = rng.uniform(0.1, 2.0, batch).astype(F32)
    want, got = np.empty((batch, n), F32), np.zeros((batch, 2, n), F32)
    state_want = (pos0.copy(), scale0.copy())
    state_got = (pos0.copy(), scale0.copy())
    for _ in range(2):  # two chunks: the state carries over
        _envperc_scalar(x, attack, decay, *state_want, want)
        envperc_kernel(x, attack, decay, *state_got, got)
        assert np.array_equal(_bits(got[:, 0]), _bits(want))
        assert not got[:, 1].any()  # channel 0 only
        assert np.array_equal(state_got[0], state_want[0])
        assert np.array_equal(state_got[1], state_want[1])


def test_envperc_runs_split_into_attack_decay_and_tail_give_the_scalar_bits():
    # long runs between sparse triggers, chunks of uneven lengths: each run's attack, decay
    # and tail start and end anywhere in a chunk (and in the 64-sample trigger blocks)
    rng = np.random.default_rng(4)
    batch, n = 29, 20_000
    x = np.where(rng.random((batch, n)) < 0.0003, rng.uniform(0.1, 2.0, (batch, n)), 0.0)
    x = x.astype(F32)
    x[:, 0] = 0.0
    x[3, 100] = np.inf  # scale inf: 0 / A * inf and the tail's 0 * inf are NaN
    attack = rng.integers(0, 2000, batch)
    decay = rng.integers(0, 6000, batch)
    attack[:2], decay[2:4] = 0, 0
    attack[5], decay[5] = 0, 0
    pos0 = rng.integers(0, 9000, batch)
    pos0[:6] = [0, 3, 0, 1, 0, 0]
    scale0 = rng.uniform(0.1, 2.0, batch).astype(F32)
    want, got = np.empty((batch, n), F32), np.zeros((batch, 2, n), F32)
    pos_want, scale_want = pos0.copy(), scale0.copy()
    _envperc_scalar(x, attack, decay, pos_want, scale_want, want)
    pos, scale = pos0.copy(), scale0.copy()
    edges = [0, 1, 63, 64, 1000, 1777, 4096, 4097, 9000, 15_000, n]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        part = np.zeros((batch, 2, hi - lo), F32)
        envperc_kernel(np.ascontiguousarray(x[:, lo:hi]), attack, decay, pos, scale, part)
        got[:, :, lo:hi] = part
    assert np.array_equal(_bits(got[:, 0]), _bits(want))
    assert not got[:, 1].any()
    assert np.array_equal(pos, pos_want) and np.array_equal(_bits(scale), _bits(scale_want))
    # the cases are exercised: NaNs after the inf trigger, rising, falling and silent samples
    assert np.isnan(want[3]).any()
    rising = np.diff(want[6:], axis=1) > 0
    assert rising.mean() > 0.02 and (np.diff(want[6:], axis=1) < 0).mean() > 0.1
    assert (want[6:] == 0).mean() > 0.1


def test_left_only_renders_the_left_channel_of_every_patch():
    import pytest

    from musicgym.errors import RenderLimitError
    from musicgym.synth import Patch
    from musicgym.synth.examples import EXAMPLES, default_params, example_samples

    stereo = {"stereo": "~l: saw {f} >> mul 0.3\n~r: squ 220 >> mul 0.2\no: balance ~l ~r",
              "feedback": "~a: sin {f} >> mul 0.5 >> add ~b\n~b: get ~a >> delayn 300 >> "
                          "mul 0.4\no: get ~a >> mul 0.3\np: sin 330 >> mul 0.1"}
    for name, code in [*((k, v[0]) for k, v in EXAMPLES.items()), *stereo.items()]:
        patch = Patch(code, samples=example_samples())
        if name in EXAMPLES:
            params = default_params(name, patch.params) if patch.n_params else None
        else:
            params = np.array([[110.0], [440.0], [97.0]])
        both = patch.render(params, n_samples=3000, progress=False)
        left = patch.render(params, n_samples=3000, progress=False, left_only=True)
        assert left.shape == both.shape[:1] + both.shape[2:] and left.flags.c_contiguous
        assert np.array_equal(_bits(left), _bits(np.ascontiguousarray(both[:, 0])))
        if name == "stereo":
            assert not np.array_equal(both[:, 0], both[:, 1])  # the test means something
    ref = Patch(EXAMPLES["kick"][0], backend="glicol")
    params = default_params("kick", ref.params)
    np.testing.assert_array_equal(ref.render(params, n_samples=512, left_only=True),
                                  ref.render(params, n_samples=512)[:, 0])
    with pytest.raises(RenderLimitError):
        ref.render(params, n_samples=0, left_only=True)


def test_render_into_a_given_array():
    import pytest

    from musicgym.errors import RenderLimitError
    from musicgym.synth import Patch

    patch = Patch("o: sin {f} >> mul 0.5")
    params = np.array([[110.0], [220.0], [330.0]])
    want = patch.render(params, n_samples=700)
    clips = np.full((3, 2000), 7.0, F32)
    got = patch.render(params, n_samples=700, left_only=True, out=clips[:, 100:800])
    assert np.shares_memory(got, clips)
    assert np.array_equal(clips[:, 100:800], want[:, 0]) and (clips[:, :100] == 7).all() \
        and (clips[:, 800:] == 7).all()
    both = np.empty((3, 2, 700), F32)
    assert patch.render(params, n_samples=700, out=both) is both
    assert np.array_equal(both, want)
    for bad in (np.empty((3, 699), F32), np.empty((3, 700)), np.empty((3, 2, 700), F32), [0.0]):
        with pytest.raises(RenderLimitError, match="out must be"):
            patch.render(params, n_samples=700, left_only=True, out=bad)


@njit(cache=False)
def _imp_scalar(period, since, out):
    """The sample-by-sample impulse clock _imp replaced."""
    B, n = out.shape
    for b in range(B):
        P = period[b]
        s = since[b]
        for i in range(n):
            if s < 0 or (P > 0 and s >= P):
                out[b, i] = F32(1.0)
                s = 0
            s += 1
        since[b] = s


def test_imp_gives_the_scalar_impulses_and_counts():
    rng = np.random.default_rng(3)
    batch, n = 40, 500
    period = rng.integers(1, 300, batch)
    period[:4] = [0, 1, 500, 10_000]  # none after the first, every sample, edges
    since0 = rng.integers(-1, 700, batch)
    since0[:8] = [-1, -1, -1, 5, 0, 499, 10_000, 300]
    want, got = np.zeros((batch, n), F32), np.zeros((batch, n), F32)
    s_want, s_got = since0.copy(), since0.copy()
    for _ in range(3):  # chunks: the counts carry over
        want[:], got[:] = 0.0, 0.0
        _imp_scalar(period, s_want, want)
        _imp(period, s_got, got)
        assert np.array_equal(got, want) and np.array_equal(s_got, s_want)


def test_sin_with_a_frequency_input_gives_the_scalar_bits():
    rng = np.random.default_rng(4)
    batch, n = 19, 3000  # two blocks of 8 rows side by side, 3 rows one by one
    freq = rng.uniform(-500, 30000, (batch, n)).astype(F32)  # FM: negative and > sr / 2 too
    freq[0, 100:200] = 0.0
    freq[[1, 17], 7] = np.nan  # a NaN phase stays NaN: the second pass's sinf
    freq[[2, 18]] = 60000.0  # over one turn a sample
    freq[3, 50:60] = np.inf
    phase0 = rng.uniform(0, 1, batch).astype(F32)
    last0 = rng.uniform(0, 100, batch).astype(F32)
    want, got = np.empty((batch, n), F32), np.empty((batch, n), F32)
    p_want, p_got, last, last_got = phase0.copy(), phase0.copy(), last0.copy(), last0.copy()
    for _ in range(2):
        _osc_input(SIN, freq, F32(44100), False, p_want, last, want)
        _osc_input_fast(SIN, freq, F32(44100), False, p_got, last_got, got)
        assert np.array_equal(_bits(got), _bits(want))
        assert np.array_equal(p_got, p_want, equal_nan=True)
    # sin never keeps a last frequency
    assert np.array_equal(last, last0) and np.array_equal(last_got, last0)


def test_envperc_reuses_its_buffer_only_when_nothing_else_holds_it():
    from musicgym.synth.nodes.base import Context
    from musicgym.synth.nodes.envelopes import EnvPerc

    batch, n = 3, 256
    x = np.zeros((batch, 1, n), F32)
    x[:, 0, 5] = 1.0
    node = EnvPerc(Context(batch=batch), [np.full(batch, 0.001), np.full(batch, 0.003)], True, 0)
    fresh = EnvPerc(Context(batch=batch), [np.full(batch, 0.001), np.full(batch, 0.003)], True,
                    0)
    first = node.process([x], 0, n)
    want = fresh.process([x], 0, n).copy()
    assert np.array_equal(first, want)
    held = first[:, 0]  # a view of the first chunk: that buffer must not be written again
    second = node.process([x], n, n)
    assert second is not first and np.array_equal(held, want[:, 0])
    second_id = id(second)
    del first, held, second
    third = node.process([x], 2 * n, n)
    assert id(third) == second_id  # nothing held it: reused
    want = fresh.process([x], n, n).copy()
    want = fresh.process([x], 2 * n, n).copy()
    assert np.array_equal(_bits(third), _bits(want)) and not third[:, 1].any()
    assert third[:, 0].any()
    assert node.process([x], 3 * n, n - 128).shape == (batch, 2, n - 128)  # a shorter chunk


def test_the_last_node_writing_into_the_result_gives_the_copied_bits(monkeypatch):
    from musicgym.synth import Patch
    from musicgym.synth.nodes import arith

    codes = {  # mul/add last, by a number, a mono ref, a stereo ref, on mono and stereo inputs
        "value": "o: sin {f} >> mul 0.3",
        "mono ref": "~e: imp 3 >> envperc 0.01 0.1\no: saw {f} >> mul ~e",
        "add ref": "~m: sin 3 >> mul 0.5\no: sin {f} >> add ~m",
        "stereo": "~l: saw {f} >> mul 0.3\n~r: squ 220 >> mul 0.2\no: balance ~l ~r >> mul 0.5",
        "stereo ref": "~l: sin 5\n~r: sin 7\n~s: balance ~l ~r\no: sin {f} >> add ~s",
        "feedback": "~a: sin {f} >> mul 0.5 >> add ~b\n~b: get ~a >> delayn 300 >> mul 0.4\n"
                    "o: get ~a >> mul 0.3",
        "feedback, mono": "~a: sin {f} >> mul 0.5 >> add ~b\n~b: get ~a >> mul 0.4\n"
                          "o: sin 220 >> mul ~a",
        "two outputs": "o: sin {f} >> mul 0.3\np: sin 330 >> mul 0.1",
    }
    params = np.array([[110.0], [440.0], [97.0]])
    direct, wrote = {}, set()
    into = arith._Binary.process_into

    def spy(self, *args):
        done = into(self, *args)
        if done:
            wrote.add(name)
        return done

    monkeypatch.setattr(arith._Binary, "process_into", spy)
    for name, code in codes.items():
        patch = Patch(code)
        direct[name] = patch.graph.direct is not None
        for left_only in (False, True):
            fast = patch.render(params, n_samples=9000, progress=False, left_only=left_only)
            with monkeypatch.context() as m:  # the runner's copy instead
                m.setattr(patch.graph, "direct", None)
                slow = patch.render(params, n_samples=9000, progress=False, left_only=left_only)
            assert np.array_equal(_bits(fast), _bits(slow)), name
            assert np.abs(fast).max() > 0
    assert direct["value"] and direct["feedback"] and not direct["two outputs"]
    # mono results are written directly; a stereo one (or a stereo input) is copied
    assert wrote == {"value", "mono ref", "add ref", "stereo ref", "feedback, mono"}


def test_oscillators_with_a_frequency_input_give_the_scalar_bits_and_state():
    rng = np.random.default_rng(5)
    batch, n = 9, 3000
    # note-like frequencies held for a while, with zeros (sticky: the last non-zero one
    # plays on), negative, NaN and inf ones, and > sr / 2
    freq = np.repeat(rng.choice([0.0, 0.0, 130.8, 261.63, 523.3, -90.0, 30000.0],
                                (batch, n // 100)), 100, axis=1).astype(F32)
    freq[0, :500] = 0.0  # from the last frequency of the previous chunk (or 0)
    freq[1, 1234] = np.nan
    freq[2, 2000:2010] = np.inf
    freq[3] = 60000.0  # over one turn a sample
    phase0 = rng.uniform(0, 1, batch).astype(F32)
    last0 = rng.uniform(0, 300, batch).astype(F32)
    last0[4] = 0.0
    for kind in (SAW, SQU, TRI, SIN):
        for sticky in (True, False):
            want, got = np.empty((batch, n), F32), np.empty((batch, n), F32)
            p_want, p_got = phase0.copy(), phase0.copy()
            l_want, l_got = last0.copy(), last0.copy()
            for _ in range(2):  # two chunks: the phases and last frequencies carry over
                _osc_input(kind, freq, F32(44100), sticky, p_want, l_want, want)
                _osc_input_fast(kind, freq, F32(44100), sticky, p_got, l_got, got)
                assert np.array_equal(_bits(got), _bits(want)), (kind, sticky)
                assert np.array_equal(_bits(p_got), _bits(p_want)), (kind, sticky)
                assert np.array_equal(_bits(l_got), _bits(l_want)), (kind, sticky)
            assert np.isfinite(want[5:]).all()
            assert np.unique(want[5:]).size > (1 if kind == SQU else 100)


def test_biquad_with_a_constant_cutoff_gives_the_scalar_bits_and_state():
    from musicgym.synth.nodes.filters import biquad_const_kernel, biquad_kernel

    rng = np.random.default_rng(6)
    batch, n = 11, 2000  # two blocks of 4 rows side by side, 3 rows one by one
    x = rng.standard_normal((batch, n)).astype(F32)
    x[1, 50] = np.inf
    cutoff = rng.uniform(20, 20000, batch).astype(F32)
    cutoff[2] = np.nan
    cutoff[9] = 30000.0  # above sr / 2
    q = rng.uniform(0.3, 8.0, batch).astype(F32)
    q[3] = 0.0  # the engine's NaN
    state0 = rng.standard_normal((batch, 4)).astype(F32)
    for highpass in (False, True):
        for fixed in (False, True):
            want, got = np.empty((batch, n), F32), np.empty((batch, n), F32)
            s_want, s_got = state0.copy(), state0.copy()
            for _ in range(2):  # two chunks: the state carries over
                biquad_kernel(x, np.repeat(cutoff[:, None], n, axis=1), q, F32(44100),
                              highpass, fixed, s_want, want)
                biquad_const_kernel(x, cutoff, q, F32(44100), highpass, fixed, s_got, got)
                assert np.array_equal(_bits(got), _bits(want)), (highpass, fixed)
                assert np.array_equal(_bits(s_got), _bits(s_want)), (highpass, fixed)
            assert np.isfinite(want[4:9]).all() and np.abs(want[4:9]).max() > 0.01


def test_oscillators_at_a_constant_frequency_give_the_scalar_bits_and_phases():
    rng = np.random.default_rng(7)
    batch, n = 13, 3000  # one block of 8 rows side by side, 5 rows one by one
    inc = (rng.uniform(-200, 30000, batch) / 44100).astype(F32)  # negative, > sr / 2
    inc[0] = F32(1.5)  # over one turn a sample
    inc[1] = np.nan
    phase0 = rng.uniform(0, 1, batch).astype(F32)
    for kind in (SAW, SQU, TRI, SIN):
        want, got = np.empty((batch, n), F32), np.empty((batch, n), F32)
        p_want, p_got = phase0.copy(), phase0.copy()
        for _ in range(2):  # two chunks: the phases carry over
            _osc_const(kind, inc, p_want, want)
            _osc_const_fast(kind, inc, p_got, got)
            assert np.array_equal(_bits(got), _bits(want)), kind
            assert np.array_equal(_bits(p_got), _bits(p_want)), kind
        assert np.unique(want[2:]).size > (1 if kind == SQU else 100)
