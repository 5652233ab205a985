"""Shared statistics and helpers of the analyzers (private: not analyzers themselves).

bootstrap (patient-bootstrap intervals), evaluation (the probes' shared protocol), metrics,
solvers (logistic/ridge paths), subsets (nested training subsets), descriptors and neighbors
(geometry of an embedding space), cka_linear / cka_rbf / jackknife (the CKA and alignment
mathematics), attribution_methods (captum, lead Shapley, beats), heads (a probe's linear head),
scarcity_summary (crossing points and areas of scarcity curves).
"""
