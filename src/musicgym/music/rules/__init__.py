"""Composition rules and scores, by name, usable as hard masks or soft penalties.

Importing this package registers every built-in rule: RL-Musician's 15 counterpoint rules and
5 scores (``counterpoint``, ``scores``), the textbook rules RL-Musician lacks, and RL Tuner's 9
melody rules (``melody``). See ``registry`` for how to add one.
"""

from musicgym.music.rules import counterpoint, melody, scores  # noqa: F401  (registers rules)
from musicgym.music.rules.counterpoint import RL_MUSICIAN_RULES, STRICT_RULES, TEXTBOOK_RULES
from musicgym.music.rules.registry import RULES, SCORES, get_rule, register_rule, register_score
from musicgym.music.rules.ruleset import RuleSet, rule_reward
from musicgym.music.rules.scores import SCORE_NAMES, score_piece

__all__ = [
    "RL_MUSICIAN_RULES", "RULES", "SCORES", "SCORE_NAMES", "STRICT_RULES", "TEXTBOOK_RULES",
    "RuleSet", "get_rule", "register_rule", "register_score", "rule_reward", "score_piece",
]
