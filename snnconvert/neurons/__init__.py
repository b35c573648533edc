"""Spiking neuron models used by the converter (IF, few-spike SI-exp, SI-norm, ...)."""

# each module registers its NeuronKind on import
from snnconvert.neurons import integrate_fire, masked_if  # noqa: F401
from snnconvert.neurons.kinds import NEURONS, NeuronKind, register_neuron

__all__ = ["NEURONS", "NeuronKind", "register_neuron"]
