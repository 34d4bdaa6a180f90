"""A small pool of worker processes that never re-imports the caller's ``__main__``.

``multiprocessing``'s "spawn" and "forkserver" start methods run the parent's main script
again in every worker, so a plain script without the ``if __name__ == "__main__":`` guard
crashes (or repeats its own work); "fork" is unsafe once JAX's threads run. The workers here
are fresh interpreters (``python -m jaxbell._workers``) that import only the function they
are sent, by module and name, and exchange pickles over their standard input and output.

Used by :func:`jaxbell.bff.bff_entropy` to solve SDP points in parallel.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_HEADER = struct.Struct("<Q")


def _send(stream, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class WorkerError(RuntimeError):
    """A worker process died, or the function raised there (the message carries the cause)."""


def imap_unordered(
    func: Callable[[Any], Any], tasks: Iterable[Any], processes: int
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, func(task))`` as the results arrive, from ``processes`` workers.

    ``func`` must be importable by module and name (a module-level function); tasks and
    results must pickle. An exception in a worker is raised here as :class:`WorkerError`
    (with the worker's traceback); the workers are stopped when the iterator is closed,
    garbage-collected or interrupted (Ctrl-C), so no process outlives the call.
    """
    tasks = list(tasks)
    todo: queue.Queue = queue.Queue()
    for item in enumerate(tasks):
        todo.put(item)
    done: queue.Queue = queue.Queue()
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")  # a worker never needs an accelerator
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # one core per worker: the workers are the parallelism
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jaxbell._workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(max(1, min(processes, len(tasks))))
    ]

    def feed(proc: subprocess.Popen) -> None:
        try:
            while True:
                try:
                    index, task = todo.get_nowait()
                except queue.Empty:
                    return
                _send(proc.stdin, (func, task))
                ok, result = _receive(proc.stdout)
                done.put((index, ok, result))
        except (EOFError, OSError, pickle.PickleError) as exc:
            code = proc.poll()
            done.put((-1, False, f"worker process {proc.pid} died (exit code {code}): {exc!r}"))

    threads = [threading.Thread(target=feed, args=(p,), daemon=True) for p in procs]
    for th in threads:
        th.start()
    try:
        for _ in range(len(tasks)):
            index, ok, result = done.get()
            if not ok:
                raise WorkerError(result)
            yield index, result
    finally:
        while not todo.empty():  # no new tasks once the caller stops listening
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for proc in procs:
            try:
                proc.stdin.close()  # a worker exits at the end of its input
            except OSError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for proc in procs:
            proc.stdout.close()


def _serve() -> None:
    """Worker loop: (func, task) pickles in on stdin, (ok, result or traceback) out on stdout."""
    import traceback

    # the results travel on a private copy of file descriptor 1; fd 1 itself (and so any
    # stray output, from Python or from a solver's native code) goes to stderr
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    while True:
        try:
            func, task = _receive(stdin)
        except EOFError:
            return
        try:
            reply = (True, func(task))
        except Exception:  # reported to the parent, which raises it
            reply = (False, traceback.format_exc())
        _send(stdout, reply)


if __name__ == "__main__":
    try:
        _serve()
    except KeyboardInterrupt:  # the parent was interrupted too; it reports
        pass
