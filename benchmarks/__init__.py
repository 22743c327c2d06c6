"""Benchmark scripts. Each prints ratios measured in one run (machines are noisy); figures go to
BENCHMARKS.md with the command, date and machine."""
