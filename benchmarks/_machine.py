"""The machine a benchmark runs on: CPU model, vector instruction set, cores (shared helper).

Every benchmark script prints :func:`describe_machine` first and records :func:`machine` in
the files it writes, so that a figure is never separated from the CPU it was measured on
(speed on a CPU depends on its vector width: AVX-512 against AVX2 changes the grid kernels'
compiler options, see ``jaxbell.grid.cpu_compiler_options``).
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``model name`` of /proc/cpuinfo on Linux), else the platform's."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("model name", "cpu model", "hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(env: dict | None = None) -> dict:
    """CPU model, widest vector instruction set, CPUs usable by this process, load, jax version.

    ``env``: the environment the measured code runs in (default: this process's); an
    ``--xla_cpu_max_isa`` in its XLA_FLAGS caps the vector instruction set reported.
    """
    import jax

    from jaxbell.grid import _compiler_options, cpu_flags, cpu_vector_isa, usable_cpus

    saved = os.environ.get("XLA_FLAGS")
    if env is not None:
        os.environ["XLA_FLAGS"] = env.get("XLA_FLAGS", "")
    try:
        _compiler_options.cache_clear()  # computed for the environment measured
        isa = cpu_vector_isa()
        options = _compiler_options("cpu", serial=True) or "XLA defaults"
    finally:
        if saved is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = saved
        _compiler_options.cache_clear()
    cpus = usable_cpus()
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "vector_isa": isa,
        "native_vector_isa": cpu_vector_isa(cpu_flags()),
        "cpus": cpus,
        "load_average_1min": load,
        "xla_cpu_options": options,  # of the field kernels (reductions: without the serial one)
        "jax_version": jax.__version__,
        "platform": platform.platform(),
    }


def describe_machine(info: dict | None = None) -> str:
    """One line: ``machine: AMD EPYC, AVX2, 2 CPUs (load 3.1), XLA CPU options ..., jax ...``."""
    m = machine() if info is None else info
    isa = m["vector_isa"]
    if m.get("native_vector_isa", isa) != isa:
        isa = f"{isa} code (XLA_FLAGS --xla_cpu_max_isa) on a CPU with {m['native_vector_isa']}"
    return (
        f"machine: {m['cpu_model']}, {isa}, {m['cpus']} CPUs "
        f"(load {m['load_average_1min']}), XLA options of the field kernels: "
        f"{m['xla_cpu_options']}, jax {m['jax_version']}"
    )
