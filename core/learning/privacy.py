"""Differential privacy for federated learning: client-level DP, DP-FedAvg style.

What is protected
    A *client's whole contribution* to a round (client-level or "user-level"
    DP, McMahan et al., "Learning Differentially Private Recurrent Language
    Models", ICLR 2018). Each client clips its model delta (trained weights
    minus global weights) to L2 norm ``C`` and adds Gaussian noise
    ``N(0, (z*C)^2 I)`` itself, before the update leaves the machine.

Why the accountant is the sampled Gaussian mechanism
    Adding or removing one client changes the sum of clipped deltas by at most
    ``C``; the sum carries at least ``N(0, (z*C)^2)`` noise per coordinate (every
    participant adds that much). So each round's aggregate is at least as
    private as one step of the sampled Gaussian mechanism with noise multiplier
    ``z`` and sampling rate ``q`` (the chance a client takes part in a round;
    ``1.0`` when every client is asked every round, which is the conservative
    default). :class:`PrivacyAccountant` composes those steps with opacus'
    Rényi-DP accountant and converts to ``(epsilon, delta)``.

Limits (say them to users)
    * The guarantee covers the aggregated model and everything derived from
      it. Without secure aggregation the coordinator also sees each single
      noised update; against it a client is protected with the same noise but
      a sensitivity of ``2C`` (its delta replaced), i.e. noise multiplier z/2.
    * The sensitivity argument is for the *sum*: weighting updates by
      self-reported example counts lets a client claim more weight, so DP runs
      should aggregate with equal weights.
    * Metrics a worker reports beside the update (training loss, example
      count) are not privatised.
"""
from __future__ import annotations

import math

import numpy as np

from core.errors import BadRequest


class PrivacyAccountant:
    """(epsilon, delta) of client-level DP over rounds, via opacus' RDP accountant."""

    def __init__(self, noise_multiplier: float, sample_rate: float, delta: float = 1e-5):
        if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
            raise BadRequest(f"DP noise multiplier must be positive (got {noise_multiplier})")
        if not (0 < sample_rate <= 1):
            raise BadRequest(f"DP sample rate must be in (0, 1] (got {sample_rate})")
        if not (0 < delta < 1):
            raise BadRequest(f"DP delta must be in (0, 1) (got {delta})")
        from opacus.accountants import RDPAccountant
        self.noise_multiplier = float(noise_multiplier)
        self.sample_rate = float(sample_rate)
        self.delta = float(delta)
        self._rdp = RDPAccountant()

    @property
    def steps(self) -> int:
        """Rounds accounted so far."""
        return sum(n for _, _, n in self._rdp.history)

    def step(self, n: int = 1) -> None:
        """Account ``n`` more rounds."""
        if n < 0:
            raise BadRequest(f"cannot account a negative number of rounds ({n})")
        for _ in range(n):
            self._rdp.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def epsilon(self) -> float:
        """Epsilon spent so far at this accountant's delta (0.0 before any round)."""
        if not self._rdp.history:
            return 0.0
        return float(self._rdp.get_epsilon(delta=self.delta))


def clip_and_noise(delta_vec: np.ndarray, clip: float, noise_multiplier: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Clip a flat delta to L2 norm ``clip`` and add ``N(0, (noise_multiplier*clip)^2)`` per coordinate."""
    if not (math.isfinite(clip) and clip > 0):
        raise BadRequest(f"DP clipping norm must be positive (got {clip})")
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise BadRequest(f"DP noise multiplier must be zero or positive (got {noise_multiplier})")
    vec = np.asarray(delta_vec, dtype=np.float32)
    norm = float(np.linalg.norm(vec.astype(np.float64)))
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    noise = rng.normal(0.0, noise_multiplier * clip, size=vec.shape)
    return (vec * np.float32(scale) + noise).astype(np.float32)
