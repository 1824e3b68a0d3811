"""vlclip: shared plumbing (parameters, CLI) for the pipeline packages."""
from vlclip.params import load_params, section

__all__ = ["load_params", "section"]
