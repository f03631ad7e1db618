"""Pictures and sounds of the envs' episodes, drawn in NumPy (no plotting library).

The envs' ``render()`` builds its ``"rgb_array"`` frames from these pieces: a :class:`Canvas`
to draw rectangles and lines on, heat maps (spectrograms), a piano roll and descriptor
traces. ``render_notes`` plays notes through musicgym's engine, for the composition envs'
``episode_audio()``. Nothing here runs unless a render or an episode's audio is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicgym.errors import RenderModeError

WHITE = (255, 255, 255)
GREY = (200, 200, 200)
DARK = (60, 60, 60)
BLUE = (31, 119, 180)
ORANGE = (255, 127, 14)
GREEN = (44, 160, 44)
RED = (214, 39, 40)
VOICE_COLOURS = (BLUE, ORANGE, GREEN)
# anchors of a dark-to-light colour map (magma-like): 0 -> black-purple, 1 -> pale yellow
_MAP = np.array([(0, 0, 4), (80, 18, 123), (182, 54, 121), (251, 136, 97), (252, 253, 191)],
                dtype=np.float64)
# blue - white - red, for signed differences
_DIVERGING = np.array([(33, 102, 172), (255, 255, 255), (178, 24, 43)], dtype=np.float64)

# the composition envs' voices through the engine, and compose's written pieces (one source):
# one chain per note, cantus a soft triangle, the other voice a filtered saw, under a
# percussive envelope that lasts the note
VOICE_PATCHES = (
    "o: tri {freq_hz} >> mul ~env >> mul 0.35\n~env: imp 0.001 >> envperc 0.03 {decay_s}",
    "o: saw {freq_hz} >> lpf 2200.0 1.0 >> mul ~env >> mul 0.3\n"
    "~env: imp 0.001 >> envperc 0.01 {decay_s}",
)
RELEASE_S = 0.3


def check_render_mode(render_mode: str | None, modes: Sequence[str], env: str) -> str | None:
    """``render_mode`` if the env has it (or None); else :class:`RenderModeError`."""
    if render_mode is not None and render_mode not in modes:
        raise RenderModeError(f"{env} has render modes {list(modes)} (or None), got "
                              f"render_mode={render_mode!r}")
    return render_mode


def _table(anchors: np.ndarray) -> np.ndarray:
    """A 256-entry uint8 colour table, piecewise linear between the anchors."""
    x = np.linspace(0.0, len(anchors) - 1, 256)
    low = np.minimum(x.astype(int), len(anchors) - 2)
    frac = (x - low)[:, None]
    return (anchors[low] * (1.0 - frac) + anchors[low + 1] * frac).round().astype(np.uint8)


_TABLES = {False: _table(_MAP), True: _table(_DIVERGING)}


def _ramp(values: np.ndarray, diverging: bool) -> np.ndarray:
    """Values in [0, 1] through a colour table: uint8 (..., 3) (a lookup: ~1 ms a panel)."""
    index = np.clip(np.nan_to_num(values, nan=0.0) * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return _TABLES[diverging][index]


def heatmap(values: np.ndarray, height: int, width: int, *, lo: float, hi: float,
            diverging: bool = False) -> np.ndarray:
    """An image (height, width, 3) of a (time, bands) array: time left to right, band 0 at
    the bottom; ``diverging``: a blue-white-red map centred on 0 (``lo = -hi``)."""
    values = np.asarray(values, dtype=np.float64)
    rows = np.linspace(values.shape[1] - 1, 0, height).round().astype(int)
    cols = np.linspace(0, values.shape[0] - 1, width).round().astype(int)
    scaled = (values[cols][:, rows].T - lo) / max(hi - lo, 1e-9)
    return _ramp(scaled, diverging)


def stack(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of one width on top of each other, white gaps between."""
    width = images[0].shape[1]
    parts = []
    for i, image in enumerate(images):
        if i:
            parts.append(np.full((gap, width, 3), 255, dtype=np.uint8))
        parts.append(image)
    return np.concatenate(parts, axis=0)


class Canvas:
    """A white RGB picture with pixel coordinates, y down; ``image`` is uint8 (h, w, 3)."""

    def __init__(self, height: int, width: int) -> None:
        self.image = np.full((height, width, 3), 255, dtype=np.uint8)
        self.height, self.width = height, width

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour) -> None:
        """Fill [x0, x1) x [y0, y1), at least one pixel each way, clipped to the canvas."""
        a, b = int(np.clip(np.floor(x0), 0, self.width - 1)), int(np.clip(np.ceil(x1), 0,
                                                                          self.width))
        c, d = int(np.clip(np.floor(y0), 0, self.height - 1)), int(np.clip(np.ceil(y1), 0,
                                                                           self.height))
        self.image[c:max(d, c + 1), a:max(b, a + 1)] = colour

    def vline(self, x: float, colour, y0: float = 0.0, y1: float | None = None) -> None:
        self.rect(x, y0, x + 1, self.height if y1 is None else y1, colour)

    def hline(self, y: float, colour) -> None:
        self.rect(0, y, self.width, y + 1, colour)

    def polyline(self, xs: np.ndarray, ys: np.ndarray, colour, thickness: int = 2) -> None:
        """A line through points (xs, ys), drawn as dots at every pixel along it."""
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[keep], ys[keep]
        if xs.size == 0:
            return
        if xs.size > 1:
            n = int(np.abs(np.diff(xs)).sum() + np.abs(np.diff(ys)).sum()) + xs.size
            t = np.linspace(0.0, xs.size - 1, max(n, 2))
            xs = np.interp(t, np.arange(xs.size), xs)
            ys = np.interp(t, np.arange(ys.size), ys)
        for dx in range(thickness):
            for dy in range(thickness):
                x = np.clip(xs.round().astype(int) + dx, 0, self.width - 1)
                y = np.clip(ys.round().astype(int) + dy, 0, self.height - 1)
                self.image[y, x] = colour


def piano_roll(notes: Sequence[tuple[int, float, float, int]], *, total: float, low_key: int,
               high_key: int, marks: Sequence[tuple[float, float]] = (), now: float | None = None,
               bar: float | None = None, height: int = 240, width: int = 512) -> np.ndarray:
    """A piano roll: ``notes`` as (voice, start, duration, MIDI key) on a time axis of
    ``total`` units (steps, eighths), keys ``low_key..high_key``; red bands under the spans
    ``marks`` (start, duration) (rule violations); a grey line at ``now``; bar lines every
    ``bar`` units."""
    canvas = Canvas(height, width)
    n_keys = max(high_key - low_key + 1, 1)
    key_h, unit = height / n_keys, width / max(total, 1e-9)
    for start, duration in marks:
        canvas.rect(start * unit, 0, (start + duration) * unit, height, (255, 205, 205))
    for key in range(low_key, high_key + 1):  # C rows a shade darker, to read the pitch
        if key % 12 == 0:
            canvas.rect(0, (high_key - key) * key_h, width, (high_key - key + 1) * key_h,
                        (236, 236, 236))
    if bar:
        for x in np.arange(0.0, total + 1e-9, bar):
            canvas.vline(x * unit, GREY)
    for voice, start, duration, key in notes:
        y = (high_key - key) * key_h
        colour = VOICE_COLOURS[voice % len(VOICE_COLOURS)]
        canvas.rect(start * unit + 1, y + 1, (start + duration) * unit - 1, y + key_h - 1,
                    colour)
    for start, duration in marks:  # a red bar at the top too, visible over the notes
        canvas.rect(start * unit, 0, (start + duration) * unit, 4, RED)
    if now is not None:
        canvas.vline(min(now * unit, width - 2), DARK)
    return canvas.image


def traces(series: Sequence[tuple[np.ndarray, tuple[int, int, int]]], *, lo: float, hi: float,
           length: int, height: int = 120, width: int = 512) -> np.ndarray:
    """Lines of values over ``length`` steps, each (values, colour), on a [lo, hi] axis with a
    grey zero line."""
    canvas = Canvas(height, width)
    canvas.image[[0, -1]] = GREY  # a frame, so stacked panels read apart
    canvas.image[:, [0, -1]] = GREY

    def y_of(v):
        return (hi - np.clip(v, lo, hi)) / max(hi - lo, 1e-9) * (height - 3) + 1

    if lo < 0 < hi:
        canvas.hline(y_of(0.0), GREY)
    for values, colour in series:
        values = np.asarray(values, dtype=float)
        xs = np.arange(values.size) * (width - 3) / max(length - 1, 1)
        canvas.polyline(xs, y_of(values), colour)
    return canvas.image


def render_notes(notes: Sequence[tuple[int, float, float, float]], *, sr: int = 44100
                 ) -> np.ndarray:
    """Notes (voice, onset s, duration s, frequency Hz) through musicgym's engine, as the
    composition outputs render a piece: (2, n) float32, peak 0.9 at most (at least 0.1 s
    of silence for no notes). Voice 0 plays :data:`VOICE_PATCHES`' first patch, others
    the second."""
    from musicgym.synth import Patch

    notes = [(int(v), float(o), float(d), float(f)) for v, o, d, f in notes]
    end = max((o + d for _, o, d, _ in notes), default=0.1)
    n_total = int(np.ceil((end + RELEASE_S) * sr)) + 1
    out = np.zeros((2, n_total), dtype=np.float32)
    for voice in sorted({v for v, *_ in notes}):
        rows = [n for n in notes if n[0] == voice]
        patch = Patch(VOICE_PATCHES[min(voice, 1)], sr=sr)
        lengths = np.array([d for _, _, d, _ in rows]) + RELEASE_S
        params = np.zeros((len(rows), patch.n_params))
        params[:, patch.params.index("freq_hz")] = [f for *_, f in rows]
        params[:, patch.params.index("decay_s")] = lengths
        audio = patch.render(params, seconds=float(lengths.max()), progress=False)
        for (_, onset, _, _), clip, length in zip(rows, audio, lengths, strict=True):
            start = int(round(onset * sr))
            n = min(int(round(length * sr)), clip.shape[-1], n_total - start)
            out[:, start:start + n] += clip[:, :n]
    peak = float(np.abs(out).max())
    return out * (0.9 / peak) if peak > 0.9 else out


def blips(onsets_s: np.ndarray, hz: float, n_samples: int, *, sr: int = 44100,
          gain: float = 0.4, decay_s: float = 0.08) -> np.ndarray:
    """Short decaying sine blips at ``onsets_s`` (mono float32 of ``n_samples``)."""
    out = np.zeros(n_samples, dtype=np.float64)
    t = np.arange(int(decay_s * 5 * sr)) / sr
    blip = gain * np.sin(2 * np.pi * hz * t) * np.exp(-t / decay_s) * np.minimum(1, t * 1000)
    for onset in np.asarray(onsets_s, dtype=float):
        start = int(round(onset * sr))
        if 0 <= start < n_samples:
            n = min(blip.size, n_samples - start)
            out[start:start + n] += blip[:n]
    return out.astype(np.float32)
