"""Accompany a soloist as it plays: MIDI in, follower, tempo model or trained agent, MIDI out.

Three modules, by concern: :mod:`~musicgym.live.accompany.engine` (the accompanist core driven
by the clock: :class:`LiveAccompanist`, :func:`replay`), :mod:`~musicgym.live.accompany.ports`
(MIDI ports: :func:`open_ports`, :func:`play_ports`) and :mod:`~musicgym.live.accompany.files`
(:func:`read_performance`, :func:`rehearsal_curves`, :func:`played_notes`,
:func:`write_duet_midi`). Everything is importable from here.
"""

from musicgym.follow.accompanist import AgentController, TempoModelController
from musicgym.live.accompany.engine import (
    FrameBuilder,
    LiveAccompanist,
    NoteEvent,
    agent_controller,
    performance_messages,
    replay,
)
from musicgym.live.accompany.files import (
    played_notes,
    read_performance,
    rehearsal_curves,
    write_duet_midi,
)
from musicgym.live.accompany.ports import (
    MIDI_APIS,
    MidiPortError,
    midi_backend,
    open_ports,
    play_ports,
)

__all__ = [
    "MIDI_APIS", "AgentController", "FrameBuilder", "LiveAccompanist", "MidiPortError",
    "NoteEvent", "TempoModelController", "agent_controller", "midi_backend", "open_ports",
    "performance_messages", "play_ports", "played_notes", "read_performance",
    "rehearsal_curves", "replay", "write_duet_midi",
]
