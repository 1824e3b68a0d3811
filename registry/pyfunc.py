"""The MLflow flavour of a vl-clip model: a pyfunc that embeds texts and images.

`predict` takes a DataFrame with a `text` column (strings) or an `image` column (file paths or raw
bytes) and returns one L2-normalised embedding per row. Serving unwraps it to the Encoder.
"""
from __future__ import annotations

import io

import mlflow.pyfunc
import numpy as np
import pandas as pd


class VLClipModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from vlclip.encoder import load_encoder

        self.encoder = load_encoder(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # hinted: MLflow warns otherwise
        from PIL import Image

        if "text" in model_input.columns:
            return self.encoder.encode_text([str(t) for t in model_input["text"]])
        if "image" in model_input.columns:
            images = [Image.open(io.BytesIO(v) if isinstance(v, (bytes, bytearray)) else v)
                      for v in model_input["image"]]
            return self.encoder.encode_images(images)
        raise ValueError(f"input needs a 'text' or an 'image' column, got {list(model_input.columns)}")
