"""Showroom Vision edge node: capture, detect, project to the floor, track, analyse, publish."""

__version__ = "0.1.0"
