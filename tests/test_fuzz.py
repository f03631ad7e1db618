"""The seeded fuzz of scripts/fuzz.py on a few thousand inputs: the Glicol parser and renderer,
every file reader (configs, match, MIDI, MusicXML, Scala, audio), action-space expressions and
an env's reset/step may succeed or raise a ``musicgym.errors`` exception, nothing else."""

from __future__ import annotations

from tests.scripts import load_script


def _fuzz_module():
    return load_script("scripts/fuzz.py", "musicgym_fuzz")


def test_only_musicgym_errors_on_3000_fuzzed_inputs():
    module = _fuzz_module()
    stats: dict = {}
    targets = tuple(name for name, _ in module.PLAN if name != "env_reset")
    findings = list(module.fuzz(3000, seed=0, stats=stats, targets=targets))
    assert not findings, "\n".join(f"{name}: {text!r}\n{trace}" for name, text, trace
                                   in findings[:5])
    # the inputs reach past the first check: some of each kind are accepted, some refused
    for name, counts in stats.items():
        assert counts["refused"] > 0, name
        assert counts["accepted"] > 0, name


def test_only_musicgym_errors_from_fuzzed_reset_options():
    findings = list(_fuzz_module().fuzz(3000, seed=0, targets=("env_reset",)))
    assert not findings, "\n".join(f"{name}: {text!r}" for name, text, _ in findings[:5])
