"""Read scores (MusicXML, MIDI) and score-aligned performances (match files) into note arrays.

Scores become arrays of :data:`SCORE_DTYPE`: the shared :data:`~musicgym.music.notes.NOTE_DTYPE`
fields plus the metrical position of each note (bar number, onset within the bar in beats, beats
per bar), so that code can tell where the bar lines are. A match file (the Vienna/CPJKU alignment
format that ``partitura`` reads) becomes a :class:`MatchedPerformance`: its score notes with the
performed onsets in seconds (NaN where the player left a note out), and every performed note
as heard, insertions included.

Beats are the time signature's beats as ``partitura`` counts them (quarters in 2/4, eighths in
6/8). This module reads files; it does not write them and it knows nothing about following.
"""

from __future__ import annotations

import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgym.errors import ScoreFileError
from musicgym.music.midi import open_midi
from musicgym.music.notes import NOTE_DTYPE

SCORE_DTYPE = np.dtype(
    NOTE_DTYPE.descr + [("bar", "i4"), ("onset_beat_in_bar", "f8"), ("beats_per_bar", "f8")]
)

MUSICXML_SUFFIXES = (".musicxml", ".xml", ".mxl")
MIDI_SUFFIXES = (".mid", ".midi")
# a match line is one Prolog-like term ended by a full stop, e.g. `info(midiClockUnits,480).`
_MATCH_LINE = re.compile(r"^[A-Za-z]\w*(\(.*\))?(-[A-Za-z]\w*(\(.*\))?)?\.\s*$")


@dataclass(frozen=True)
class MatchedPerformance:
    """A performance aligned note by note to its score.

    Attributes
    ----------
    score : numpy.ndarray, shape (n_score,), dtype SCORE_DTYPE
        The score notes, sorted by onset then pitch. ``onset_sec``/``duration_sec``/``velocity``
        hold the performed values of the matched note, NaN/NaN/0 for notes left out.
    performed : numpy.ndarray, shape (n_performed,), dtype NOTE_DTYPE
        Every performed note, sorted by ``onset_sec``, with the pitch as played;
        ``onset_beat``/``duration_beat`` are those of the matched score note, NaN for insertions.
    path : pathlib.Path or None
        The match file read (None for a simulated performance).
    """

    score: np.ndarray
    performed: np.ndarray
    path: Path | None = None

    @property
    def n_deleted(self) -> int:
        """Number of score notes the player left out."""
        return int(np.isnan(self.score["onset_sec"]).sum())

    @property
    def n_inserted(self) -> int:
        """Number of performed notes with no score note (extra notes)."""
        return int(np.isnan(self.performed["onset_beat"]).sum())


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(
            f"{what} {str(path)!r} does not exist or is not a file: check the path "
            f"(relative paths start at {str(Path.cwd())!r})"
        )
    return path


# Bounds on what a score or match file may say, checked before partitura sees the file: a
# 60-line match file with one duration of 2**31 makes partitura add measures for hours. The
# bounds are far past any real piece (Brahms' dance: 100 bars, 480 ticks per quarter).
MAX_SCORE_FILE_BYTES = 64 * 1024 * 1024
MAX_BARS = 10_000
MAX_DENOMINATOR = 4096
MAX_WHOLE_NOTES = 256  # one note's duration (partitura recurses per tied bar past ~1000)
MAX_TICKS = 2**30
_MAX_DIGITS = 9  # any integer in a match line outside the checked fields
_TERM = re.compile(r"([A-Za-z]\w*)\(([^()]*)\)")
_INTEGER = re.compile(r"(?<![\d.])\d+(?![\d.])")  # integers, not decimal digits
_MATCH_RANGES = {"midiClockUnits": (1, 10**6), "midiClockRate": (1, 10**8)}


def _check_size(path: Path, what: str) -> None:
    size = path.stat().st_size
    if size > MAX_SCORE_FILE_BYTES:
        raise ScoreFileError(f"{what} {str(path)!r} is {size} bytes, over the limit of "
                             f"{MAX_SCORE_FILE_BYTES}")


def _split_args(args: str) -> list[str]:
    """The comma-separated arguments of a term, commas inside ``[...]`` kept."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(args):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(args[start:i].strip())
            start = i + 1
    out.append(args[start:].strip())
    return out


def _number(text: str, lo: float, hi: float, field: str) -> str | None:
    """None when ``text`` is a number (or ``a/b`` sum of fractions) in [lo, hi], else the fault."""
    try:
        if "/" in text or "+" in text:
            value = 0.0
            for part in text.split("+"):
                num, _, den = part.partition("/")
                den_value = int(den) if den else 1
                if not 0 < den_value <= MAX_DENOMINATOR:
                    return f"{field} {text!r} has a denominator outside 1..{MAX_DENOMINATOR}"
                value += int(num) / den_value
        else:
            value = float(text)
    except ValueError:
        return f"{field} {text!r} is not a number"
    if not lo <= value <= hi:
        return f"{field} {text!r} is outside {lo:g}..{hi:g}"
    return None


def _match_term_fault(name: str, args: list[str]) -> str | None:
    """What is out of bounds in one term of a match line (format 5.0 fields), or None."""
    checks: list[tuple[str, float, float, str]] = []
    if name == "snote" and len(args) == 9:
        bar, _, beat = args[3].partition(":")
        checks = [(args[2], -2, 10, "octave"), (bar, -1, MAX_BARS, "bar"),
                  (beat or "1", -1, 1000, "beat"),
                  (args[4], -MAX_WHOLE_NOTES, MAX_WHOLE_NOTES, "offset"),
                  (args[5], 0, MAX_WHOLE_NOTES, "duration"),
                  (args[6], -4 * MAX_BARS * 64, 4 * MAX_BARS * 64, "onset in beats"),
                  (args[7], -4 * MAX_BARS * 64, 4 * MAX_BARS * 64, "offset in beats")]
    elif name == "note" and len(args) == 7:
        checks = [(args[2], -2, 10, "octave"), (args[3], 0, MAX_TICKS, "onset"),
                  (args[4], 0, MAX_TICKS, "offset"), (args[5], 0, MAX_TICKS, "adjusted offset"),
                  (args[6], 0, 127, "velocity")]
    elif name == "info" and len(args) == 2 and args[0] in _MATCH_RANGES:
        checks = [(args[1], *_MATCH_RANGES[args[0]], args[0])]
    for text, lo, hi, field in checks:
        fault = _number(text, lo, hi, f"{name} {field}")
        if fault:
            return fault
    for arg in args:
        for digits in _INTEGER.findall(arg):
            if len(digits) > _MAX_DIGITS:
                return f"{name} has the number {digits}, over {_MAX_DIGITS} digits"
    return None


def _check_match_syntax(path: Path) -> None:
    """Raise ScoreFileError at the first line that is not a match-file term, or whose numbers
    are out of the bounds above (before partitura loops or allocates on them)."""
    _check_size(path, "match file")
    n_snotes = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("%"):
                continue
            if not _MATCH_LINE.match(text):
                raise ScoreFileError(
                    f"{str(path)!r}, line {line_no}: not a match-file line: {text[:80]!r}; "
                    "each line must be one term ending in a full stop, such as "
                    "'snote(...)-note(...).' (match format 5.0, see partitura.load_match)"
                )
            for name, args in _TERM.findall(text):
                fault = _match_term_fault(name, _split_args(args))
                if fault:
                    raise ScoreFileError(f"{str(path)!r}, line {line_no}: {fault}; is the "
                                         "file damaged?")
            n_snotes += text.startswith("snote(")
    if n_snotes == 0:
        raise ScoreFileError(
            f"{str(path)!r} has no 'snote(...)' lines, so no note is aligned to a score: "
            "is it a match file?"
        )


_XML_NUMBER = re.compile(rb"<(divisions|duration|octave|beats|beat-type|alter|fifths|staff|"
                         rb"voice|staves|tuplet-actual|actual-notes|normal-notes)>\s*([^<]*)<")
_XML_RANGES = {b"beats": (1, 1000), b"octave": (-1, 10), b"alter": (-10, 10), b"fifths": (-15, 15),
               b"beat-type": (1, 1024), b"staves": (1, 64), b"staff": (1, 64),
               b"divisions": (1, 10**6), b"duration": (0, 10**8)}


def _check_musicxml_values(path: Path) -> None:
    """Bound the numbers of a MusicXML file (each XML member of an .mxl) that drive partitura."""
    _check_size(path, "score file")
    if path.suffix.lower() != ".mxl":
        _check_xml_numbers(path.read_bytes(), str(path))
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.lower().endswith((".xml", ".musicxml")):
                    continue
                if member.file_size > MAX_SCORE_FILE_BYTES:  # a zip bomb: refuse to inflate
                    raise ScoreFileError(f"{str(path)!r}: {member.filename} inflates to "
                                         f"{member.file_size} bytes, over the limit of "
                                         f"{MAX_SCORE_FILE_BYTES}")
                with archive.open(member) as handle:
                    data = handle.read(MAX_SCORE_FILE_BYTES + 1)
                _check_xml_numbers(data, f"{path}:{member.filename}")
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
        raise ScoreFileError(f"{str(path)!r} is not a readable .mxl archive: {exc}") from None


def _check_xml_numbers(data: bytes, where: str) -> None:
    for match in _XML_NUMBER.finditer(data):
        tag, value = match.group(1), match.group(2).strip().decode("utf-8", "replace")
        lo, hi = _XML_RANGES.get(tag, (0, 10**6))
        fault = _number(value, lo, hi, f"<{tag.decode()}>")  # beats may be a sum: 3+2
        if fault:
            line = data.count(b"\n", 0, match.start()) + 1
            raise ScoreFileError(f"{where!r}, line {line}: {fault}; is the file damaged?")


def _check_int32(na: np.ndarray, fields: tuple[str, ...], where: str) -> None:
    """Every value finite and within int32, as SCORE_DTYPE and partitura's divisions need."""
    for name in fields:
        values = np.asarray(na[name], dtype=np.float64)
        bad = ~np.isfinite(values) | (np.abs(values) >= 2**31)
        if bad.any():
            raise ScoreFileError(f"{where}: a note's {name} is {values[bad][0]!r}, out of "
                                 "range; is the file damaged?")


def _part_array(part, *, bpm: float, id_prefix: str = "", where: str = "score") -> np.ndarray:
    """Note array of one partitura part, with bar/beat positions, in SCORE_DTYPE."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            na = part.note_array(include_metrical_position=True, include_time_signature=True)
            bars = np.asarray(part.measure_number_map(na["onset_div"]) if len(na) else [],
                              dtype=np.float64)
    except Exception as exc:  # partitura fails in its own ways on parts with odd measures
        raise ScoreFileError(f"{where}: the notes cannot be placed in bars: "
                             f"{type(exc).__name__}: {exc}") from None
    _check_int32(na, ("onset_beat", "duration_beat", "pitch", "voice", "ts_beats",
                      "rel_onset_div", "tot_measure_div", "onset_div"), where)
    notes = np.zeros(len(na), dtype=SCORE_DTYPE)
    notes["onset_beat"] = na["onset_beat"]
    notes["duration_beat"] = na["duration_beat"]
    sec_per_beat = 60.0 / bpm
    notes["onset_sec"] = notes["onset_beat"] * sec_per_beat
    notes["duration_sec"] = notes["duration_beat"] * sec_per_beat
    notes["pitch"] = na["pitch"]
    notes["velocity"] = 64
    notes["voice"] = na["voice"]
    ids = na["id"]
    notes["id"] = [
        f"{id_prefix}{i}" if (not nid or nid == "None") else nid for i, nid in enumerate(ids)
    ]
    if bars.size and not (np.abs(bars) <= MAX_BARS).all():
        raise ScoreFileError(f"{where}: a bar number is {np.abs(bars).max()}, over {MAX_BARS}")
    notes["bar"] = bars
    measure_div = np.maximum(na["tot_measure_div"], 1)
    notes["beats_per_bar"] = na["ts_beats"]
    notes["onset_beat_in_bar"] = na["rel_onset_div"] / measure_div * na["ts_beats"]
    return notes[np.lexsort((notes["pitch"], notes["onset_beat"]))]


def _select_part(parts: list, part: int | str | None, path: Path):
    if part is None:
        return parts
    names = [f"{i}: id {p.id!r}, name {p.part_name!r}" for i, p in enumerate(parts)]
    if isinstance(part, (int, np.integer)):
        if 0 <= part < len(parts):
            return [parts[part]]
    else:
        wanted = str(part).strip().lower()
        for p in parts:
            if wanted in (str(p.id).lower(), str(p.part_name or "").strip().lower()):
                return [p]
    raise ScoreFileError(
        f"{str(path)!r} has no part {part!r}; give the index, id or name of one of: "
        + "; ".join(names)
    )



_ABSENT = object()


def _partitura():
    """Import partitura without letting it download a SoundFont.

    When pyfluidsynth is importable (musicgym's ``music`` extra installs it for its own
    SoundFont renderer), ``partitura.utils.fluidsynth`` fetches MuseScore's SoundFont over FTP
    at import time, which fails (and must not happen) without a network. musicgym never asks
    partitura to synthesise, so partitura is imported with ``fluidsynth`` hidden: its
    ``HAS_FLUIDSYNTH`` is then False and nothing is fetched.
    """
    if "partitura" in sys.modules:
        return sys.modules["partitura"]
    saved = sys.modules.get("fluidsynth", _ABSENT)
    sys.modules["fluidsynth"] = None  # makes `from fluidsynth import Synth` raise ImportError
    try:
        import partitura
    finally:
        if saved is _ABSENT:
            del sys.modules["fluidsynth"]
        else:
            sys.modules["fluidsynth"] = saved
    return partitura


def read_score(path: str | Path, *, part: int | str | None = None, bpm: float = 120.0):
    """Read a MusicXML or MIDI score into a note array with bar and beat positions.

    Parameters
    ----------
    path : str or pathlib.Path
        A MusicXML (``.musicxml``, ``.xml``, ``.mxl``) or MIDI (``.mid``, ``.midi``) file.
    part : int, str or None, keyword-only
        Which part: its index, its id (``"P1"``) or its name (``"Piano 1"``, case-insensitive).
        ``None`` (default) merges every part.
    bpm : float, keyword-only
        Tempo in beats per minute used to fill the seconds columns (default 120).

    Returns
    -------
    numpy.ndarray, shape (n,), dtype SCORE_DTYPE
        Sorted by onset, then pitch.

    Raises
    ------
    ScoreFileError
        When the file is missing, cannot be parsed, or has no such part.

    Examples
    --------
    >>> full = "Brahms_Hungarian-Dance-5_Full.musicxml"
    >>> primo = read_score(full, part="Piano 1")  # doctest: +SKIP
    >>> primo[["bar", "onset_beat_in_bar", "pitch"]][:2]  # doctest: +SKIP
    """
    partitura = _partitura()

    path = _existing_file(path, "score file")
    if not (bpm > 0 and np.isfinite(bpm)):
        raise ScoreFileError(f"bpm must be a positive finite number, got {bpm!r}")
    suffix = path.suffix.lower()
    if suffix not in MUSICXML_SUFFIXES + MIDI_SUFFIXES:
        raise ScoreFileError(
            f"{str(path)!r}: unknown score format {suffix!r}; use MusicXML "
            f"({', '.join(MUSICXML_SUFFIXES)}) or MIDI ({', '.join(MIDI_SUFFIXES)}), "
            "or read_match for a match file"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if suffix in MUSICXML_SUFFIXES:
                _check_musicxml_values(path)
                score = partitura.load_musicxml(str(path))
            else:
                score = partitura.load_score_midi(open_midi(path))
    except ScoreFileError:
        raise
    except Exception as exc:  # partitura raises lxml, OSError, ValueError... on bad files
        raise ScoreFileError(
            f"{str(path)!r} could not be read as {suffix} score: {type(exc).__name__}: {exc}"
        ) from exc
    parts = _select_part(list(score.parts), part, path)
    arrays = [_part_array(p, bpm=bpm, id_prefix=f"p{i}n", where=repr(str(path)))
              for i, p in enumerate(parts)]
    notes = np.concatenate(arrays) if arrays else np.zeros(0, dtype=SCORE_DTYPE)
    return notes[np.lexsort((notes["pitch"], notes["onset_beat"]))]


def read_match(path: str | Path) -> MatchedPerformance:
    """Read a match file: the score, the performance, and which note played which.

    Parameters
    ----------
    path : str or pathlib.Path
        A match file (format 5.0 or earlier, as ``partitura.load_match`` reads).

    Returns
    -------
    MatchedPerformance

    Raises
    ------
    ScoreFileError
        When the file is missing or a line is not a match-file term (the message gives the line).

    Examples
    --------
    >>> take = read_match("Brahms_Hungarian-Dance-5_Primo_2021-08-10_1.match")  # doctest: +SKIP
    >>> take.score["onset_sec"][:3], take.n_deleted  # doctest: +SKIP
    """
    partitura = _partitura()

    path = _existing_file(path, "match file")
    _check_match_syntax(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            performance, alignment, score = partitura.load_match(str(path), create_score=True)
    except Exception as exc:  # partitura's parser fails with bare ValueErrors
        raise ScoreFileError(
            f"{str(path)!r} could not be parsed as a match file: {type(exc).__name__}: {exc}"
        ) from exc
    score_notes = _part_array(score.parts[0], bpm=120.0, where=repr(str(path)))
    performed_na = performance.note_array()
    _check_int32(performed_na, ("onset_sec", "duration_sec", "pitch", "velocity"),
                 repr(str(path)))
    score_notes["onset_sec"] = np.nan
    score_notes["duration_sec"] = np.nan
    score_notes["velocity"] = 0
    score_row = {nid: i for i, nid in enumerate(score_notes["id"])}
    perf_row = {nid: i for i, nid in enumerate(performed_na["id"])}

    performed = np.zeros(len(performed_na), dtype=NOTE_DTYPE)
    performed["onset_sec"] = performed_na["onset_sec"]
    performed["duration_sec"] = performed_na["duration_sec"]
    performed["pitch"] = performed_na["pitch"]
    performed["velocity"] = performed_na["velocity"]
    performed["id"] = performed_na["id"]
    performed["onset_beat"] = np.nan
    performed["duration_beat"] = np.nan
    for pair in alignment:
        if pair["label"] != "match":
            continue
        s, p = score_row.get(pair["score_id"]), perf_row.get(pair["performance_id"])
        if s is None or p is None:
            continue
        score_notes["onset_sec"][s] = performed["onset_sec"][p]
        score_notes["duration_sec"][s] = performed["duration_sec"][p]
        score_notes["velocity"][s] = performed["velocity"][p]
        performed["onset_beat"][p] = score_notes["onset_beat"][s]
        performed["duration_beat"][p] = score_notes["duration_beat"][s]
        performed["voice"][p] = score_notes["voice"][s]
    performed = performed[np.argsort(performed["onset_sec"], kind="stable")]
    return MatchedPerformance(score=score_notes, performed=performed, path=path)


def read_music21(stream, *, part: int | str | None = None, bpm: float = 120.0) -> np.ndarray:
    """Convert a music21 score (or part) into a note array with bar and beat positions.

    Beats are quarter notes here (music21's offsets); pickup bars keep their place in the bar.

    Parameters
    ----------
    stream : music21.stream.Score or music21.stream.Part
        For example ``music21.corpus.parse("bach/bwv66.6")``.
    part : int, str or None, keyword-only
        Part index or name (case-insensitive) of a score; None merges every part.
    bpm : float, keyword-only
        Tempo in quarters per minute for the seconds columns.

    Returns
    -------
    numpy.ndarray, shape (n,), dtype SCORE_DTYPE

    Raises
    ------
    ScoreFileError
        When the score has no such part.
    """
    parts = list(getattr(stream, "parts", [])) or [stream]
    if part is not None:
        names = [str(p.partName) for p in parts]
        if isinstance(part, (int, np.integer)) and 0 <= part < len(parts):
            parts = [parts[part]]
        elif isinstance(part, str) and part.lower() in [n.lower() for n in names]:
            parts = [parts[[n.lower() for n in names].index(part.lower())]]
        else:
            raise ScoreFileError(f"music21 score has no part {part!r}; parts are {names}")
    rows = []
    for voice, p in enumerate(parts):
        for measure in p.getElementsByClass("Measure"):
            bar_start = float(measure.offset) - float(measure.paddingLeft)
            bar_len = float(measure.barDuration.quarterLength)
            for element in measure.recurse().notes:
                onset = float(measure.offset + element.getOffsetInHierarchy(measure))
                for pitch in element.pitches:
                    rows.append((onset, float(element.quarterLength), int(pitch.midi), voice,
                                 int(measure.number), onset - bar_start, bar_len))
    notes = np.zeros(len(rows), dtype=SCORE_DTYPE)
    if rows:
        onset, duration, pitch, voice, bar, in_bar, bar_len = map(np.array, zip(*rows, strict=True))
        notes["onset_beat"], notes["duration_beat"] = onset, duration
        notes["onset_sec"], notes["duration_sec"] = onset * 60.0 / bpm, duration * 60.0 / bpm
        notes["pitch"], notes["voice"], notes["velocity"] = pitch, voice, 64
        notes["bar"], notes["onset_beat_in_bar"], notes["beats_per_bar"] = bar, in_bar, bar_len
        notes["id"] = [f"m{i}" for i in range(len(rows))]
    return notes[np.lexsort((notes["pitch"], notes["onset_beat"]))]
