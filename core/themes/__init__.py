"""Themes: embedding, clustering, incremental assignment, review and signals."""
