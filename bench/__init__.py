"""``make bench``: throughput, latency, schedule scale and rate-limit benchmarks (issue #6)."""
