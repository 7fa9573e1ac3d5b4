"""Detectors the guard runs for a tripwire; each returns a score in [0, 1]."""

from redline.guard.detectors.base import (
    Detector,
    DetectorResources,
    Finding,
    Inspected,
    detectors,
)

__all__ = ["Detector", "DetectorResources", "Finding", "Inspected", "detectors"]
