"""A Melody-v0 melody written to files (MIDI, TSV, MusicXML, LilyPond, WAV, PNG), read back
with mido, music21 and soundfile, in 5-limit just intonation on D."""

import re

import mido
import numpy as np
import pytest
import soundfile as sf

from musicgym.compose.melody import evaluate_melody, piece_from_melody
from musicgym.compose.outputs import write_piece
from musicgym.compose.piece import piece_from_json
from musicgym.envs.melody import MelodyEnv
from musicgym.music.tunings import just_intonation

HOLD, REST = 0, 1


def key(midi):
    return 2 + midi - 48  # the action that plays a MIDI key (lowest_midi 48)


# D dorian, 8 eighths a bar: D4 F4 E4 rest | G4 A4 (tied over the bar) | C5 B4 A4 | F4
ACTIONS = ([key(62), HOLD, HOLD, HOLD, key(65), HOLD, key(64), REST]
           + [key(67), HOLD, key(69), HOLD, HOLD, HOLD, HOLD, HOLD]
           + [HOLD, HOLD, key(72), HOLD, key(71), HOLD, key(69), HOLD]
           + [key(65)] + [HOLD] * 7)
NAMES = ["D4", "F4", "E4", "G4", "A4", "C5", "B4", "A4", "F4"]
ONSETS = [0, 2, 3, 4, 5, 9, 10, 11, 12]  # quarter-note beats
LENGTHS = [2, 1, 0.5, 1, 4, 1, 1, 1, 4]
# JI on D: the cents of each ratio minus 12-TET's (see test_outputs_cents.py)
JI_MARKS = {"D": "0c", "E": "+4c", "F": "+16c", "G": "-2c", "A": "+2c", "B": "-16c", "C": "+18c"}
BPM = 100.0


@pytest.fixture(scope="module")
def melody_files(tmp_path_factory):
    env = MelodyEnv(tonic="D", mode="dorian", masks=["rl_tuner_key"])
    piece = piece_from_melody(env, ACTIONS, tuning=just_intonation(62), bpm=BPM, velocity=77)
    paths = write_piece(tmp_path_factory.mktemp("melody") / "Mélodie: D dorian?", piece,
                        title="a melody", programs=(73,))
    return piece, paths


def test_piece_has_the_melodys_notes(melody_files):
    piece, paths = melody_files
    assert paths["midi"].parent.name == "Melodie_D_dorian"
    assert piece.names == NAMES
    assert piece.notes["onset_beat"].tolist() == ONSETS
    assert piece.notes["duration_beat"].tolist() == LENGTHS
    assert piece.time_signature == (4, 4) and piece.voice_names == ("melody",)
    ratios = {"D": 1, "E": 9 / 8, "F": 6 / 5, "G": 4 / 3, "A": 3 / 2, "B": 5 / 3, "C": 9 / 5}
    d4 = 440 * 2 ** (-7 / 12)
    for name, freq in zip(piece.names, piece.frequencies_hz, strict=True):
        assert freq == pytest.approx(d4 * ratios[name[0]])  # all within D4..C5


def test_midi_tempo_metre_program_and_just_pitches(melody_files):
    piece, paths = melody_files
    midi = mido.MidiFile(paths["midi"])
    assert len(midi.tracks) == 2  # conductor + the melody
    conductor = list(midi.tracks[0])
    tempo = next(m.tempo for m in conductor if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(BPM)
    ts = next(m for m in conductor if m.type == "time_signature")
    assert (ts.numerator, ts.denominator) == (4, 4)
    bend, bend_range, played, tick = dict.fromkeys(range(16), 0), {}, [], 0
    for message in midi.tracks[1]:
        tick += message.time
        if message.type == "control_change" and message.control == 6:
            bend_range[message.channel] = message.value
        elif message.type == "pitchwheel":
            bend[message.channel] = message.pitch
        elif message.type == "program_change":
            assert message.program == 73
        elif message.type == "note_on" and message.velocity:
            assert message.velocity == 77
            cents = bend[message.channel] / 8192 * bend_range[message.channel] * 100
            played.append((tick / midi.ticks_per_beat,
                           440.0 * 2 ** ((message.note - 69 + cents / 100) / 12)))
    assert [t for t, _ in played] == ONSETS
    assert np.allclose([f for _, f in played], piece.frequencies_hz, rtol=3e-4)
    # just F4 (6/5 over D) is 16 cents above 12-TET's: the bends carry it
    assert played[1][1] == pytest.approx(352.40, abs=0.1)


def test_tsv_rows(melody_files):
    piece, paths = melody_files
    rows = [line.split("\t") for line in paths["tsv"].read_text().splitlines()]
    header, body = rows[0], rows[1:]
    column = {name: [r[header.index(name)] for r in body] for name in header}
    assert column["name"] == NAMES
    assert [float(x) for x in column["onset_beat"]] == ONSETS
    assert [float(x) for x in column["onset_sec"]] == pytest.approx(
        [o * 60 / BPM for o in ONSETS])
    assert [float(x) for x in column["frequency_hz"]] == pytest.approx(piece.frequencies_hz,
                                                                       abs=1e-3)


def test_musicxml_notes_ties_metre_and_cents(melody_files):
    import music21

    _, paths = melody_files
    score = music21.converter.parse(paths["musicxml"])
    assert len(score.parts) == 1 and score.parts[0].partName == "melody"
    part = score.parts[0]
    assert part.recurse().getElementsByClass("TimeSignature")[0].ratioString == "4/4"
    key = part.recurse().getElementsByClass("Key")[0]
    assert (key.tonic.name, key.mode) == ("D", "dorian")
    notes = list(part.stripTies().recurse().notes)
    assert [n.nameWithOctave for n in notes] == NAMES
    assert [float(n.quarterLength) for n in notes] == LENGTHS
    # only the A4 crosses a bar line: written as two tied notes
    assert [n.tie.type for n in part.recurse().notes if n.tie is not None] == ["start", "stop"]
    flat = part.flatten()
    words = {float(w.offset): w.content for w in flat.getElementsByClass("TextExpression")}
    assert [words[float(o)] for o in ONSETS] == [JI_MARKS[n[0]] for n in NAMES]
    assert len(words) == len(NAMES)


def test_lilypond_notes(melody_files):
    _, paths = melody_files
    text = paths["lilypond"].read_text()
    music = re.search(r"\\tempo 4 = 100\n\s*(.*) \\bar", text).group(1)
    plain = re.sub(r'\^\\markup \{ "[^"]*" \}', "", music)
    assert plain.split() == ["d'2", "f'4", "e'8", "r8", "g'4", "a'2.~", "a'4", "c''4", "b'4",
                             "a'4", "f'1"]
    assert re.findall(r'"([+-]?\d+c)"', music) == [JI_MARKS[n[0]] for n in NAMES]
    assert "\\key d \\dorian" in text and "\\time 4/4" in text and "\\clef treble" in text


def test_wav_is_16_bit_and_sounds_just_f4(melody_files):
    piece, paths = melody_files
    info = sf.info(paths["wav"])
    assert info.subtype == "PCM_16" and info.samplerate == 44100
    assert info.duration == pytest.approx(piece.seconds + 0.3, abs=0.01)
    audio, sr = sf.read(paths["wav"])
    # the last note, F4, from 0.35 s after its onset (the A4's release is over) to its end
    start = int((ONSETS[-1] * 60 / BPM + 0.35) * sr)
    end = int((ONSETS[-1] + LENGTHS[-1]) * 60 / BPM * sr)
    segment = audio[start:end, 0] * np.hanning(end - start)
    spectrum = np.abs(np.fft.rfft(segment, 8 * len(segment)))
    peak_hz = np.argmax(spectrum) * sr / (8 * len(segment))
    assert peak_hz == pytest.approx(352.40, abs=0.5)  # 6/5 over D4, not 12-TET's 349.23


def test_png_and_json_round_trip(melody_files):
    piece, paths = melody_files
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = piece_from_json(paths["json"])
    assert back.names == NAMES and back.exercise["task"] == "melody"
    assert back.exercise["actions"] == ACTIONS
    # judged again from the written notes: the same return as the env gives the actions
    env = MelodyEnv(tonic="D", mode="dorian")
    env.reset()
    expected = sum(env.step(a)[1] for a in ACTIONS)
    result = evaluate_melody(back)
    assert result["total"] == pytest.approx(expected)
    assert result["out_of_key"] == 0 and result["mask_violations"] == 0


def test_three_four_melody_writes_its_metre(tmp_path):
    env = MelodyEnv(n_steps=12, steps_per_bar=6)
    actions = [key(60), HOLD, key(64), HOLD, key(67), HOLD] * 2
    piece = piece_from_melody(env, actions)
    assert piece.time_signature == (3, 4)
    paths = write_piece(tmp_path / "waltz", piece, wav=False)
    ts = next(m for m in mido.MidiFile(paths["midi"]).tracks[0] if m.type == "time_signature")
    assert (ts.numerator, ts.denominator) == (3, 4)
    assert "\\time 3/4" in paths["lilypond"].read_text()
    assert "\\markup" not in paths["lilypond"].read_text()  # 12-TET: no cents marks
