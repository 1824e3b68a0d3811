"""A spawned child process that holds something heavy and answers requests over a pipe, one at a time.

The service keeps work off its own GIL this way: the Edge index search (serving.backends.process)
and the encoder's forward passes (serving.encoder_process). The child is spawned (nothing of the
parent's threads or model is copied) and runs `setup(*args) -> (answer, first, close)`: `first` is
sent once it is ready, then `answer(request)` for each request, each answered `(True, value)` or
`(False, error)`; a request that fails, fails alone. The parent waits on the pipe with the GIL
released. Calls from several threads are sent one at a time; a child that dies is replaced, and the
call that found it gone is asked again.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable

log = logging.getLogger("vlclip.serve")


class ChildGone(RuntimeError):
    pass


class Child:
    def __init__(self, setup: Callable, args: tuple, name: str, what: str, open_timeout_s: float = 300.0):
        """`what` names the child in errors ("the index search process")."""
        self._setup, self._args, self._name, self._what = setup, args, name, what
        self._timeout, self._lock = open_timeout_s, threading.Lock()
        self._conn = None

    @property
    def process(self) -> multiprocessing.Process:
        return self._proc

    def spawn(self) -> None:
        """Start the child; `wait` then blocks until it is ready."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(child, self._setup, self._args), name=self._name, daemon=True)
        self._proc.start()
        child.close()

    def wait(self):
        """-> what the child sent once ready; its setup's error is raised here, and the child stopped."""
        try:
            if not self._conn.poll(self._timeout):
                raise RuntimeError(f"{self._what} did not start in {self._timeout:.0f}s")
            return self._answer()
        except BaseException:
            self._stop()
            raise

    def start(self):
        self.spawn()
        return self.wait()

    def call(self, request, again: Callable[[object], None] = lambda first: None):
        """The child's answer to `request`; a dead child is replaced (`again(first)` may refuse the new
        one by raising) and asked once more."""
        with self._lock:
            try:
                return self._ask(request)
            except ChildGone as exc:  # killed (out of memory, by hand): a new child, and the call once more
                log.error("%s; starting another", exc)
                self._stop()
                again(self.start())
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
        return ChildGone(f"{self._what} has exited (exit code {self._proc.exitcode})")

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._conn is None or self._conn.closed:
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


def portable(exc: Exception) -> Exception:
    """The child's error as one the parent can unpickle: builtin errors as they are, others by name."""
    return exc if type(exc).__module__ == "builtins" else RuntimeError(f"{type(exc).__name__}: {exc}")


def _main(conn, setup: Callable, args: tuple) -> None:
    """The child: set up, then answer requests until told to stop or the parent is gone."""
    try:
        answer, first, close = setup(*args)
    except Exception as exc:  # noqa: BLE001  the parent raises it
        conn.send((False, portable(exc)))
        return
    try:
        conn.send((True, first))
        while (request := conn.recv()) is not None:
            try:
                conn.send((True, answer(request)))
            except Exception as exc:  # noqa: BLE001  a bad request fails alone
                conn.send((False, portable(exc)))
    except (EOFError, OSError):  # the parent has exited
        pass
    finally:
        close()
