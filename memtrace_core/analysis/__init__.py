"""Aggregations over a reader shared by reporters: top allocation locations."""

from memtrace_core.analysis.locations import (
    LocationStats,
    NativeLocation,
    PythonLocation,
    native_locations,
    python_location,
    python_locations,
    reserved_locations,
    top,
)

__all__ = [
    "LocationStats",
    "NativeLocation",
    "PythonLocation",
    "native_locations",
    "python_location",
    "python_locations",
    "reserved_locations",
    "top",
]
