"""What one event is, in words (from ir.ops_spiking.spike_format's dict)."""

from __future__ import annotations

from typing import Any


def describe_spikes(f: dict[str, Any]) -> str:
    """spike_format in words: 'binary spikes', 'up to 4 events per step, signed', 'no neurons'."""
    if not f["levels_per_event"]:
        return "no neurons"
    what = "binary spikes" if f["levels_per_event"] == 1 else f"up to {f['levels_per_event']} events per step"
    return what + (", signed" if f["signed"] else "")
