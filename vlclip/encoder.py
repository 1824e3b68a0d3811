"""The encoder every layer shares: open_clip models by name, checkpoints, and an Encoder that turns
texts and PIL images into unit vectors. Grounding, training, the registry and serving all build and
load models through here; nothing here imports another project package.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

CONFIG_DIR = Path(__file__).parent / "model_configs"
WEIGHTS = "model.pt"
SPEC = "model.json"


@dataclass(frozen=True)
class ModelParams:
    name: str
    pretrained: str = ""


@functools.cache
def register_configs() -> None:
    """Make the architectures in vlclip/model_configs/ known to open_clip (file stem = name), once per
    process: `add_model_config` appends to open_clip's global config-path list on every call."""
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)


def create(params: ModelParams):
    """-> (model, preprocess_train, preprocess_val, tokenizer). Never downloads: a tag that is not
    cached locally raises open_clip's RuntimeError, which names the tag."""
    import open_clip

    register_configs()
    model, pre_train, pre_val = open_clip.create_model_and_transforms(
        params.name, pretrained=params.pretrained or None)
    return model, pre_train, pre_val, open_clip.get_tokenizer(params.name)


class TextIds:
    """A tokenizer's token ids and context, as the text tower reads them: what a process that only
    checks queries' lengths needs of an Encoder, without its model."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @property
    def context_length(self) -> int:
        """Tokens the text tower reads, start and end tokens included."""
        return int(getattr(self.tokenizer, "context_length", 77))

    def text_ids(self, text: str) -> list[int]:
        """The token ids of `text` in the text tower, start and end included, before any cut to the
        context (its length is what the tower would read of it)."""
        inner = getattr(self.tokenizer, "tokenizer", None)  # open_clip's HFTokenizer wraps a HF one
        if inner is not None:
            return list(inner(text)["input_ids"])
        return [self.tokenizer.sot_token_id, *self.tokenizer.encode(text), self.tokenizer.eot_token_id]


class Encoder(TextIds):
    """Wraps a CLIP model: texts/images -> float32 arrays (n, dim), rows L2-normalised."""

    def __init__(self, model, preprocess, tokenizer, device: str = "cpu", amp: str = "none", trim_text: bool = False,
                 traced: bool = False):
        self.model = model.to(device).eval()
        super().__init__(tokenizer)
        self.preprocess = preprocess
        self.device = device
        self.trim_text = trim_text  # see encode_text
        self.traced = traced        # see _graph
        self._graphs: dict[str, torch.jit.ScriptModule | None] = {}
        self._tower: _TextTower | None = None  # the text tower on trimmed tokens, made on first use
        # autocast on CUDA (bf16 | fp16); outputs are float32 and re-normalised after the cast
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp) if device.startswith("cuda") else None

    def on(self, device: str, amp: str = "none") -> Encoder:
        """The same model on another device (auto: CUDA when there is one), autocast there."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return Encoder(self.model, self.preprocess, self.tokenizer, device, amp, self.trim_text, self.traced)

    def _graph(self, name: str, module: torch.nn.Module, *example: torch.Tensor):
        """With `traced`, `module` as a TorchScript graph traced on its first input (once per tower):
        the graph runs all its ops without taking the GIL, where an eager forward takes it back after
        every op and, beside a busy Python thread (a server's HTTP loop), waits for it each time. The
        same ops on the same weights: the same vectors. A module that cannot be traced runs eagerly."""
        if not self.traced or self.amp is not None:
            return module
        if name not in self._graphs:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the tracer's notes on shapes read as Python ints
                    self._graphs[name] = torch.jit.trace(module, example, check_trace=False)
            except Exception as exc:  # noqa: BLE001  any architecture still encodes, eagerly
                logging.getLogger(__name__).warning("the %s tower runs eagerly: tracing failed (%s)", name, exc)
                self._graphs[name] = None
        return self._graphs[name] or module

    def _run(self, tower, x: torch.Tensor) -> torch.Tensor:
        if self.amp is None and self.device == "cpu":  # no op call that only hands the GIL around
            y = tower(x, normalize=True)
            return y if y.dtype == torch.float32 else y.float()
        if self.amp is None:
            return tower(x.to(self.device), normalize=True).float().cpu()
        with torch.autocast("cuda", dtype=self.amp):
            y = tower(x.to(self.device, non_blocking=True), normalize=True)
        return torch.nn.functional.normalize(y.float(), dim=-1).cpu()

    @property
    def dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") \
            else int(self.encode_text(["x"]).shape[1])

    def close(self) -> None:
        """Nothing to stop: the model lives in this process (serving.encoder_process's children do not)."""

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 256, ids: list | None = None) -> np.ndarray:
        """`ids` (optional): per text its `text_ids`, where they were read already (the service reads
        them to check a query's length), or None; those texts are not tokenized again.

        With `trim_text` the text tower reads up to the longest text of each batch, not the whole
        context, where that gives the same vectors (`_trimmable`) up to float rounding (about 2e-7); a
        few-word query then costs a third of the work. The service trims; the stages keep the full
        context, so their outputs and figures stay bit for bit what they were."""
        short = self.trim_text and _trimmable(self.model)
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self._tokens(texts[i:i + batch_size], ids and ids[i:i + batch_size])
            if short:  # through the batch's last end-of-text token (a real token may be id 0)
                tokens = np.ascontiguousarray(tokens[:, :int(tokens.argmax(axis=1).max()) + 1])
            tokens = torch.from_numpy(tokens)
            out.append(self._run(self._text_tower(tokens) if short else self.model.encode_text, tokens))
        return _cat(out)

    def _text_tower(self, example: torch.Tensor):
        """The whole text tower on trimmed tokens (`_TextTower`), as one graph when `traced`: a batch
        then hands the GIL over once, where op by op it would wait for it after every op."""
        if self._tower is None:
            self._tower = _TextTower(self.model).eval()
        graph = self._graph("text", self._tower, example)
        return lambda x, normalize=True: graph(x)

    def _tokens(self, texts: list[str], ids: list | None) -> np.ndarray:
        """The tokenizer's (n, context) ids as an int64 array; rows whose ids are given are packed from
        them, as open_clip's SimpleTokenizer packs them (a plain one: a HF tokenizer pads its own way)."""
        plain = getattr(self.tokenizer, "reduction_fn", False) is None and hasattr(self.tokenizer, "eot_token_id")
        if not ids or not plain or all(x is None for x in ids):
            return self.tokenizer(list(texts)).numpy()
        rows = [x if x is not None else self.text_ids(t) for t, x in zip(texts, ids)]
        return _pack(rows, self.context_length, self.tokenizer.eot_token_id)

    @torch.no_grad()
    def encode_images(self, images: list, batch_size: int = 128) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            batch = torch.stack([self.preprocess(im.convert("RGB")) for im in images[i:i + batch_size]])
            out.append(self._run(self._image_tower(batch), batch))
        return _cat(out)

    def _image_tower(self, example: torch.Tensor):
        """open_clip's CLIP.encode_image, its `visual` traced when `traced`."""
        visual = getattr(self.model, "visual", None)
        if not self.traced or visual is None:
            return self.model.encode_image
        graph = self._graph("image", visual, example.to(self.device))
        return lambda x, normalize=False: torch.nn.functional.normalize(graph(x), dim=-1) if normalize else graph(x)

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Already preprocessed tensors (n, 3, H, W) -> (n, dim)."""
        out = [self._run(self.model.encode_image, pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]
        return _cat(out)


def _trimmable(model) -> bool:
    """An open_clip CLIP whose text tower is causal and pools at the end-of-text token: that token
    attends only to the tokens before it, so the padding after the longest text changes nothing."""
    return (all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "ln_final", "transformer"))
            and getattr(model, "attn_mask", None) is not None and getattr(model, "text_pool_type", "") == "argmax")


class _TextTower(torch.nn.Module):
    """open_clip's CLIP.encode_text(normalize=True) on tokens cut after the batch's longest text (see
    `_trimmable`): the positions and causal mask are those of the tokens' own width."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        m, n = self.model, text.shape[1]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(text).to(cast) + m.positional_embedding[:n].to(cast)
        x = m.ln_final(m.transformer(x, m.attn_mask[:n, :n]))
        x = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]
        proj = m.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x if proj is None else x @ proj
        return torch.nn.functional.normalize(x, dim=-1)


def _pack(rows: list[list[int]], context_length: int, eot: int) -> np.ndarray:
    """Token ids -> a zero-padded (n, context_length) int64 array; a longer row is cut and ends in `eot`
    (numpy: filling a tensor row by row would hand the GIL around at every row)."""
    out = np.zeros((len(rows), context_length), dtype=np.int64)
    for i, row in enumerate(rows):
        row = row if len(row) <= context_length else [*row[:context_length - 1], eot]
        out[i, :len(row)] = row
    return out


def _cat(chunks: list[torch.Tensor]) -> np.ndarray:
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    return np.asarray(out.numpy(), dtype=np.float32)


def save_checkpoint(model, params: ModelParams, directory: str | Path) -> Path:
    """Weights plus the architecture name, so `load_encoder` can rebuild the model offline."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / WEIGHTS)
    (directory / SPEC).write_text(json.dumps(asdict(params), indent=2))
    return directory


def checkpoint_sha256(directory: str | Path) -> str:
    """The model's identity: a hash of its weights and architecture files. A retrain that reproduces
    the weights has the same identity, so the registry finds the version it already holds."""
    h = hashlib.sha256()
    for name in (WEIGHTS, SPEC):
        with open(Path(directory) / name, "rb") as fh:
            h.update(name.encode() + b"\0" + hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


class _RandomInitNotice(logging.Filter):
    """open_clip warns that a model built without a pretrained tag is "initialized randomly"; when a
    checkpoint's weights are loaded into it right after, the warning is false and only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def load_model(directory: str | Path):
    """-> (model, preprocess_val, tokenizer) from a directory written by `save_checkpoint`."""
    directory = Path(directory)
    spec = ModelParams(**json.loads((directory / SPEC).read_text()))
    notice = _RandomInitNotice()
    logging.getLogger().addFilter(notice)  # open_clip logs through the root logger
    try:
        model, _, pre_val, tok = create(ModelParams(spec.name, pretrained=""))
    finally:
        logging.getLogger().removeFilter(notice)
    model.load_state_dict(torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True))
    return model, pre_val, tok


def load_encoder(directory: str | Path, device: str = "cpu") -> Encoder:
    model, pre_val, tok = load_model(directory)
    return Encoder(model, pre_val, tok, device=device)
