"""Predictive maintenance: the estimator (pure), its replay over stored history, the report."""
