"""Surfaces: the command loader, control API and its client, CLI, headless runtime, cluster, demo."""
