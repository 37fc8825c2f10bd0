"""Feature families: one module each, one function from audio to its features (stages and
prediction alike)."""
