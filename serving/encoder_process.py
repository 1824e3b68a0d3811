"""An encoder whose forward passes run in child processes, off the HTTP process's GIL.

Under concurrent load the service process runs the HTTP loop and the batchers' Python (tokens packed,
tensors made, images preprocessed, outputs converted) on one GIL, and they take turns on it.
`EncoderProcess` loads the model in two spawned children, one for text batches and one for image
batches (`load`: a picklable callable -> Encoder), and forwards `encode_text` and `encode_images` to
them over pipes; the service process waits on a pipe with the GIL released. Tokenizing (`text_ids`,
the query-length check) stays in the service process, on `local`. Each child answers one call at a
time; a child that dies is replaced and the call asked again.

Memory: the model is held three times (the service process's copy for tokenizing and each child's);
`serve.encode_process: false` keeps forward passes in process for a model too large for that.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable

import numpy as np

log = logging.getLogger("vlclip.serve")


class EncoderProcess:
    """encode_text / encode_images asked of `load()` in child processes; text_ids and context_length
    answered by `local` (an Encoder, or anything with those two), which runs no forward pass."""

    def __init__(self, local, load: Callable, threads: int = 1, open_timeout_s: float = 300.0):
        self.local = local
        self._text, self._images = (Child(load, threads, name) for name in ("text", "image"))
        try:
            for child in (self._text, self._images):  # both load at once, then each is waited for
                child.wait(open_timeout_s)
        except BaseException:
            self.close()
            raise

    @property
    def context_length(self) -> int:
        return self.local.context_length

    def text_ids(self, text: str) -> list[int]:
        return self.local.text_ids(text)

    def encode_text(self, texts: list[str], ids: list | None = None) -> np.ndarray:
        return self._text.call(("text", list(texts), ids))

    def encode_images(self, images: list) -> np.ndarray:
        return self._images.call(("image", [im.convert("RGB") for im in images], None))

    def close(self) -> None:
        self._text.close()
        self._images.close()


class Child:
    """One spawned process that loads the model and answers forward passes, one at a time."""

    def __init__(self, load: Callable, threads: int, name: str, open_timeout_s: float = 300.0):
        self._args, self._name, self._timeout = (load, threads), name, open_timeout_s
        self._lock = threading.Lock()
        self._spawn()

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, *self._args), name=f"vlclip-encode-{self._name}",
                                 daemon=True)
        self._proc.start()
        child.close()

    def wait(self, timeout_s: float) -> None:
        """Until the child has loaded the model (its load error raised here)."""
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"the {self._name} encoder process did not load the model in {timeout_s:.0f}s")
        self._answer()

    def call(self, request):
        with self._lock:
            try:
                return self._ask(request)
            except ChildGone as exc:  # killed (out of memory, by hand): a new child, and the call once more
                log.error("%s; starting another", exc)
                self._stop()
                self._spawn()
                self.wait(self._timeout)
                return self._ask(request)

    def _ask(self, request):
        try:
            self._conn.send(request)
        except OSError as exc:
            raise self._gone() from exc
        return self._answer()

    def _answer(self):
        try:
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        if not ok:
            raise value
        return value

    def _gone(self) -> ChildGone:
        self._proc.join(1)
        return ChildGone(f"the {self._name} encoder process has exited (exit code {self._proc.exitcode})")

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._conn.closed:
            return
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()


class ChildGone(RuntimeError):
    pass


def _serve(conn, load: Callable, threads: int) -> None:
    """The child: load the model, answer forward passes until told to stop or the parent is gone."""
    import torch

    from serving.backends.process import portable

    torch.set_num_threads(max(1, threads))
    try:
        encoder = load()
    except Exception as exc:  # noqa: BLE001  the parent raises it
        conn.send((False, portable(exc)))
        return
    try:
        conn.send((True, None))
        while (request := conn.recv()) is not None:
            kind, items, ids = request
            try:
                out = encoder.encode_text(items, ids=ids) if kind == "text" else encoder.encode_images(items)
                conn.send((True, out))
            except Exception as exc:  # noqa: BLE001  a bad batch fails alone
                conn.send((False, portable(exc)))
    except (EOFError, OSError):  # the parent has exited
        pass
