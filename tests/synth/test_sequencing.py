"""Sequencing nodes (seq, speed, choose, arrange, points) and the value patterns of ``sig``: the
NumPy backend against the real Glicol engine (renders of 2 s or more, max |numpy - glicol| <=
1e-5; every case measured so far is exact, 0, except through ``sin``), at several tempi, with
seeded random arguments, ``~x`` notes, ``speed`` and template holes; plus engine-free checks of
the spec's formulas and of the errors.

Automation points are a bare list node, ``o: [0=>0, 1/2=>1]*1``, as glicol@0.4.0 writes them.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicgym.errors import EngineTrapError, UnsupportedNodeError
from musicgym.synth import Patch
from musicgym.synth.nodes import NODES
from musicgym.synth.nodes.sequencing import Arrange, Choose, Points, Seq, Speed
from tests.synth.conformance import assert_matches

SR = 44100
TEMPI = [120.0, 97.0, 143.5]


def engine_points(glicol):
    """The real engine (kept as a fixture-like helper for the points tests)."""
    return glicol


# -- against the real engine -----------------------------------------------------------------
SEQ_CASES = [
    "o: seq 60 _ 72_67 >> mul 0.5",
    "o: seq 60 64_67 48",
    "o: seq 48__67 0 _60 127 1",
    "o: seq 60_62_64_65_67_69_71 _ 72__ 36",
    "o: speed 2 >> seq 60 _ 72_67",
    "o: speed 0.5 >> seq 60 62 64 65",
    "o: speed 3.7 >> seq 60 _62 0_64",
    "o: seq ~a _ 60\n~a: sig 72",
    "o: seq 48__67 0 _60 ~a\n~a: sig 61",
    "o: speed 2 >> seq 60 ~a\n~a: sig 64",
    "o: seq ~a ~b_60 ~a\n~a: choose 60 0 72\n~b: choose 48 50 55 57",
    "o: speed 1.5 >> seq ~x_~y 60 ~x\n~x: choose 60 62 0\n~y: sig 55",
    # a chain input that is no speed signal: the first ~x note reads it (plays 67)
    "o: sig 67 >> seq ~a 60\n~a: sig 64",
    # imp 100 fires at block starts now and then: a speed of 1 in those blocks
    "o: imp 100 >> seq 60 62 64 65",
    "o: seq 60 _ 72 >> envperc 0.01 0.2 >> mul ~s\n~s: sin 220",
]


@pytest.mark.reference
@pytest.mark.parametrize("bpm", TEMPI)
@pytest.mark.parametrize("code", SEQ_CASES)
def test_seq_matches_engine(glicol, code, bpm):
    assert_matches(code, glicol, seconds=3.0, bpm=bpm)


OTHER_CASES = [
    "o: speed 3.5",
    "o: speed 2 >> mul 0.5",
    "o: choose 60 64 67",
    "o: choose 1 2 2 2 0 5",
    "o: choose 7",
    "~a: sig 1\n~b: sig 2\no: arrange ~a 1 ~b 0.5",
    "~a: sig 1\n~b: sin 200\n~c: seq 60 72\no: arrange ~a 0.3 ~b 0.5 ~c 0.25",
    "~a: sig 1\n~b: sig 2\no: sig 5 >> arrange ~a 1 ~b 0.5",
    'o: sig "1@0.5"(1)',
    'o: sig "1@0.25 3@0.5"(2)',
    'o: sig "5@0.75 1@0.25 3@0.5 7@0.5"(1)',
    'o: sig "5@0.75 1@1.25 3@2.5"(2)',
    'o: sig "-2@0 0.5@0.125"(0.5)',
    'o: sin 1.0 >> mul ~p\n~p: sig "0.2@0 0.9@0.6"(1)',
]


@pytest.mark.reference
@pytest.mark.parametrize("bpm", TEMPI)
@pytest.mark.parametrize("code", OTHER_CASES)
def test_speed_choose_arrange_sig_match_engine(glicol, code, bpm):
    assert_matches(code, glicol, seconds=3.0, bpm=bpm)


POINTS_CASES = [
    "o: [0=>0.5, 1/2+10_ms=>1.0, 1-10_ms=>0.2]*1",
    "o: [1/4=>0.5, 1/2=>1.0, 3/4=>0.0]*1!",
    "o: [0=>0.5, 1/2=>1.0]*2",
    "o: [0=>0.5, 1/2=>1.0]/2",
    "o: [0=>0.5, 1+1_s=>1.0]*1",
    "o: [0=>0.5, 1/3=>-1.0, 1/7+1.5_s=>0.25, 1=>2.0]*1.3!",
    # unsorted times: the engine's linear scan, reproduced
    "o: [1/2=>0.5, 1/4=>1.0, 3/4=>0.2]*1",
    "o: [1/2=>0.5, 1/4=>1.0, 3/4=>0.2]*1!",
    # negative offsets count as 0 in the engine
    "o: [1/2-20_ms=>0.5, 1=>1.0]*1",
    # no span: NaN at sample 0, then the last value (the engine's bug)
    "o: [0=>0.5, 1/2=>1.0]",
    "o: [0.3=>0.5, 1/2=>1.0]",
    "o: sin 330 >> mul ~env\n~env: [0=>0.0, 1/8=>1.0, 1/2=>0.0]*1!",
]


@pytest.mark.reference
@pytest.mark.parametrize("bpm", TEMPI)
@pytest.mark.parametrize("code", POINTS_CASES)
def test_points_match_engine(glicol, code, bpm):
    assert_matches(code, engine_points(glicol), seconds=3.0, bpm=bpm)


@pytest.mark.reference
@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_choose_uses_the_engine_seed(glicol, seed):
    assert_matches("o: choose 60 64 67 0 1", glicol, seconds=2.0, seed=seed)
    assert_matches("o: seq ~a _ ~a_~a\n~a: choose 60 64 67 0", glicol, seconds=2.0, seed=seed)


def _random_seq(rng: np.random.Generator) -> str:
    refs = {"a": f"choose {' '.join(str(v) for v in rng.integers(0, 90, 3))}",
            "b": f"sig {int(rng.integers(30, 90))}"}
    used = set()
    compounds = []
    for _ in range(int(rng.integers(1, 6))):
        elems = []
        for _ in range(int(rng.integers(1, 5))):
            elems.append("_" if rng.random() < 0.2 else str(int(rng.integers(0, 100))))
        if rng.random() < 0.4:  # a ~x note ends its compound (a digit after it would join it)
            name = str(rng.choice(list(refs)))
            used.add(name)
            elems[-1] = f"~{name}"
        compounds.append("".join(elems))
    speed = f"speed {rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])} >> " if rng.random() < 0.5 else ""
    lines = [f"o: {speed}seq {' '.join(compounds)}"]
    lines += [f"~{name}: {refs[name]}" for name in sorted(used)]
    return "\n".join(lines)


@pytest.mark.reference
@pytest.mark.parametrize("case", range(12))
def test_random_seq_matches_engine(glicol, case):
    rng = np.random.default_rng(1000 + case)
    code = _random_seq(rng)
    bpm = float(rng.choice([60.0, 90.0, 120.0, 133.0, 175.5]))
    assert_matches(code, glicol, seconds=3.0, bpm=bpm)


def _random_points(rng: np.random.Generator) -> str:
    points = []
    for _ in range(int(rng.integers(1, 6))):
        den = int(rng.integers(1, 9))
        time = f"{int(rng.integers(0, den + 1))}/{den}"
        if rng.random() < 0.3:
            time += f"{rng.choice(['+', '-'])}{int(rng.integers(1, 300))}_ms"
        points.append(f"{time}=>{rng.uniform(-2, 2):.3f}")
    span = str(rng.choice(["*1", "*2", "/2", "*0.75", "*1.5"]))
    loop = "!" if rng.random() < 0.5 else ""
    return f"o: [{', '.join(points)}]{span}{loop}"


@pytest.mark.reference
@pytest.mark.parametrize("case", range(12))
def test_random_points_match_engine(glicol, case):
    rng = np.random.default_rng(2000 + case)
    code = _random_points(rng)
    bpm = float(rng.choice([60.0, 120.0, 150.0]))
    assert_matches(code, engine_points(glicol), seconds=3.0, bpm=bpm)


def _random_pattern(rng: np.random.Generator) -> str:
    events = " ".join(f"{rng.uniform(-5, 5):.2f}@{rng.uniform(0, 2):.3f}"
                      for _ in range(int(rng.integers(1, 6))))
    return f'o: sig "{events}"({rng.choice(["0.5", "1", "1.5", "2"])})'


@pytest.mark.reference
@pytest.mark.parametrize("case", range(8))
def test_random_sig_patterns_match_engine(glicol, case):
    rng = np.random.default_rng(3000 + case)
    assert_matches(_random_pattern(rng), glicol, seconds=4.0,
                   bpm=float(rng.choice([90.0, 120.0, 160.0])))


@pytest.mark.reference
@pytest.mark.parametrize("case", range(6))
def test_random_arrange_and_choose_match_engine(glicol, case):
    rng = np.random.default_rng(4000 + case)
    names = "abcd"[:int(rng.integers(1, 5))]
    lines = [f"~{name}: sig {i + 1}" for i, name in enumerate(names)]
    lines.append("o: arrange " + " ".join(
        f"~{name} {rng.choice([0.25, 0.5, 0.3, 1.0, 1.25])}" for name in names))
    assert_matches("\n".join(lines), glicol, seconds=4.0, bpm=float(rng.choice([100.0, 120.0])))
    choices = " ".join(str(v) for v in rng.integers(0, 128, int(rng.integers(1, 8))))
    assert_matches(f"o: choose {choices}", glicol, seconds=2.0, seed=int(rng.integers(0, 1000)))


def _assert_batch_matches(glicol, code: str, rows, *, bpm: float = 120.0,
                          seconds: float = 2.0) -> None:
    patch = Patch(code, bpm=bpm)
    ours = patch.render(rows, seconds=seconds)
    assert ours.shape[0] == len(rows)
    for b, row in enumerate(rows):
        filled = patch.fill(row)
        ref = glicol(filled, ours.shape[-1], bpm=bpm)
        diff = np.abs(ours[b].astype(np.float64) - ref)
        assert np.array_equal(np.isnan(ours[b]), np.isnan(ref)), filled
        assert np.nanmax(diff) <= 1e-5, (filled, float(np.nanmax(diff)))


@pytest.mark.reference
def test_seq_notes_from_template_holes(glicol):
    _assert_batch_matches(glicol, "o: seq {} _ {}", [[60, 72], [64, 0]])
    _assert_batch_matches(glicol, "o: speed 2 >> seq {}_{} ~a {}\n~a: sig 66",
                          [[60, 61, 62], [0, 72, 48], [100, 1, 60]], bpm=97.0)


@pytest.mark.reference
def test_holes_in_points_patterns_choose_and_arrange(glicol):
    _assert_batch_matches(glicol, "o: [0=>{}, 1/2=>{}, 3/4=>0.25]*1!",
                          [[0.1, 0.9], [-1.0, 2.5]])
    _assert_batch_matches(glicol, 'o: sig "{}@0.25 {}@0.5"(1)', [[1.0, 2.0], [3.5, -4.0]],
                          seconds=3.0)
    _assert_batch_matches(glicol, "o: choose {} 64 {}", [[60, 0], [1, 2]])
    _assert_batch_matches(glicol, "~a: sig 1\n~b: sig 2\no: arrange ~a {} ~b {}",
                          [[0.5, 0.25], [1.0, 0.5], [0.5, 0.25]], seconds=4.0)


@pytest.mark.reference
def test_engine_crashes_where_seq_raises(glicol):
    code = "~a: speed 72\no: seq ~a _ 60"
    with pytest.raises(EngineTrapError):
        glicol(code, 1024)
    with pytest.raises(EngineTrapError, match="speed signal"):
        Patch(code).render(seconds=0.1)


# -- engine-free checks of the spec's formulas -----------------------------------------------
def test_seq_heights_and_times():
    stereo = Patch("o: seq 60 _ 72_67 0").render(seconds=2.0)[0]
    assert not stereo[1].any()  # left channel only
    out = stereo[0]
    bar = 88200
    hits = np.flatnonzero(out)
    # compounds of a quarter bar each; 72_67 is three elements (72, rest, 67) of the third
    assert hits.tolist() == [0, bar // 2, bar // 2 + 2 * bar // 12]
    assert out[hits].tolist() == [1.0, 2.0, np.float32(2.0 ** (7 / 12))]


def test_speed_doubles_the_seq_tempo_and_speed_marks_blocks():
    slow = Patch("o: seq 60 72").render(seconds=2.0)[0, 0]
    fast = Patch("o: speed 2 >> seq 60 72").render(seconds=2.0)[0, 0]
    assert np.flatnonzero(slow).tolist() == [0, 44100]
    assert np.flatnonzero(fast).tolist() == [0, 22050, 44100, 66150]
    speed = Patch("o: speed 3.5").render(n_samples=1000)[0, 0]
    assert np.flatnonzero(speed).tolist() == list(range(0, 1000, 128))
    assert set(speed[::128].tolist()) == {3.5}


def test_choose_holds_a_value_per_block():
    out = Patch("o: choose 60 64 67").render(n_samples=128 * 40)[0]
    blocks = out[0].reshape(40, 128)
    assert (blocks == blocks[:, :1]).all()
    assert set(blocks[:, 0].tolist()) == {60.0, 64.0, 67.0}
    assert not out[1].any()


def test_arrange_switches_after_the_given_bars():
    out = Patch("~a: sig 1\n~b: sig 2\no: arrange ~a 0.5 ~b 0.25", bpm=120).render(
        seconds=4.0)[0, 0]
    q = 22050  # a quarter bar
    expected = np.r_[np.ones(2 * q), np.full(q, 2.0), np.ones(2 * q), np.full(q, 2.0),
                     np.ones(2 * q)]
    np.testing.assert_array_equal(out[:len(expected)], expected[:len(out)])


def test_points_interpolate_and_hold():
    out = Patch("o: [1/4=>1.0, 1/2=>0.5]*1").render(seconds=2.0)[0, 0]
    q = 22050
    np.testing.assert_allclose(out[[0, q // 2, q, q + q // 2, 2 * q, 3 * q]],
                               [0.0, 0.5, 1.0, 0.75, 0.5, 0.5], atol=1e-6)


def test_points_span_bug_and_the_fixed_mode():
    code = "o: [0=>0.5, 1/2=>1.0]"
    buggy = Patch(code).render(n_samples=300)[0, 0]
    assert np.isnan(buggy[0]) and (buggy[1:] == 1.0).all()
    fixed = Patch(code, compat=False).render(seconds=2.0)[0, 0]
    np.testing.assert_array_equal(fixed, Patch(code + "*1").render(seconds=2.0)[0, 0])
    with pytest.raises(UnsupportedNodeError, match="span"):
        Patch(code + "!").render(n_samples=128)
    late = Patch("o: [1/2-10_ms=>1.0]*1", compat=False).render(seconds=1.0)[0, 0]
    assert late[44100 - 441] == 1.0 and late[44100 - 442] < 1.0


def test_sig_pattern_holds_across_the_loop_and_needs_a_span():
    out = Patch('o: sig "1@0.25 3@0.5"(1)').render(seconds=4.0)[0, 0]
    assert out[0] == 0.0 and out[22050] == 1.0 and out[44100] == 3.0
    assert out[88200] == 3.0 and out[88200 + 22050] == 1.0  # the last value holds into bar 2
    with pytest.raises(UnsupportedNodeError, match="span"):
        Patch('o: sig "1@0.25 3@0.5"').render(n_samples=128)
    free = Patch('o: sig "1@0.25 3@0.5"', compat=False).render(seconds=2.0)
    np.testing.assert_array_equal(free, Patch('o: sig "1@0.25 3@0.5"(1)').render(seconds=2.0))


def test_batch_rows_equal_single_renders():
    code = "o: speed {} >> seq {} _{} ~a\n~a: choose 60 0 67"
    rows = np.array([[2.0, 60, 72], [1.0, 0, 61], [1.5, 48, 0]])
    batch = Patch(code).render(rows, seconds=2.0)
    for b, row in enumerate(rows):
        np.testing.assert_array_equal(batch[b], Patch(code).render(row[None], seconds=2.0)[0])


def test_arrange_with_a_repeated_ref_is_refused():
    with pytest.raises(UnsupportedNodeError, match="same ~ref"):
        Patch("~a: sig 1\n~b: sig 2\no: arrange ~a 1 ~b 1 ~a 1").render(n_samples=128)


def test_nodes_are_registered_with_usage_lines():
    for cls in (Seq, Speed, Choose, Arrange, Points):
        assert NODES[cls.name] is cls
        usage = cls.__doc__.split(":")[0]
        # points is written as a bare list: its usage line starts with the list
        assert usage.startswith("[" if cls is Points else cls.name + " "), usage
