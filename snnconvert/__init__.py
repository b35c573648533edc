"""snnconvert: trained transformer -> spiking neural network, with honest per-layer fidelity and energy."""

__version__ = "0.1.0"
