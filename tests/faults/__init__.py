"""Fault-injection tests: real processes, private service instances, faults injected on purpose."""
