"""The parser: Glicol's grammar, accepted and rejected exactly as the real engine does, and
errors that say where and what to do."""

from __future__ import annotations

import pytest

from musicgym.errors import (
    ArgumentError,
    EngineTrapError,
    GlicolError,
    GlicolSyntaxError,
    MissingReferenceError,
    MissingSampleError,
    UnknownNodeError,
)
from musicgym.synth import ast, parse

# (code, accepted by glicol@0.4.0's grammar)
GRAMMAR_CASES = [
    ("o: sin 440", True), ("o: sin 440;p: saw 3", True), ("o: sin 440 // c", True),
    ("// c\no: sin 440", True), ("o: sin 440\n>> mul 0.5", True),
    ("o: sin 440\n  >> mul 0.5", True), ("o: sin 440 >>\nmul 0.5", False),
    ("o: sin 440 // hi\n>> mul 0.5", False), ("o: sin 1.", True), ("o: sin -0.5", True),
    ("o: sin 1.5e2", True), ("o: sin .5", False), ("o: sin 1e3", False), ("o: sin +440", True),
    ("O: sin 1", False), ("o1: sin 1", True), ("_x: sin 1", True), ("o_a: sin 1", True),
    ("o: sin,440", True), ("o: sin|440", True), ("o:sin 440", True), ("o : sin 440", True),
    ("o: seq 60 _ 62_64", True), ("o: seq 60 ~ab", False), ("o: seq -12", True),
    ("o: seq 60.5", False), ("o: choose 60 62", True), ("o: choose 60.5", False),
    ("o: envperc 1 2", True), ("o: envperc 1", False), ("o: envperc 1 2 3", False),
    ("o: imp ~a\n~a: sig 1", False), ("o: sinx 440", False), ("o: sin 440 mul", False),
    ("o: sin", False), ("o: sin 440 440", False), ("", True), ("\n\n", True), (";", False),
    ("o: sin 440;", True), ("o: sin 440;;p: sin 2", False), ("o: sin 440\tp: sin 2", True),
    ("o: sin 440 >> >> mul 2", False), ("o: sin ~A", False), ("o sin 440", False),
    ("o: sin 4_40", False), ("o: saw 00110", True), ('o: lpf "300@0 3000@0.5"(1) 1.0', True),
    ('o: sig "1@0 2@0.5"(1)', True), ("o: mix ~a.. \n~a1: sin 1\n~a2: sin 2", True),
]


@pytest.mark.parametrize("code,accepted", GRAMMAR_CASES)
def test_grammar_matches_the_engine_expectation(code, accepted):
    if accepted:
        parse(code)
    else:
        with pytest.raises(GlicolError):
            parse(code)


@pytest.mark.reference
@pytest.mark.parametrize("code,accepted", GRAMMAR_CASES)
def test_grammar_cases_are_what_the_real_engine_does(glicol, code, accepted):
    try:
        glicol(code, 128)
        engine_accepts = True
    except GlicolSyntaxError:
        engine_accepts = False
    except (MissingReferenceError, MissingSampleError, EngineTrapError):
        engine_accepts = True
    assert engine_accepts == accepted


def test_tree_keeps_lines_columns_holes():
    prog = parse("~env: imp 0.1 >> envperc {} {decay}\nkick: sin {freq} >> mul ~env")
    assert [c.name for c in prog.chains] == ["~env", "kick"]
    assert prog.hole_names == ("0", "decay", "freq")
    sin = prog.chains[1].nodes[0]
    assert (sin.name, sin.pos.line, sin.pos.column) == ("sin", 2, 7)
    hole = sin.args[0]
    assert isinstance(hole, ast.Hole) and (hole.pos.line, hole.pos.column) == (2, 11)
    assert isinstance(prog.chains[1].nodes[1].args[0], ast.Ref)


def test_named_hole_used_twice_is_one_parameter():
    prog = parse("a: sin {f} >> mul 0.5\nb: saw {f}")
    assert prog.hole_names == ("f",)


def test_seq_notes_with_holes_and_refs():
    prog = parse("~a: sig 60\no: seq 60 _ {n}_~a")
    notes = prog.chains[1].nodes[0].args[0]
    assert isinstance(notes, ast.SeqNotes)
    kinds = [type(e).__name__ for comp in notes.compounds for e in comp]
    assert kinds == ["Number", "Rest", "Hole", "Rest", "Ref"]
    assert notes.compounds[2][0].integer


@pytest.mark.parametrize("code,cls,line,column,hint", [
    ("o: sinx 440", UnknownNodeError, 1, 4, "did you mean 'sin'?"),
    ("o: sin 440\np: lfp 300 1", UnknownNodeError, 2, 4, "did you mean 'lpf'?"),
    ("o: envperc 0.1", ArgumentError, 1, 4, "envperc 0.01 0.2"),
    ("o: sin .5", GlicolSyntaxError, 1, 8, "write 0.5"),
    ("o: sin 1e3", GlicolSyntaxError, 1, 8, "1.0e3"),
    ("Out: sin 1", GlicolSyntaxError, 1, 1, "lower case"),
    ("o: sin 440 >>", GlicolSyntaxError, 1, 14, "'>>'"),
])
def test_errors_locate_and_suggest(code, cls, line, column, hint):
    with pytest.raises(cls) as info:
        parse(code)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert hint in str(err)
    lines = str(err).splitlines()
    caret = next(i for i, text in enumerate(lines) if text.strip() == "^")
    assert lines[caret].index("^") - 4 == column - 1  # the caret sits under the column


def test_missing_reference_is_located_with_suggestion():
    from musicgym.synth import Patch

    with pytest.raises(MissingReferenceError) as info:
        Patch("~lfo: sin 2\no: saw 100 >> mul ~lf0")
    assert (info.value.line, info.value.column) == (2, 19)
    assert "~lfo" in str(info.value)


@pytest.mark.parametrize("garbage", ["\x00\x01", "o: sin 440\n\x7f", "{}{}{}", "o: {", "~", ">>",
                                     "o: seq", 'o: sig "1@0', "o: ["])
def test_garbage_raises_glicol_errors_not_tracebacks(garbage):
    with pytest.raises(GlicolError):
        parse(garbage)


def test_non_string_code_is_a_type_error():
    with pytest.raises(TypeError):
        parse(42)


def test_random_text_never_escapes_as_a_bare_traceback():
    # fuzz: random strings over Glicol's alphabet either parse or raise a GlicolError
    import numpy as np

    alphabet = list("abcdefghijklmnopqrstuvwxyz~_0123456789.-+:;>>\n \t,|@\"()[]=/*!{}\\'`")
    rng = np.random.default_rng(7)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(1, 40))))
        if rng.random() < 0.5:
            text = "o: " + text
        try:
            parse(text)
        except GlicolError:
            pass
