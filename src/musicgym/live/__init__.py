"""Live play: musicgym's agents and baselines with real musicians, in real time (MIDI, OSC)."""
