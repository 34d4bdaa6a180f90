"""A small pool of worker processes that never re-imports the caller's ``__main__``.

``multiprocessing``'s "spawn" and "forkserver" start methods run the parent's main script
again in every worker, so a plain script without the ``if __name__ == "__main__":`` guard
crashes (or repeats its own work); "fork" is unsafe once JAX's threads run. The workers here
are fresh interpreters (``python -c``, importing :mod:`jaxbell` and then the function they
are sent, by module and name) that exchange pickles over their standard input and output.

Used by :func:`jaxbell.bff.bff_entropy` to solve SDP points in parallel.

Why not loky or ``concurrent.futures`` (issue 14, measured with
``benchmarks/workers_probe.py``, loky 3.7.0, Python 3.11, AMD EPYC 2 vCPUs). Each probe is a
fresh caller script; "loky+wrap" is loky with the thinnest wrapper that closes its gaps (an
initializer sending fd 1 to stderr and stderr to a per-worker log, ``env=``, ``shutdown(
kill_workers=True)`` on any error or Ctrl-C, dead workers' logs added to the error):

=====================================  =======  ======  =========  =========
guarantee                              jaxbell  loky    loky+wrap  spawn PPE
=====================================  =======  ======  =========  =========
script without a main guard runs once  yes      yes     yes        no (3x)
the same under -W error                yes      yes     yes        no
workers see the caller's sys.path      yes      yes     yes        yes
stray fd-1 output off caller's stdout  yes      no      yes        no
dying worker's stderr quoted           yes      no      yes [1]    no
error: call returns (busy worker)      0.2 s    28 s    0.2 s      yes [2]
Ctrl-C to the process group            yes      yes     yes        yes
SIGINT to the caller only              yes      30 s    yes        30 s
bad task/result pickle raises          yes      yes     yes        yes
no process left after the call         yes      no [3]  no [3]     no [3]
=====================================  =======  ======  =========  =========

[1] by a heuristic: loky's error names no process, so the wrapper quotes the logs of every
worker that is gone (loky kills the others when one dies). [2] with ``cancel_futures``, which
leaves the busy worker running. [3] loky's and multiprocessing's resource-tracker processes
stay alive until the caller exits. So loky needs a wrapper of about 50 lines doing what this
module does (fd redirection, stderr logs, kill on error), plus two dependencies (loky,
cloudpickle), and still leaves helper processes behind: the hand-written pool is kept.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_HEADER = struct.Struct("<Q")


def _send(stream, obj: Any) -> None:
    _send_bytes(stream, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _send_bytes(stream, data: bytes) -> None:
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
    (with the worker's traceback; a worker that dies adds the end of its stderr). The workers
    see this process's ``sys.path``. When all results have arrived they exit at the end of
    their input; on an error, Ctrl-C or an early close of the iterator they are killed at
    once, so no process outlives the call.
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
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # as spawn would see it
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        for _ in range(max(1, min(processes, len(tasks)))):
            logs.append(tempfile.TemporaryFile())
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _ENTRY],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=logs[-1],
                    env=env,
                )
            )
    except BaseException:
        _stop(procs, logs, kill=True)
        raise

    def feed(k: int) -> None:
        proc = procs[k]
        try:
            while True:
                try:
                    index, task = todo.get_nowait()
                except queue.Empty:
                    return
                _send(proc.stdin, (func, task))
                ok, result = _receive(proc.stdout)
                done.put((index, ok, result))
        except BaseException as exc:  # never leave the caller waiting for a dead thread
            try:
                code = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            why = "died" if code is not None else "failed"
            done.put(
                (
                    -1,
                    False,
                    f"worker process {proc.pid} {why} (exit code {code}): {exc!r}{_tail(logs[k])}",
                )
            )

    threads = [threading.Thread(target=feed, args=(k,), daemon=True) for k in range(len(procs))]
    for th in threads:
        th.start()
    finished = False
    try:
        for _ in range(len(tasks)):
            index, ok, result = done.get()
            if not ok:
                raise WorkerError(result)
            yield index, result
        finished = True
    finally:
        while not todo.empty():  # no new tasks once the caller stops listening
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        _stop(procs, logs, kill=not finished)


#: What a worker runs (``-c``: ``python -m jaxbell._workers`` would import this module twice).
_ENTRY = "from jaxbell._workers import _main; _main()"


def _tail(log, size: int = 2000) -> str:
    """The end of a worker's stderr, for an error message."""
    try:
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - size))
        text = log.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""
    return f"; its stderr ends:\n{text}" if text else ""


def _stop(procs: list, logs: list, *, kill: bool) -> None:
    """End the workers: at the end of their input, or killed (on errors); never left behind."""
    try:
        for proc in procs:
            if kill:
                proc.kill()
            try:
                proc.stdin.close()  # a worker exits at the end of its input
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 10.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:  # even on a second Ctrl-C
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        for log in logs:
            log.close()


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
        try:  # a result that cannot pickle is the function's error too, not the worker's end
            data = pickle.dumps((True, func(task)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # reported to the parent, which raises it
            data = pickle.dumps((False, traceback.format_exc()))
        _send_bytes(stdout, data)


def _main() -> None:
    """A worker's entry point (:data:`_ENTRY`)."""
    try:
        _serve()
    except KeyboardInterrupt:  # the parent was interrupted too; it reports
        pass
