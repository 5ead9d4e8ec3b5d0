"""Tooling, not services: the demo utility `gridwalk demo` loads, and simulated days of work
(an honest walk, a day typed at home) for the demo, the tests and the benchmarks."""
