"""Composition jobs above the environments: search baselines and per-piece output files."""
