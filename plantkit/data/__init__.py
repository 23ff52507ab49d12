"""Datasets on disk, the synthetic stand-in, class-count profiles and their analysis."""
