"""The files written per piece, read back with mido, music21 and soundfile."""

import mido
import numpy as np
import pytest
import soundfile as sf

from musicgym.compose.outputs import portable_name, render_piece, write_piece
from musicgym.compose.piece import Piece, piece_from_counterpoint, piece_from_json
from musicgym.compose.search import random_search
from musicgym.envs.counterpoint import CounterpointEnv
from musicgym.errors import OutputError
from musicgym.music.midi import key_and_bend
from musicgym.music.notation import lilypond_text
from musicgym.music.notes import make_notes
from musicgym.music.pitch import parse_pitch
from musicgym.music.tunings import edo, equal_temperament


@pytest.fixture(scope="module")
def finished_state():
    env = CounterpointEnv(species=5)
    _, actions = random_search(env, seed=1)
    env.reset()
    for action in actions:
        env.step(action)
    assert env.state.finished
    return env.state, actions


@pytest.fixture(scope="module")
def edo19_files(finished_state, tmp_path_factory):
    state, actions = finished_state
    piece = piece_from_counterpoint(state, actions=actions, tuning=edo(19), bpm=90.0)
    paths = write_piece(tmp_path_factory.mktemp("out") / "Pièce n°1 (19-EDO)", piece,
                        title="test")
    return piece, paths


def test_folder_and_file_names_are_portable(edo19_files):
    _, paths = edo19_files
    folder = paths["midi"].parent
    assert folder.name == "Piece_n1_19-EDO"
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
        assert path.parent == folder and path.name.isascii() and " " not in path.name
    assert portable_name("a:b*c?") == "a_b_c" and portable_name("???") == "piece"


def test_midi_tempo_time_signature_and_19edo_bends(edo19_files):
    piece, paths = edo19_files
    midi = mido.MidiFile(paths["midi"])
    meta = [m for m in midi.tracks[0] if m.is_meta]
    tempo = next(m for m in meta if m.type == "set_tempo").tempo
    assert mido.tempo2bpm(tempo) == pytest.approx(90.0)
    ts = next(m for m in meta if m.type == "time_signature")
    assert (ts.numerator, ts.denominator) == (4, 4)
    # replay the note events with the running bend of each channel
    bend = dict.fromkeys(range(16), 0)
    rpn_range = {}
    played = []
    for message in mido.merge_tracks(midi.tracks[1:]):
        if message.type == "control_change" and message.control == 6:
            rpn_range[message.channel] = message.value
        elif message.type == "pitchwheel":
            bend[message.channel] = message.pitch
        elif message.type == "note_on" and message.velocity > 0:
            cents = bend[message.channel] / 8192 * rpn_range[message.channel] * 100
            played.append(440.0 * 2 ** ((message.note - 69 + cents / 100) / 12))
    expected = piece.frequencies_hz[np.lexsort((piece.notes["voice"], piece.notes["onset_beat"]))]
    assert len(played) == len(piece.notes)
    # within 0.05 % (bend resolution): 19-EDO pitches, not 12-TET keys
    assert np.allclose(sorted(played), sorted(expected), rtol=5e-4)
    assert not np.allclose(sorted(played), sorted(440 * 2 ** (np.rint(
        69 + 12 * np.log2(expected / 440)) - 69) / 12), rtol=5e-4)
    seconds = midi.length
    assert seconds == pytest.approx(piece.notes["onset_beat"].max() * 60 / 90 + 4 * 60 / 90,
                                    abs=0.01)


def test_simultaneous_bent_notes_use_different_channels(edo19_files):
    _, paths = edo19_files
    sounding = {}
    for message in mido.merge_tracks(mido.MidiFile(paths["midi"]).tracks):
        if message.type == "note_on":
            assert message.channel not in sounding, "two notes at once on one channel"
            assert message.channel != 9
            sounding[message.channel] = message.note
        elif message.type == "note_off":
            sounding.pop(message.channel)


def test_musicxml_keeps_spelling_durations_and_metre(edo19_files):
    import music21

    piece, paths = edo19_files
    score = music21.converter.parse(paths["musicxml"])
    assert [p.partName for p in score.parts] == ["counterpoint", "cantus firmus"]
    ts = score.parts[0].recurse().getElementsByClass("TimeSignature")[0]
    assert ts.ratioString == "4/4"
    for part, voice in zip(score.parts, (1, 0), strict=True):
        notes = list(part.stripTies().recurse().notes)
        rows = piece.notes["voice"] == voice
        names = [n for n, keep in zip(piece.names, rows, strict=True) if keep]
        assert [n.nameWithOctave.replace("-", "b") for n in notes] == names
        assert [float(n.quarterLength) for n in notes] == list(piece.notes["duration_beat"][rows])
        # a tie stops only after one starts (a note after a tied pair is not tied)
        ties = [n.tie.type if n.tie else None for n in part.recurse().notes]
        for before, after in zip([None, *ties[:-1]], ties, strict=True):
            assert (after in ("stop", "continue")) == (before in ("start", "continue"))


def test_wav_is_16_bit_and_as_long_as_the_piece(edo19_files):
    piece, paths = edo19_files
    info = sf.info(paths["wav"])
    assert info.subtype == "PCM_16" and info.samplerate == 44100 and info.channels == 2
    assert info.duration == pytest.approx(piece.seconds + 0.3, abs=0.01)
    audio, _ = sf.read(paths["wav"])
    assert 0.1 < np.abs(audio).max() <= 0.91


@pytest.mark.parametrize("name", ["C#4", "Db4"])
def test_wav_sounds_the_tunings_frequency(name):
    # in 19-EDO C#4 is one step above C4 and Db4 two: different notes, neither 12-TET's
    tuning = edo(19)
    step = tuning.step(parse_pitch(name))
    freq = float(tuning.frequency_hz(step))
    notes = make_notes([0.0], [4.0], [step], bpm=60.0)
    piece = Piece(notes=notes, names=[name], frequencies_hz=np.array([freq]), tuning=tuning,
                  bpm=60.0, voice_names=("solo",))
    audio = render_piece(piece)[0, :44100 * 4]
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    peak_hz = np.argmax(spectrum) * 44100 / len(audio)
    assert peak_hz == pytest.approx(freq, abs=0.5)
    assert abs(peak_hz - 277.18) > 3  # 12-TET's C#4 = Db4


def test_tsv_and_json_round_trip(edo19_files):
    piece, paths = edo19_files
    rows = paths["tsv"].read_text().splitlines()
    header = rows[0].split("\t")
    assert header[:6] == ["onset_beat", "duration_beat", "onset_sec", "duration_sec", "voice",
                          "name"]
    first = dict(zip(header, rows[1].split("\t"), strict=True))
    assert first["name"] == piece.names[0]
    assert float(first["frequency_hz"]) == pytest.approx(piece.frequencies_hz[0], abs=1e-3)
    back = piece_from_json(paths["json"])
    assert back.names == piece.names and back.tuning == piece.tuning
    assert np.array_equal(back.notes["pitch"], piece.notes["pitch"])
    assert back.exercise["actions"] == piece.exercise["actions"]


def test_lilypond_ties_across_bars_and_spells_flats():
    notes = make_notes([0.0, 2.0, 6.0], [2.0, 4.0, 2.0], [70, 63, 62])
    text = lilypond_text(notes, ["Bb4", "Eb4", "D4"], tonic="Bb", mode="major")
    assert "bes'2 ees'2~ ees'2 d'2" in text
    assert "\\key bes \\major" in text and "\\time 4/4" in text


def test_twelve_tet_midi_has_no_bends(finished_state, tmp_path):
    state, actions = finished_state
    piece = piece_from_counterpoint(state, actions=actions, tuning=equal_temperament())
    paths = write_piece(tmp_path / "p", piece, wav=False)
    assert "wav" not in paths
    messages = list(mido.merge_tracks(mido.MidiFile(paths["midi"]).tracks))
    assert not any(m.type == "pitchwheel" for m in messages)
    keys = sorted(m.note for m in messages if m.type == "note_on" and m.velocity)
    assert keys == sorted(piece.notes["pitch"].tolist())


def test_unwritable_folder_is_one_clear_error(finished_state, tmp_path):
    state, actions = finished_state
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    piece = piece_from_counterpoint(state, actions=actions)
    with pytest.raises(OutputError, match="a_file.*give -o a folder"):
        write_piece(blocker / "piece", piece)


def test_key_and_bend_limits():
    keys, bends = key_and_bend(np.array([440.0, 440.0 * 2 ** (50 / 1200)]))
    assert keys.tolist() == [69, 70] and bends[0] == 0 and bends[1] == -2048
