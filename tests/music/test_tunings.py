import numpy as np
import pytest

from musicgym.errors import TuningError
from musicgym.music.pitch import parse_pitch
from musicgym.music.tunings import (
    FIVE_LIMIT_RATIOS,
    edo,
    equal_temperament,
    just_intonation,
    make_tuning,
    midi_to_hz,
    read_scl,
)


def test_12tet_known_frequencies():
    t = equal_temperament()
    assert t.frequency_hz(60) == pytest.approx(261.6256, abs=1e-3)
    assert t.frequency_hz(69) == pytest.approx(440.0)
    assert t.frequency_hz(81) == pytest.approx(880.0)
    assert t.pitch_hz(parse_pitch("C4")) == pytest.approx(261.63, abs=5e-3)


def test_12tet_at_other_concert_pitch():
    t = equal_temperament(a4_hz=432.0)
    assert t.frequency_hz(69) == pytest.approx(432.0)
    assert t.frequency_hz(60) == pytest.approx(432.0 * 2 ** (-9 / 12))


def test_19edo_steps_and_spelling():
    t = edo(19)
    a4 = t.step(parse_pitch("A4"))
    assert t.frequency_hz(a4) == pytest.approx(440.0)
    # one step is 1200/19 cents; an octave is 19 steps
    ratio = t.frequency_hz(a4 + 1) / t.frequency_hz(a4)
    assert 1200 * np.log2(ratio) == pytest.approx(1200 / 19)
    assert t.frequency_hz(a4 + 19) == pytest.approx(880.0)
    # whole tone 3 steps, diatonic semitone 2, C# and Db are different pitches
    c4, d4 = t.step(parse_pitch("C4")), t.step(parse_pitch("D4"))
    assert d4 - c4 == 3
    assert t.step(parse_pitch("F4")) - t.step(parse_pitch("E4")) == 2
    assert t.step(parse_pitch("C#4")) == c4 + 1
    assert t.step(parse_pitch("Db4")) == c4 + 2


def test_31edo_fifth_is_meantone():
    t = edo(31)
    c4, g4 = t.step(parse_pitch("C4")), t.step(parse_pitch("G4"))
    assert g4 - c4 == 18
    assert 1200 * np.log2(t.frequency_hz(g4) / t.frequency_hz(c4)) == pytest.approx(696.774, 1e-4)


def test_just_intonation_ratios():
    t = just_intonation(60)
    root = t.frequency_hz(60)
    assert root == pytest.approx(midi_to_hz(60))
    assert t.frequency_hz(64) / root == pytest.approx(5 / 4)
    assert t.frequency_hz(67) / root == pytest.approx(3 / 2)
    assert t.frequency_hz(69) / root == pytest.approx(5 / 3)
    assert t.frequency_hz(71) / root == pytest.approx(15 / 8)
    assert t.frequency_hz(72 + 4) / root == pytest.approx(5 / 2)
    assert t.frequency_hz(48 + 7) / root == pytest.approx(3 / 4)
    assert [float(r) for r in FIVE_LIMIT_RATIOS][:3] == [1.0, 16 / 15, 9 / 8]


def test_real_scala_file(tmp_path):
    path = tmp_path / "meantone.scl"
    path.write_text(
        "! meantone.scl\n!\nQuarter-comma meantone, 12 notes\n 12\n!\n"
        " 76.04900\n 193.15686\n 310.26471\n 5/4\n 503.42157\n 579.46569\n 696.57843\n"
        " 25/16\n 889.73529\n 1006.84314\n 1082.89214\n 2/1\n"
    )
    t = read_scl(path)
    assert t.size == 12
    c4 = t.frequency_hz(60)
    assert c4 == pytest.approx(midi_to_hz(60))
    assert t.frequency_hz(64) / c4 == pytest.approx(5 / 4)
    assert 1200 * np.log2(t.frequency_hz(67) / c4) == pytest.approx(696.57843)
    assert t.frequency_hz(72) / c4 == pytest.approx(2.0)


def test_scala_non_octave_scale_maps_keys_linearly(tmp_path):
    path = tmp_path / "bp.scl"
    path.write_text("Bohlen-Pierce equal\n13\n" + "".join(
        f"{1901.955 * i / 13:.5f}\n" for i in range(1, 13)) + "3/1\n")
    t = read_scl(path, root_midi=60, root_hz=200.0)
    assert t.frequency_hz(60) == pytest.approx(200.0)
    assert t.frequency_hz(73) == pytest.approx(600.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("only a description\n", "note count"),
        ("desc\ntwelve\n", "line 2: expected the number of notes"),
        ("desc\n3\n100.0\n2/1\n", "announces 3 notes but only 2"),
        ("desc\n2\n1x0\n2/1\n", "line 3: '1x0' is neither cents"),
        ("desc\n2\n1300.0\n2/1\n", "between 1/1 and the period"),
    ],
)
def test_bad_scala_files_raise_tuning_error_with_line(tmp_path, text, message):
    path = tmp_path / "bad.scl"
    path.write_text(text)
    with pytest.raises(TuningError, match=message) as info:
        read_scl(path)
    assert "bad.scl" in str(info.value)


def test_missing_scala_file_and_bad_parameters(tmp_path):
    with pytest.raises(TuningError, match="cannot read the Scala file"):
        read_scl(tmp_path / "nope.scl")
    with pytest.raises(TuningError, match="divisions"):
        edo(3)
    with pytest.raises(TuningError, match="a4_hz"):
        equal_temperament(a4_hz=-1.0)
    with pytest.raises(TuningError, match="unknown tuning kind"):
        make_tuning("pythagorean")
    with pytest.raises(TuningError, match="does not take"):
        make_tuning("12tet", divisions=19)
    assert make_tuning("edo", divisions=19).size == 19


def test_read_scl_refuses_a_huge_file_before_reading_it_whole(tmp_path):
    from musicgym.music.tunings import MAX_SCL_BYTES, read_scl

    path = tmp_path / "huge.scl"
    path.write_bytes(b"!" * (MAX_SCL_BYTES + 10))
    with pytest.raises(TuningError, match="over the limit of .* bytes for a Scala file"):
        read_scl(path)
