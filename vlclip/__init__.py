"""vlclip: the base layer every package builds on (params, encoder, MLflow tracking URI, dvc.yaml reader)
and, on top of everything, the `vlclip` command (cli.py) and `make run` (run.py)."""
from vlclip.params import load_params, section

__all__ = ["load_params", "section"]
