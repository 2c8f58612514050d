"""Degradation operators as exact linear maps (forward, adjoint, pseudo-inverse)."""
