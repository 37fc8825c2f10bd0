"""Pipeline stages: one module per dvc.yaml stage, named as the stage (bin/stage runs them)."""
