"""Downstream evaluation of frozen features: label budgets, linear probes, kNN."""
