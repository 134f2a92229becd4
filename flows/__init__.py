"""Zeta Router pipeline: Prefect flows and the Polars/CatBoost code they call."""
