"""Benchmarks for dpq (not tests): throughput and latency against the bare SQL loop."""

from __future__ import annotations
