"""Applications of the trained models: `ser predict`, `ser serve`."""
