"""Renderers: pure functions of a Trace (or of frames), one module each."""
