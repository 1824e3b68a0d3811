"""An encoder whose forward passes run in child processes, off the HTTP process's GIL.

Under concurrent load the service process runs the HTTP loop and the batchers' Python (tokens packed,
tensors made, images preprocessed, outputs converted) on one GIL, and they take turns on it.
`EncoderProcess` loads the model in two spawned children (serving.child), one for text batches and
one for image batches (`load`: a picklable callable -> Encoder), and forwards `encode_text` and
`encode_images` to them over pipes; the service process waits on a pipe with the GIL released.
Tokenizing (`text_ids`, the query-length check) stays in the service process, on `local`. Each
child answers one call at a time; a child that dies is replaced and the call asked again.

Memory: the model is held twice (once in each child; the service process keeps only the tokenizer,
`vlclip.encoder.TextIds`, though it loads the model once to take it), so the service uses it only
when `serve.encode_process` is true (off by default).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from serving.child import Child


class EncoderProcess:
    """encode_text / encode_images asked of `load()` in child processes; text_ids and context_length
    answered by `local` (vlclip.encoder.TextIds, or anything with those two), which runs no forward pass."""

    def __init__(self, local, load: Callable, threads: int = 1, open_timeout_s: float = 300.0):
        self.local = local
        self.text, self.images = (Child(_load, (load, threads), f"vlclip-encode-{name}",
                                        f"the {name} encoder process", open_timeout_s) for name in ("text", "image"))
        try:
            for child in (self.text, self.images):  # both load at once, then each is waited for
                child.spawn()
            for child in (self.text, self.images):
                child.wait()
        except BaseException:
            self.close()
            raise

    @property
    def context_length(self) -> int:
        return self.local.context_length

    def text_ids(self, text: str) -> list[int]:
        return self.local.text_ids(text)

    def encode_text(self, texts: list[str], ids: list | None = None) -> np.ndarray:
        return self.text.call(("text", list(texts), ids))

    def encode_images(self, images: list) -> np.ndarray:
        return self.images.call(("image", list(images), None))  # made RGB by the child's encode_images

    def close(self) -> None:
        self.text.close()
        self.images.close()


def _load(load: Callable, threads: int):
    """In a child: load the model -> (answer a forward-pass request, nothing, nothing to close)."""
    import torch

    torch.set_num_threads(max(1, threads))
    encoder = load()

    def answer(request):
        kind, items, ids = request
        return encoder.encode_text(items, ids=ids) if kind == "text" else encoder.encode_images(items)

    return answer, None, lambda: None
