"""Exceptions raised by musicgym.

Every error a user can cause (bad Glicol code, bad parameters, bad files, bad config) has one
specific type here, and its message says where the problem is and what to do about it.
"""

from __future__ import annotations


class MusicgymError(Exception):
    """Base class of every error musicgym raises on purpose."""


class GlicolError(MusicgymError):
    """An error in Glicol code, located at ``line``/``column`` (1-based) of ``source``.

    The message shows the offending line with a caret under the column and, where one is
    known, a suggestion (for example the closest node name).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.column = column
        self.suggestion = suggestion
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        where = ""
        if self.line is not None:
            where = f"line {self.line}, column {self.column}: "
        parts.append(f"{where}{self.reason}")
        if self.source is not None and self.line is not None:
            lines = self.source.splitlines() or [""]
            if 1 <= self.line <= len(lines):
                text = lines[self.line - 1]
                parts.append(f"    {text}")
                col = max(1, self.column or 1)
                # keep tabs so the caret lines up under tab-indented code
                pad = "".join(ch if ch == "\t" else " " for ch in text[: col - 1])
                parts.append(f"    {pad}^")
        if self.suggestion:
            parts.append(f"hint: {self.suggestion}")
        return "\n".join(parts)


class GlicolSyntaxError(GlicolError):
    """The code does not follow Glicol's grammar."""


class UnknownNodeError(GlicolError):
    """A node name that Glicol does not know."""


class MissingReferenceError(GlicolError):
    """A ``~name`` reference to a chain that the program does not define."""


class ArgumentError(GlicolError):
    """A node was given the wrong number or kind of arguments."""


class MissingSampleError(GlicolError):
    """A sampler names a sample that was not loaded."""


class UnsupportedNodeError(GlicolError):
    """A node the chosen backend cannot run (the message names the backend that can)."""


class EngineTrapError(MusicgymError):
    """The real Glicol engine crashed (a Rust panic, a wasm trap) on this code."""


class DataNotFoundError(MusicgymError, FileNotFoundError):
    """The real recordings (duets, one-shots) are not where musicgym looks: the message names
    ``MUSICGYM_DATA_DIR``, the setting that says where they are."""


class ReferenceEngineMissingError(MusicgymError):
    """The real Glicol engine (npm ``glicol@0.4.0``) is not installed where musicgym looks."""


class ParameterError(MusicgymError, ValueError):
    """A bad parameter matrix or parameter value for a template (NaN, inf, wrong shape)."""


class RenderLimitError(MusicgymError, ValueError):
    """A render request that is empty, absurd, or would need more memory than allowed."""


class AudioFileError(MusicgymError):
    """An audio file that cannot be read or written."""


class ScoreFileError(MusicgymError):
    """A score, MIDI or match file that is missing, malformed, or lacks the part asked for."""


class AccompanyConfigError(MusicgymError, ValueError):
    """A bad setting of the accompaniment tools (env arguments, follower, tempo model, split)."""


class PitchError(MusicgymError, ValueError):
    """A note name or pitch that cannot be read or spelled."""


class ScaleError(MusicgymError, ValueError):
    """An unknown mode or tonic, or a pitch outside the scale where a scale pitch is needed."""


class TuningError(MusicgymError, ValueError):
    """A bad tuning: unknown name, bad parameters, or a Scala ``.scl`` file that cannot be read
    (the message names the file and line)."""


class RuleError(MusicgymError, ValueError):
    """An unknown composition rule or score, or bad parameters for one."""


class CantusFirmusError(MusicgymError, ValueError):
    """A cantus firmus or counterpoint set-up that cannot be composed against."""


class InvalidActionError(MusicgymError, ValueError):
    """An action an environment cannot take in its current state (the message says why)."""


class RenderModeError(MusicgymError, TypeError):
    """A ``render_mode`` the env does not have (the message lists those it has).

    A ``TypeError`` too, as for an env that takes no ``render_mode`` at all: tools that try a
    default mode first (Stable-Baselines3's ``make_vec_env`` asks for ``"rgb_array"``) then
    make the env without one."""


class ConfigError(MusicgymError, ValueError):
    """A bad field in a configuration file (the message names the field and the fix)."""


class UsageError(ConfigError):
    """A command or configuration that cannot work, refused before any work starts or any file
    is written (the CLI exits with code 2, as for a bad option)."""


class RewardConfigError(MusicgymError, ValueError):
    """An unknown reward name or a bad reward weight."""


class ActionSpaceError(MusicgymError, ValueError):
    """A bad RaveForce-style action-space spec, or an action outside the space."""


class TargetError(MusicgymError, ValueError):
    """A sound-matching target that cannot be used (empty, unreadable, wrong shape)."""


class OutputError(MusicgymError):
    """An output folder or file that cannot be written (the message names it)."""


class DescriptorError(MusicgymError, ValueError):
    """Bad input to an audio descriptor (signal shape, frame settings, unknown descriptor name)."""


class ImproviseConfigError(MusicgymError, ValueError):
    """A bad setting of the improvisation tools (synth, env argument, settings file, corpus)."""


class PdAudioError(ImproviseConfigError):
    """A user's Pd synth cannot sound live: ``pd`` missing, failing to start, to load the
    synth or to open its audio, or exiting while it plays (Pd's messages are quoted)."""
