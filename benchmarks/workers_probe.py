"""Does a maintained process pool give the guarantees of ``jaxbell._workers``? (issue 14)

Runs one small probe per guarantee against four pools, each probe in a fresh caller script
(written to a temporary directory, run in its own session so that Ctrl-C can be sent to its
process group the way a terminal does):

* ``jaxbell``     -- :func:`jaxbell._workers.imap_unordered` (hand-written);
* ``loky``        -- ``loky.ProcessPoolExecutor`` used the plain way (``with`` block);
* ``loky+wrap``   -- loky with the thinnest wrapper that could close the gaps: an initializer
                     that sends fd 1 to stderr and stderr to a per-worker log, ``env=`` for
                     the thread caps, ``shutdown(kill_workers=True)`` on any error or Ctrl-C,
                     and the logs of dead workers appended to ``TerminatedWorkerError``;
* ``ppe-spawn``   -- ``concurrent.futures.ProcessPoolExecutor`` with the "spawn" context
                     (``with`` block; ``shutdown(cancel_futures=True)`` on errors).

Guarantees probed (what "ok" means):

* ``no_main_guard``  a caller script without ``if __name__ == "__main__":`` runs once (its top
                     level prints once) and gets its results;
* ``warnings_error`` the same with ``PYTHONWARNINGS=error`` (no double import of a module);
* ``sys_path``       a module found only through a directory the caller put on ``sys.path``
                     at run time is imported by the workers;
* ``leftovers``      no child process of the caller is left 1 s after a call returns;
* ``stdout``         ``print`` and a native ``os.write(1, ...)`` in a worker neither corrupt
                     the results nor reach the caller's stdout (they go to stderr);
* ``dying_stderr``   a worker that writes to stderr and exits with code 3: the error names the
                     exit code and quotes the stderr;
* ``error_kills``    one task raises while another sleeps 30 s: the error arrives and the call
                     returns in well under 30 s, and the sleeper is dead afterwards;
* ``ctrl_c_group``   SIGINT to the caller's process group (a terminal's Ctrl-C) while both
                     workers sleep 30 s: the caller exits at once and no worker survives;
* ``ctrl_c_parent``  the same with SIGINT to the caller only (``kill -INT``);
* ``bad_task``       an unpicklable task raises (no hang);
* ``bad_result``     an unpicklable result raises (no hang);
* ``bad_unpickle``   a task that fails to unpickle in the worker raises (no hang);
* ``startup``        wall time of 2 tasks of a jaxbell function on 2 workers (start-up to
                     shutdown, workers import jaxbell.bff), as a ratio to ``jaxbell``;
* ``per_task``       (T(402 trivial tasks) - T(2 tasks)) / 400 on 2 workers, as a ratio.

Timings on a shared machine are noisy: read the ratios (all pools measured in the same run,
interleaved). Takes a few minutes on 2 busy vCPUs.

    python benchmarks/workers_probe.py [--pools jaxbell loky] [--probes stdout ctrl_c_group]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

POOLS = ("jaxbell", "loky", "loky+wrap", "ppe-spawn")

#: Imported by the callers and the workers from a directory put on sys.path at run time.
LIB = r"""
import os, sys, time, math, glob, tempfile

def echo(x):
    return x

def where(_):
    return __file__

def noisy(x):
    print("PY-STRAY", flush=True)
    os.write(1, b"NATIVE-STRAY\n")
    return x

def die(_):
    sys.stderr.write("LAST WORDS OF THE WORKER\n")
    sys.stderr.flush()
    os._exit(3)

def sleep_pid(arg):
    folder, seconds = arg
    with open(os.path.join(folder, f"{os.getpid()}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return seconds

def fail_later(folder, seconds):
    time.sleep(seconds)
    with open(os.path.join(folder, "failed_at"), "w") as f:
        f.write(repr(time.monotonic()))  # system-wide clock: comparable across processes
    raise ValueError("planned failure")

def alive(folder):
    # sleepers (pid files in folder) still running: not gone, not a zombie
    out = []
    for name in glob.glob(os.path.join(folder, "*.pid")):
        pid = int(os.path.basename(name)[:-4])
        try:
            with open(f"/proc/{pid}/status") as f:
                state = f.read()
        except OSError:
            continue
        if "\nState:\tZ" not in state and "\nState:\tX" not in state:
            out.append(pid)
    return out

def generator(_):
    return (k for k in range(2))

def boom():
    raise RuntimeError("cannot unpickle this task")

class BadOnLoad:
    def __reduce__(self):
        return (boom, ())

def children():
    # this process's children still running, with their command lines
    out = []
    for task in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(task) as f:
            for pid in f.read().split():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as g:
                        cmd = g.read().replace(b"\0", b" ").decode()[:80]
                except OSError:
                    continue
                out.append(cmd)
    return out

def mixed(arg):
    folder, sleep, fail, k = arg
    if k == 0:
        return sleep_pid((folder, sleep))
    return fail_later(folder, fail)

def jaxbell_task(m):
    from jaxbell.bff import gauss_radau
    return float(gauss_radau(m)[0].sum())

# --- the pools, each as imap_unordered(func, tasks, processes) -> (index, result) pairs ---

def imap_jaxbell(func, tasks, processes):
    from jaxbell._workers import imap_unordered
    yield from imap_unordered(func, tasks, processes)

def imap_loky(func, tasks, processes):
    from concurrent.futures import as_completed
    from loky import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=processes) as ex:
        futures = {ex.submit(func, t): i for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()

def _loky_init(folder):
    log = open(os.path.join(folder, f"{os.getpid()}.log"), "wb", buffering=0)
    os.dup2(log.fileno(), 2)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

def imap_loky_wrapped(func, tasks, processes):
    from concurrent.futures import as_completed
    from loky import ProcessPoolExecutor
    from loky.process_executor import TerminatedWorkerError
    folder = tempfile.mkdtemp()
    env = {"JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    ex = ProcessPoolExecutor(
        max_workers=processes, initializer=_loky_init, initargs=(folder,), env=env
    )
    finished = False
    try:
        futures = {ex.submit(func, t): i for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except TerminatedWorkerError as exc:
                tails = []
                for path in sorted(glob.glob(os.path.join(folder, "*.log"))):
                    pid = int(os.path.basename(path)[:-4])
                    try:
                        os.kill(pid, 0)
                        continue  # alive: not the one that died
                    except OSError:
                        pass
                    with open(path, "rb") as f:
                        tails.append(f.read()[-2000:].decode(errors="replace"))
                raise RuntimeError(f"{exc}; stderr of dead workers: {tails}") from exc
        finished = True
    finally:
        ex.shutdown(wait=True, kill_workers=not finished)

def imap_ppe(func, tasks, processes):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as ex:
        try:
            futures = {ex.submit(func, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise

POOLS = {"jaxbell": imap_jaxbell, "loky": imap_loky, "loky+wrap": imap_loky_wrapped,
         "ppe-spawn": imap_ppe}
"""

#: The caller: a plain script, no main guard. {lib}, {pool}, {body} are filled in.
CALLER = r"""
import json, os, sys, time
sys.path[:0] = [{lib!r}, {root!r}]  # this checkout's jaxbell, found via sys.path alone
import probe_lib as L
print("TOP LEVEL", flush=True)
imap = L.POOLS[{pool!r}]
def report(**kw):
    sys.stdout.write("RESULT " + json.dumps(kw) + "\n")
    sys.stdout.flush()
{guard}
    try:
{body}
    except KeyboardInterrupt:
        report(interrupted=True, t=time.monotonic())
        sys.exit(130)
    except BaseException as exc:
        report(error=type(exc).__name__ + ": " + str(exc)[-3000:], t=time.monotonic())
"""

BODIES = {
    "no_main_guard": "got = dict(imap(L.echo, [1.5, 2.5, 3.5], 2)); report(got=got)",
    "warnings_error": "got = dict(imap(L.echo, [1.5, 2.5], 2)); report(got=got)",
    "leftovers": (
        "got = dict(imap(L.echo, [1.5, 2.5], 2)); time.sleep(1.0)\n"
        "report(got=got, children=L.children())"
    ),
    "sys_path": "got = dict(imap(L.where, [0, 1], 2)); report(got=got, lib=L.__file__)",
    "stdout": "got = dict(imap(L.noisy, [1.5, 2.5, 3.5], 2)); report(got=got)",
    "dying_stderr": "got = dict(imap(L.die, [0], 1)); report(got=got)",
    "error_kills": (
        "t0, err = time.monotonic(), None\n"
        "try:\n"
        "    dict(imap(L.mixed, [(os.environ['PIDS'], 30.0, 2.0, k) for k in range(2)], 2))\n"
        "except Exception as exc:\n"
        "    err = type(exc).__name__ + ': ' + str(exc)[:300]\n"
        "report(error_seen=err, returned=time.monotonic(), alive=L.alive(os.environ['PIDS']))"
    ),
    "ctrl_c": "dict(imap(L.sleep_pid, [(os.environ['PIDS'], 30.0)] * 2, 2)); report(done=True)",
    "bad_task": "dict(imap(L.echo, [(k for k in range(2))], 1)); report(done=True)",
    "bad_result": "dict(imap(L.generator, [0], 1)); report(done=True)",
    "bad_unpickle": "dict(imap(L.echo, [L.BadOnLoad()], 1)); report(done=True)",
    "timing": (
        "import jaxbell._workers, jaxbell.bff  # the caller's own imports: not timed\n"
        "def run(func, tasks):\n"
        "    t0 = time.perf_counter(); got = dict(imap(func, tasks, 2))\n"
        "    assert len(got) == len(tasks); return time.perf_counter() - t0\n"
        "start = run(L.jaxbell_task, [2, 3])\n"
        "few = run(L.echo, [0.0] * 2)\n"
        "many = run(L.echo, [0.0] * 402)\n"
        "report(startup=start, per_task=(many - few) / 400)"
    ),
}


def _alive(pid: int) -> bool:
    """Running (not a zombie, not gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state and "\nState:\tX" not in state


def _pids(folder: str) -> list[int]:
    return [int(p.stem) for p in Path(folder).glob("*.pid")]  # written by sleep_pid


def _parse(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {}


def _launch(lib: str, pool: str, name: str, pids: str) -> subprocess.Popen:
    body = BODIES["ctrl_c" if name.startswith("ctrl_c") else name]
    # spawn needs the main guard; give it one except where the guard itself is probed
    guard = pool == "ppe-spawn" and name not in ("no_main_guard", "warnings_error")
    script = Path(pids) / "caller.py"
    script.write_text(
        CALLER.format(
            lib=lib,
            root=str(Path(__file__).resolve().parents[1]),
            pool=pool,
            guard='if __name__ == "__main__":' if guard else "if True:",
            body=textwrap.indent(body, " " * 8),
        )
    )
    env = dict(os.environ, PIDS=pids)
    env.pop("PYTHONPATH", None)  # the workers must get the path from the caller
    if name == "warnings_error":
        env["PYTHONWARNINGS"] = "error"
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tempfile.gettempdir(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # own process group: Ctrl-C can go to it alone
    )


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str, bool]:
    try:
        out, err = proc.communicate(timeout=timeout)
        return out, err, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return out, err, True


def probe(lib: str, pool: str, name: str, timeout: float = 150.0) -> dict:
    """Run one probe; return {"ok": bool or None, "detail": str, ...}."""
    pids = tempfile.mkdtemp(dir=lib)
    proc = _launch(lib, pool, name, pids)
    if name.startswith("ctrl_c"):
        t_end = time.monotonic() + timeout
        while len(_pids(pids)) < 2 and proc.poll() is None and time.monotonic() < t_end:
            time.sleep(0.1)
        time.sleep(0.5)
        t_sig = time.monotonic()
        if proc.poll() is None:
            if name == "ctrl_c_group":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                os.kill(proc.pid, signal.SIGINT)
        out, err, hung = _finish(proc, 60.0)
        t_exit = time.monotonic()
        workers = _pids(pids)
        alive_now = [p for p in workers if _alive(p)]
        time.sleep(2.0)
        alive_later = [p for p in workers if _alive(p)]
        for p in alive_later:  # clean up what the pool left behind
            os.kill(p, signal.SIGKILL)
        ok = (not hung) and len(workers) == 2 and not alive_now and t_exit - t_sig < 10
        caught = _parse(out).get("t", float("nan")) - t_sig
        detail = (
            f"KeyboardInterrupt caught after {caught:.1f} s, "
            f"exit {proc.returncode} after {t_exit - t_sig:.1f} s; workers {len(workers)}, "
            f"alive at exit {len(alive_now)}, 2 s later {len(alive_later)}"
        )
        return {"ok": ok, "detail": detail, "stderr": err[-1500:]}
    out, err, hung = _finish(proc, timeout)
    res = _parse(out)
    top = (out + err).count("TOP LEVEL")
    if hung:
        return {
            "ok": False,
            "detail": f"HUNG (killed after {timeout:.0f} s)",
            "stderr": err[-1500:],
        }
    if name in ("no_main_guard", "warnings_error"):
        want = {"0": 1.5, "1": 2.5, "2": 3.5} if name == "no_main_guard" else {"0": 1.5, "1": 2.5}
        ok = res.get("got") == want and top == 1
        detail = f"results {'right' if res.get('got') == want else 'WRONG'}; top level ran {top}x"
        if "error" in res:
            detail += f"; {res['error'][:160]}"
    elif name == "leftovers":
        kids = res.get("children", ["?"])
        ok = not kids
        detail = f"processes left 1 s after the call: {kids}"
    elif name == "sys_path":
        ok = bool(res.get("got")) and set(res["got"].values()) == {res["lib"]}
        detail = "module found" if ok else f"{res.get('error', res)}"[:200]
    elif name == "stdout":
        right = res.get("got") == {"0": 1.5, "1": 2.5, "2": 3.5}
        leaked = "STRAY" in out
        ok = right and not leaked
        detail = f"results {'right' if right else 'WRONG'}; stray output on caller stdout: {leaked}"
        detail += f"; on stderr: {'STRAY' in err}"
    elif name == "dying_stderr":
        msg = res.get("error", "")
        quoted = "LAST WORDS" in msg
        code = "3" in msg and ("exit code" in msg or "exitcode" in msg.lower())
        ok = quoted and code
        detail = f"stderr quoted: {quoted}; exit code 3 named: {code}; {msg[:160]!r}"
    elif name == "error_kills":
        workers = _pids(pids)
        for p in workers:  # clean up what the pool left behind
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        failed_at = float(Path(pids, "failed_at").read_text()) if res.get("error_seen") else None
        wait = res["returned"] - failed_at if failed_at else float("nan")
        ok = wait < 10 and len(workers) == 1 and not res.get("alive")
        detail = (
            f"error {'raised' if res.get('error_seen') else 'MISSING'}; the call returned "
            f"{wait:.1f} s after the task failed; sleeper still running at return: "
            f"{bool(res.get('alive'))}"
        )
    elif name.startswith("bad_"):
        ok = "error" in res
        detail = res.get("error", f"no error: {res}")[:160]
    elif name == "timing":
        ok = None
        detail = json.dumps(res)
    else:
        raise ValueError(f"unknown probe {name!r}")
    return {"ok": ok, "detail": detail, "stderr": err[-1500:], **res}


PROBES = (
    "no_main_guard",
    "warnings_error",
    "sys_path",
    "leftovers",
    "stdout",
    "dying_stderr",
    "error_kills",
    "ctrl_c_group",
    "ctrl_c_parent",
    "bad_task",
    "bad_result",
    "bad_unpickle",
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", nargs="+", default=list(POOLS), choices=POOLS)
    parser.add_argument("--probes", nargs="+", default=list(PROBES) + ["timing"])
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per pool")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--verbose", action="store_true", help="print failing stderr tails")
    args = parser.parse_args(argv)
    lib = tempfile.mkdtemp(prefix="workers_probe_")
    Path(lib, "probe_lib.py").write_text(LIB)
    results: dict = {}
    for name in args.probes:
        if name == "timing":
            continue
        for pool in args.pools:
            r = probe(lib, pool, name)
            results[(name, pool)] = r
            mark = "ok  " if r["ok"] else "FAIL"
            print(f"{name:15s} {pool:10s} {mark} {r['detail']}", flush=True)
            if args.verbose and not r["ok"]:
                print(textwrap.indent(r["stderr"], "        | "))
    if "timing" in args.probes:
        times: dict = {pool: {"startup": [], "per_task": []} for pool in args.pools}
        for _ in range(args.repeats):  # interleaved: the same load for every pool
            for pool in args.pools:
                r = probe(lib, pool, "timing", timeout=400)
                for key in ("startup", "per_task"):
                    times[pool][key].append(r.get(key, float("nan")))
                print(f"timing run      {pool:10s} {r['detail']}", flush=True)
        base = (
            {k: statistics.median(times["jaxbell"][k]) for k in ("startup", "per_task")}
            if ("jaxbell" in times)
            else None
        )
        for pool, t in times.items():
            s, p = statistics.median(t["startup"]), statistics.median(t["per_task"])
            line = f"timing          {pool:10s} start-up {s:6.2f} s, per task {p * 1e3:6.2f} ms"
            if base:
                line += f"  (ratios to jaxbell: {s / base['startup']:.2f}, "
                line += f"{p / base['per_task']:.2f})"
            print(line, flush=True)
            results[("timing", pool)] = t
    if args.json:
        Path(args.json).write_text(
            json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1)
        )


if __name__ == "__main__":
    main()
