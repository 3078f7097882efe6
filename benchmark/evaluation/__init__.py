"""Evaluation: per-slice confusion statistics and the paper's / strict metrics, and scoring of prediction maps
or per-fold weights."""
