"""``musicgym live accompany`` over real MIDI ports: a JACK server (dummy audio driver, no sound
card), the accompanist in its own process, a real Brahms primo take played into its input port
in real time and its output collected from another port."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from musicgym.follow.duets import BRAHMS, default_duets_dir
from musicgym.live.accompany import (
    MidiPortError,
    midi_backend,
    open_ports,
    performance_messages,
    read_performance,
)

pytestmark = pytest.mark.slow  # about 25 s: 15 s of solo in real time, and the score read twice

BRAHMS_DIR = default_duets_dir() / BRAHMS
SCORE = BRAHMS_DIR / "musicxml" / "Brahms_Hungarian-Dance-5_Full.musicxml"
PRIMO = str(BRAHMS_DIR / "match" / "Brahms_Hungarian-Dance-5_Primo_2021-08-10_{}.match")
SOLO_S = 15.0  # the first 15 s of take 6


@pytest.fixture(scope="module")
def jack_midi(jack_server):
    """conftest.py's JACK server, where python-rtmidi speaks JACK and the real duets are here;
    yields a function that returns the end of the server's log."""
    rtmidi = pytest.importorskip("rtmidi")
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("python-rtmidi here was built without the JACK API")
    if not BRAHMS_DIR.is_dir():
        pytest.skip(f"real duets not found under {default_duets_dir()}: set MUSICGYM_DUETS_DIR")
    deadline = time.monotonic() + 10.0
    while True:  # the server answers jack_lsp; wait until it takes MIDI clients too
        try:
            ports = open_ports(None, None, virtual=True, api="jack")
        except MidiPortError:
            if time.monotonic() > deadline:
                pytest.fail(f"jackd -d dummy took no MIDI client: {jack_server.log()}")
            time.sleep(0.1)
        else:
            for port in ports:
                port.close()
            break
    return jack_server.log


def _port(names: list[str], ending: str) -> str:
    found = [n for n in names if n.endswith(ending)]
    assert len(found) == 1, f"one port ending {ending!r} expected among {names}"
    return found[0]


def test_the_accompanist_follows_a_real_take_over_jack(jack_midi):
    import mido

    from musicgym.music.score import read_score

    performed = np.sort(read_performance(PRIMO.format(6)), order=["onset_sec", "pitch"])
    performed = performed[performed["onset_sec"] < performed["onset_sec"][0] + SOLO_S]
    messages = performance_messages(performed)
    accompanist = subprocess.Popen(
        [sys.executable, "-m", "musicgym", "live", "accompany", "--score", str(SCORE),
         "--part", "solo=Piano 1", "--part", "accompaniment=Piano 2", "--tempo-model",
         "kalman", "--reference", PRIMO.format(1), "--bpm", "140", "--midi-api", "jack",
         "--virtual", "--seconds", str(SOLO_S + 1.5)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60.0, accompanist.kill)
    watchdog.start()
    try:
        # the accompanist says it listens once its ports are open and the score is read
        lines = []
        while not any("listening on" in line for line in lines):
            line = accompanist.stderr.readline()
            assert line, f"the accompanist stopped before listening: {''.join(lines)}"
            lines.append(line)

        backend = midi_backend("jack")
        received: list[tuple[float, int]] = []  # (time, pitch) of each accompaniment note-on

        def hear(message):
            if message.type == "note_on" and message.velocity > 0:
                received.append((time.perf_counter(), message.note))

        # what the accompanist plays is an input here, its input port an output
        listener = backend.open_input(_port(backend.get_input_names(), ":musicgym accompanist"),
                                      callback=hear)
        soloist = backend.open_output(_port(backend.get_output_names(), ":musicgym soloist"))
        sent_at = np.full(len(performed), np.nan)  # when each solo note-on went out
        order = {}  # (onset, pitch) -> index in performed, for the note-on times
        for i, note in enumerate(performed):
            order.setdefault((float(note["onset_sec"]), int(note["pitch"])), []).append(i)
        start = time.perf_counter() + 0.3 - messages[0][0]
        for at, pitch, velocity in messages:
            time.sleep(max(start + at - time.perf_counter(), 0.0))
            kind = "note_on" if velocity else "note_off"
            soloist.send(mido.Message(kind, note=pitch, velocity=velocity))
            if velocity:
                sent_at[order[(at, pitch)].pop(0)] = time.perf_counter()
        out, err = accompanist.communicate(timeout=30)
        soloist.close()
        listener.close()
    finally:
        watchdog.cancel()
        if accompanist.poll() is None:
            accompanist.kill()
            accompanist.wait()
    assert accompanist.returncode == 0, err
    err += f"\njackd: {jack_midi()}"  # the test's failure messages show both
    assert "played" in out
    secondo = read_score(SCORE, part="Piano 2", bpm=140)  # read once the timing is done

    # the notes received are the secondo's, in score order, from the soloist's first onset on
    expected = secondo[np.argsort(secondo["onset_beat"], kind="stable")]
    times = np.array([t for t, _ in received])
    pitches = [p for _, p in received]
    assert len(pitches) > 60, (out, err)  # about 4 notes a second in this passage
    # each received note is the next score note of its pitch from the current onset on: the
    # onsets come in score order, the notes of one chord in any order
    matched, j, taken = [], 0, set()
    for k, pitch in enumerate(pitches):
        while j < len(expected) and expected["onset_beat"][j] < expected["onset_beat"][
                matched[-1] if matched else 0]:
            j += 1
        i = j
        while i < len(expected) and (int(expected["pitch"][i]) != pitch or i in taken):
            i += 1
        assert i < len(expected), (
            f"received {pitch} (note {k}) out of the secondo's order; received "
            f"{pitches[max(0, k - 8):k + 3]}, score from the last match "
            f"{[(float(b), int(p)) for b, p in expected[['onset_beat', 'pitch']][j:j + 12]]}")
        matched.append(i)
        taken.add(i)
    matched = np.array(matched)
    assert expected["onset_beat"][matched[0]] > 0  # it joins after the solo's first note
    # few skipped (by a re-synchronisation's jump ahead): measured 5-6 of 147 in 3 runs
    assert len(matched) / (matched.max() - matched.min() + 1) > 0.9, (out, err, matched)

    # their onsets follow the soloist: the first note of each shared onset against the solo's
    beats = expected["onset_beat"][matched]
    acc_beat, first = np.unique(beats, return_index=True)
    solo_beat, solo_first = np.unique(performed["onset_beat"], return_index=True)
    shared, i_acc, i_solo = np.intersect1d(acc_beat, solo_beat, return_indices=True)
    asynchrony_ms = 1000.0 * (times[first][i_acc] - sent_at[solo_first][i_solo])
    # measured (3 runs, 34 shared onsets): median |asynchrony| 22-28 ms, 68-76 % within 50 ms,
    # 94 % within 100 ms, mean -2 to -3 ms; replaying the same 15 s from the file: 18 ms, 79 %,
    # 94 %
    assert len(shared) > 25, (out, err, len(pitches), shared, asynchrony_ms.round())
    assert np.median(np.abs(asynchrony_ms)) < 60, asynchrony_ms.round()
    assert abs(np.mean(asynchrony_ms)) < 40, asynchrony_ms.round()  # neither late nor early
    assert np.mean(np.abs(asynchrony_ms) <= 100) > 0.75, asynchrony_ms.round()
