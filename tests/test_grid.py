"""evaluate_grid against the point functions, chunking, recompilation, labels, bad input."""

import subprocess
import sys

import jax
import numpy as np
import pytest
import xarray as xr
from helpers import assert_labelled

import jaxbell as jb
from jaxbell import grid as grid_module

PI = np.pi


def _axes(rng, n=(7, 6, 5)):
    """Irregular, increasing axes covering [0, 2 pi) so that every case of (4) appears."""
    return [np.sort(rng.uniform(0, 2 * PI, k)) for k in n]


def _point_reference(t, p, w):
    T, P, W = np.meshgrid(t, p, w, indexing="ij")
    e = jb.strategy_correlators(T, P, W)
    return {
        "local_bound": jb.local_bound(T, P, W),
        "quantum_bound": jb.quantum_bound(T, P, W),
        "self_testing": jb.is_self_testing(T, P, W),
        "correlators": e,
        "chsh": jb.chsh_value(e),
        "max_chsh": jb.max_chsh_value(e),
        "key_rate": jb.key_rate_at_quantum_bound(T, P, W),
        "epsilon": jb.epsilon_at_quantum_bound(T, P, W),
        "global_rate": jb.global_rate_at_quantum_bound(T, P, W),
    }


@pytest.mark.parametrize("chunk_size", [1, 17, 1 << 16])
def test_grid_equals_point_functions(rng, chunk_size):
    t, p, w = _axes(rng)
    ds = jb.evaluate_grid(t, p, w, chunk_size=chunk_size)
    ref = _point_reference(t, p, w)
    for name, value in ref.items():
        np.testing.assert_allclose(
            ds[name].values, np.asarray(value), rtol=1e-12, atol=1e-14, err_msg=name
        )
    ratio = np.abs(ref["quantum_bound"]) / ref["local_bound"]
    np.testing.assert_allclose(ds.violation_ratio.values, ratio, rtol=1e-12)
    st = np.asarray(ref["self_testing"])
    np.testing.assert_array_equal(ds.status.values, np.where(st, 0, 1))
    assert 0 < st.mean() < 1


def test_chunking_does_not_change_results(rng):
    t, p, w = _axes(rng, (9, 8, 7))
    a = jb.evaluate_grid(t, p, w, chunk_size=5)
    b = jb.evaluate_grid(t, p, w, chunk_size=10_000)
    for name in grid_module.FIELDS:
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-15, atol=1e-16)


def test_float32_grid_agrees_with_float64(rng):
    t, p, w = _axes(rng)
    a = jb.evaluate_grid(t, p, w, dtype="float32")
    b = jb.evaluate_grid(t, p, w, dtype=np.float64)
    assert a.local_bound.dtype == np.float32 and a.attrs["dtype"] == "float32"
    assert b.local_bound.dtype == np.float64 and b.attrs["dtype"] == "float64"
    for name in ("local_bound", "quantum_bound", "max_chsh", "correlators"):
        np.testing.assert_allclose(a[name], b[name], atol=2e-6)


def test_second_call_with_same_shapes_does_not_recompile(rng):
    t, p, w = _axes(rng)
    kernel = grid_module._row_kernel(jax.devices()[0].platform)
    jb.evaluate_grid(t, p, w, chunk_size=50)
    before = kernel._cache_size()
    assert before >= 2  # new buffers for the first steps, donated ones for the rest
    jb.evaluate_grid(t + 0.01, p, w - 0.01, chunk_size=50)
    assert kernel._cache_size() == before


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_engine_reuses_the_buffers_of_finished_steps(rng, dtype):
    """A run allocates MAX_IN_FLIGHT steps of block buffers, then donates them to later steps
    (no JAX warning that a donation was refused); the values are those of the point functions."""
    import warnings

    t, p, w = _axes(rng, (9, 6, 5))
    axes, dt, chunk, devs = grid_module._prepare(t, p, w, dtype, 30, 1, "memory")
    plan = grid_module.GridPlan(axes, dt, chunk, devs)
    pointers = []

    class Recording(grid_module.ArrayConsumer):
        def compute(self, tab, start, step):
            result = super().compute(tab, start, step)
            pointers.append({k: v.unsafe_buffer_pointer() for k, v in result.items()})
            return result

    consumer = Recording(plan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid_module.run_engine(plan, consumer, progress=False)
    assert len(pointers) == plan.nsteps >= 3 * grid_module.MAX_IN_FLIGHT
    for name in grid_module.FIELDS:
        assert len({ptr[name] for ptr in pointers}) == grid_module.MAX_IN_FLIGHT, name
    ref = _point_reference(t, p, w)
    for name, val in ref.items():
        np.testing.assert_allclose(
            consumer.out[name],
            val,
            rtol=1e-5 if dtype == "float32" else 1e-12,
            atol=1e-6 if dtype == "float32" else 0,
            err_msg=name,
        )


def test_outputs_start_on_huge_page_boundaries():
    out = grid_module.grid_fields(
        np.linspace(0, 1, 64), np.linspace(0, 1, 64), np.linspace(0, 1, 64)
    )
    for name, arr in out.items():  # 2 MiB float64 fields and the 8 MiB correlators
        if arr.nbytes >= grid_module.HUGE_PAGE:
            assert arr.ctypes.data % grid_module.HUGE_PAGE == 0, name
        assert arr.flags.c_contiguous and arr.flags.writeable, name
    small = grid_module.aligned_empty((3, 4), np.float32)
    assert small.shape == (3, 4) and small.dtype == np.float32
    big = grid_module.aligned_empty((1 << 20, 2), np.float64)
    assert big.ctypes.data % grid_module.HUGE_PAGE == 0 and big.shape == (1 << 20, 2)
    big[...] = 1.5  # the whole view is usable
    assert big.sum() == 1.5 * big.size


def test_cpu_compiler_options_fall_back_when_xla_rejects_them(monkeypatch):
    options = grid_module._compiler_options
    assert options("gpu") is None
    avx512 = frozenset({"avx2", "avx512f"})
    monkeypatch.setattr(grid_module, "cpu_flags", lambda: avx512)
    monkeypatch.setattr(grid_module, "AVX512_COMPILER_OPTIONS", {"xla_cpu_no_such_option": 1})
    options.cache_clear()
    try:
        assert options("cpu") is None  # XLA refuses the option: its defaults are used
        monkeypatch.setattr(
            grid_module, "AVX512_COMPILER_OPTIONS", {"xla_cpu_prefer_vector_width": 512}
        )
        options.cache_clear()
        assert options("cpu") == {"xla_cpu_prefer_vector_width": 512}  # this jaxlib knows it
    finally:
        monkeypatch.undo()
        options.cache_clear()


# flags lines of /proc/cpuinfo, abridged: AMD EPYC 7B13-class (Zen 3, AVX2 only), Zen 4 / Intel
# Sapphire Rapids class (AVX-512), an old x86 (SSE4.2 only), an arm64 Neoverse (SVE)
_AVX2_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 vaes vpclmulqdq"
_AVX512_FLAGS = _AVX2_FLAGS + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16"
_OLD_FLAGS = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt"
_ARM_FLAGS = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp sve sve2"


def test_cpu_vector_isa_from_cpuinfo_flags():
    isa = grid_module.cpu_vector_isa
    assert isa(frozenset(_AVX512_FLAGS.split())) == "AVX-512"
    assert isa(frozenset(_AVX2_FLAGS.split())) == "AVX2"
    assert isa(frozenset(_AVX2_FLAGS.upper().split())) == "AVX2"
    assert isa(frozenset(_OLD_FLAGS.split())) == "SSE4.2"
    assert isa(frozenset(_ARM_FLAGS.split())) == "SVE"
    assert isa(frozenset()) == "unknown"
    assert isa() in {name for name, _ in grid_module.VECTOR_ISAS} | {"unknown"}


def test_512_bit_vectors_only_on_cpus_with_avx512(monkeypatch):
    """The kernels ask XLA for 512-bit vectors on AVX-512 CPUs only; others keep its defaults
    (an AVX2 CPU runs 512-bit vectors as pairs of 256-bit ones, at no gain, measured)."""
    cases = {_AVX512_FLAGS: {"xla_cpu_prefer_vector_width": 512}, _AVX2_FLAGS: None, "": None}
    options = grid_module._compiler_options
    try:
        for flags, expected in cases.items():
            monkeypatch.setattr(grid_module, "cpu_flags", lambda f=flags: frozenset(f.split()))
            options.cache_clear()
            assert options("cpu") == expected, flags[-40:]
            assert options("gpu") is None
    finally:
        monkeypatch.undo()
        options.cache_clear()


def test_grid_identical_with_and_without_512_bit_vectors(monkeypatch):
    """Choosing the vector width by CPU changes no bit of the fields (on any x86 CPU XLA
    compiles both; on an AVX2 one the 512-bit code runs as pairs of 256-bit instructions)."""
    axes = (np.linspace(0, 2 * np.pi, 24), np.linspace(-np.pi, np.pi, 20), np.linspace(0, 3, 18))
    out = {}
    try:
        for flags in (_AVX2_FLAGS, _AVX512_FLAGS):
            monkeypatch.setattr(grid_module, "cpu_flags", lambda f=flags: frozenset(f.split()))
            for cache in (grid_module._compiler_options, grid_module._row_kernel):
                cache.cache_clear()
            out[flags] = grid_module.grid_fields(*axes, chunk_size=1000, progress=False)
    finally:
        monkeypatch.undo()
        for cache in (grid_module._compiler_options, grid_module._row_kernel):
            cache.cache_clear()
    a, b = out.values()
    for name in grid_module.FIELDS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_balanced_groups_split_the_copy_work_evenly():
    import itertools
    import math

    rng = np.random.default_rng(3)
    for n in (1, 2, 3):
        sizes = {f"f{i}": int(v) for i, v in enumerate(rng.integers(1, 50, 7))}
        groups = grid_module.balanced_groups(sizes, n)
        assert sorted(sum(groups, [])) == sorted(sizes) and len(groups) == n
        worst = max(sum(sizes[k] for k in g) for g in groups)
        best = min(  # brute force over all assignments of the 7 names to n groups
            max(sum(sizes[k] for k, j in zip(sizes, lab, strict=True) if j == g) for g in range(n))
            for lab in itertools.product(range(n), repeat=len(sizes))
        )
        assert worst <= best + max(sizes.values())  # greedy: within one item of optimal
    assert grid_module.balanced_groups({"a": 1}, 4) == [["a"]]
    nbytes = grid_module.field_nbytes("float64")
    two = grid_module.balanced_groups(nbytes, 2)
    assert [sum(nbytes[k] for k in g) for g in two] == [49, 49]  # 12 float64s, a bool, an int8
    fields = grid_module.field_dtypes("float32")
    assert (
        grid_module.bytes_per_point("float32")
        == 50
        == sum(  # counted independently
            math.prod(trail) * dt.itemsize for trail, dt in fields.values()
        )
    )
    out = grid_module.grid_fields([0.1, 0.2], [0.3], [0.4, 0.5, 0.6])
    assert sum(a.nbytes for a in out.values()) == 6 * grid_module.bytes_per_point("float64")


def test_structure_known_answers():
    # Figure 1 plane (omega = pi): the maximum over the perfect-randomness region is 3 sqrt3/2
    ax = np.linspace(0, PI, 61)  # contains pi/3
    ds = jb.evaluate_grid(ax, ax, PI)
    region = ds.self_testing & (np.abs(ds.global_rate - 2) < 1e-12)
    best = ds.max_chsh.where(region).max()
    np.testing.assert_allclose(best, 3 * np.sqrt(3) / 2, rtol=1e-12)
    arg = ds.max_chsh.where(region).argmax(...)
    assert ds.theta[arg["theta"]] == pytest.approx(PI / 3) and ds.phi[arg["phi"]] == pytest.approx(
        PI / 3
    )


def test_trivial_expression_is_flagged():
    # cos(theta + phi) = cos(omega) = 0 (up to rounding): every coefficient vanishes
    ds = jb.evaluate_grid(PI / 4, PI / 4, PI / 2).squeeze()
    assert int(ds.status) == 2 and np.isnan(float(ds.violation_ratio))
    assert not bool(ds.self_testing) and np.isnan(float(ds.key_rate))


def test_every_variable_is_labelled(rng):
    ds = jb.evaluate_grid(*_axes(rng, (3, 3, 3)))
    assert set(grid_module.FIELDS) == set(ds.data_vars)
    assert_labelled(ds)
    assert ds.correlators.dims == ("theta", "phi", "omega", "x", "y")
    assert ds.key_rate.attrs["units"] == "bit" and ds.theta.attrs["units"] == "rad"
    for key in ("title", "source", "history", "references", "dtype", "chunk_size", "devices"):
        assert key in ds.attrs
    assert "10.1103/PhysRevLett.132.210802" in ds.attrs["references"]
    assert ds.attrs["source"] == f"jaxbell {jb.__version__}"


def test_netcdf_round_trip_is_identical(rng, tmp_path):
    ds = jb.evaluate_grid(*_axes(rng, (4, 5, 3)))
    path = jb.save_dataset(ds, tmp_path / "grid.nc")
    with jb.open_dataset(path) as back:
        xr.testing.assert_identical(back.load(), ds)


def test_zarr_round_trip_is_identical(rng, tmp_path):
    ds = jb.evaluate_grid(*_axes(rng, (4, 5, 3)))
    path = jb.save_dataset(ds, tmp_path / "grid.zarr")
    xr.testing.assert_identical(jb.open_dataset(path).load(), ds)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"theta": [0.0, np.nan]}, ValueError, "theta.*non-finite"),
        ({"phi": []}, ValueError, "phi is empty"),
        ({"omega": [2.0, 1.0]}, ValueError, "omega must be strictly increasing"),
        ({"omega": [1.0, 1.0]}, ValueError, "omega must be strictly increasing"),
        ({"theta": np.zeros((2, 2))}, ValueError, "theta must be 1-D"),
        ({"phi": "0:pi:3"}, TypeError, "phi must be an array"),
        ({"dtype": "int32"}, TypeError, "dtype"),
        ({"dtype": "float16"}, TypeError, "dtype"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": 2.5}, TypeError, "chunk_size"),
    ],
)
def test_bad_input_gives_clear_errors(kwargs, exc, match):
    args = {"theta": [0.0, 1.0], "phi": [0.5], "omega": [1.0, 2.0]} | kwargs
    with pytest.raises(exc, match=match):
        jb.evaluate_grid(**args)


def test_unwritable_path_is_named(tmp_path):
    ds = jb.evaluate_grid([0.1], [0.2], [0.3])
    with pytest.raises(ValueError, match="out=.*does not exist"):
        jb.save_dataset(ds, tmp_path / "missing" / "grid.nc")
    with pytest.raises(ValueError, match=r"\.nc"):
        jb.save_dataset(ds, tmp_path / "grid.txt")


def test_progress_bar_reports_points(capsys):
    jb.evaluate_grid(
        np.linspace(0, 1, 8),
        np.linspace(0, 1, 8),
        np.linspace(0, 1, 8),
        chunk_size=64,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "grid" in err and "512" in err
    assert "<" in err  # tqdm's elapsed<remaining: the ETA
    assert "[1 cpu]" in err  # the devices used


def test_float64_works_without_global_x64():
    code = (
        "import jax, numpy as np, jaxbell as jb\n"
        "assert not jax.config.jax_enable_x64\n"
        "ds = jb.evaluate_grid([1.0471975511965976], [1.5707963267948966 - 2.5e-7], "
        "[2.6179938779914944])\n"
        "assert ds.epsilon.dtype == np.float64\n"
        "print(repr(float(ds.epsilon.squeeze())))\n"
        "assert not jax.config.jax_enable_x64\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    eps = float(out.stdout)
    ref = float(jb.epsilon_at_quantum_bound(PI / 3, PI / 2 - 2.5e-7, 5 * PI / 6))
    assert 1e-13 < eps < 1e-11 and eps == pytest.approx(ref, rel=1e-12)


# --- the block engine: plans, windows, devices ------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "chunk", "ndev"), [((7, 6, 5), 1, 1), ((7, 6, 5), 17, 3), ((33, 9, 4), 40, 4)]
)
def test_plan_covers_every_point_once(shape, chunk, ndev):
    axes = [np.arange(n, dtype=float) for n in shape]
    devices = [jax.devices()[0]] * ndev  # the plan only counts devices
    plan = grid_module.GridPlan(axes, np.dtype("float64"), chunk, devices)
    seen = np.zeros(shape, int)
    for share in range(3):  # three processes' contiguous shares partition the steps
        for bj, bk, _window, st in plan.steps((share, 3)):
            for block in plan.step_blocks(bj, bk, st):
                if block is not None:
                    seen[plan.block_region(*block)] += 1
    np.testing.assert_array_equal(seen, 1)
    ids = {plan.block_id(i, j, k) for i in range(plan.nblocks[0])
           for j in range(plan.nblocks[1]) for k in range(plan.nblocks[2])}  # fmt: skip
    assert ids == set(range(plan.nblocks_total))


def test_table_windows_do_not_change_results(rng, monkeypatch):
    t, p, w = _axes(rng, (23, 6, 5))
    ref = grid_module.grid_fields(t, p, w, chunk_size=7)
    monkeypatch.setattr(grid_module, "TABLE_BUDGET", 2)  # windows of 2 theta rows
    plan = grid_module.GridPlan([t, p, w], np.dtype("float64"), 7, grid_module.select_devices(1))
    assert plan.nwindows > 5
    out = grid_module.grid_fields(t, p, w, chunk_size=7)
    for name in grid_module.FIELDS:
        np.testing.assert_array_equal(out[name], ref[name], err_msg=name)


def test_default_chunk_sizes():
    assert grid_module.default_chunk_size("cpu") == grid_module.DEFAULT_CHUNK_SIZE == 1 << 16
    assert grid_module.default_chunk_size("cpu", dtype="float32") == 1 << 17  # same bytes
    assert grid_module.default_chunk_size("cpu", "reduce", "float32") == 1 << 16
    assert grid_module.default_chunk_size("gpu", dtype="float32") == 1 << 24
    for args in (("cpu", "memory"), ("cpu", "zarr"), ("gpu", "memory")):
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            grid_module.default_chunk_size(*args, dtype="int8")
    assert grid_module.default_chunk_size("cpu", "zarr") == 1 << 18
    assert grid_module.default_chunk_size("gpu") == 1 << 24
    assert grid_module.default_chunk_size("gpu", "zarr") == 1 << 20
    with pytest.raises(ValueError, match="output"):
        grid_module.default_chunk_size("cpu", "disk")
    ds = jb.evaluate_grid([0.1], [0.2], [0.3])
    assert ds.attrs["chunk_size"] == grid_module.default_chunk_size()
    ds = jb.evaluate_grid([0.1], [0.2], [0.3], dtype="float32")
    assert ds.attrs["chunk_size"] == grid_module.default_chunk_size(dtype="float32")


def test_log_names_the_devices(caplog):
    with caplog.at_level("INFO", logger="jaxbell"):
        jb.evaluate_grid([0.1, 0.2], [0.2], [0.3])
    assert "1 x cpu" in caplog.text and "2 points" in caplog.text


_SHARDED = """
import json, jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxbell as jb
from jaxbell import grid
assert jax.local_device_count() == 4
rng = np.random.default_rng(11)
axes = [np.sort(rng.uniform(0, 2 * np.pi, n)) for n in (29, 13, 11)]
bad = []
for chunk, counts in ((11, (4,)), (143, (2, 3, 4)), (10**6, (4,))):
    one = grid.grid_fields(*axes, chunk_size=chunk, devices=1)
    for nd in counts:
        other = grid.grid_fields(*axes, chunk_size=chunk, devices=nd)
        bad += [(chunk, nd, k) for k in grid.FIELDS if not np.array_equal(
            one[k], other[k], equal_nan=True)]
ds = jb.evaluate_grid(*axes, chunk_size=50)
np.savez(%r, **{k: ds[k].values for k in grid.FIELDS})
# finished steps' buffers are reused on 4 devices too: MAX_IN_FLIGHT sets of shard pointers
plan = grid.GridPlan(axes, np.dtype("float64"), 11, jax.local_devices())
seen = []
class Recording(grid.ArrayConsumer):
    def compute(self, tab, start, step):
        result = super().compute(tab, start, step)
        seen.append(tuple(sorted(s.data.unsafe_buffer_pointer()
                                 for s in result["chsh"].addressable_shards)))
        return result
grid.run_engine(plan, Recording(plan), progress=False)
# the sharded field kernel is serial too (where the engine is: at most SERIAL_MAX_CPUS CPUs);
# on blocks this large XLA's defaults split all 11 loops (checked with the option removed)
big = grid.GridPlan([np.linspace(0, 6, 64)] * 3, np.dtype("float64"), 1 << 16,
                    jax.local_devices())
with grid.x64_scope(big.dtype):
    text = grid._sharded_expand(big.mesh, big.block[0]).lower(
        big.tables(0, 0, 0), 0, None).compile().as_text()
print(json.dumps({"bad": bad, "devices": ds.attrs["devices"], "count": ds.attrs["device_count"],
                  "steps": len(seen), "pointer_sets": len(set(seen)),
                  "serial_engine": grid.serial_cpu_engine(),
                  "partitioned": text.count("outer_dimension_partitions")}))
"""


def test_sharded_grid_identical_on_1_to_4_devices(rng, tmp_path):
    import json

    from helpers import run_python

    path = tmp_path / "four.npz"
    out = run_python(_SHARDED % str(path), host_devices=4)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["bad"] == [] and res["count"] == 4
    assert res["steps"] > 2 * grid_module.MAX_IN_FLIGHT
    assert res["pointer_sets"] == grid_module.MAX_IN_FLIGHT
    if res["serial_engine"]:
        assert res["partitioned"] == 0
    # and identical to this (single-device) process
    rng = np.random.default_rng(11)
    axes = [np.sort(rng.uniform(0, 2 * PI, n)) for n in (29, 13, 11)]
    here = jb.evaluate_grid(*axes, chunk_size=50)
    with np.load(path) as four:
        for name in grid_module.FIELDS:
            np.testing.assert_array_equal(four[name], here[name].values, err_msg=name)


def test_zarr_output_never_removes_a_folder_silently(tmp_path):
    ds = jb.evaluate_grid([0.1], [0.2], [0.3])
    folder = tmp_path / "foo.zarr"
    (folder / "sub").mkdir(parents=True)
    (folder / "important.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="out=.*never removes such a folder") as info:
        jb.save_dataset(ds, folder)
    assert "overwrite=True" not in str(info.value)  # it would refuse: not offered
    with pytest.raises(ValueError, match="refusing to remove"):
        jb.save_dataset(ds, folder, overwrite=True)
    assert (folder / "important.txt").read_text() == "precious"
    store = jb.save_dataset(ds, tmp_path / "s.zarr")
    with pytest.raises(FileExistsError):
        jb.save_dataset(ds, store)
    assert jb.save_dataset(ds, store, overwrite=True) == store  # a zarr store may be replaced
    nc = jb.save_dataset(ds, tmp_path / "s.nc")
    before = nc.read_bytes()
    with pytest.raises(FileExistsError, match="out=.*exists; pass overwrite=True"):
        jb.save_dataset(ds.isel(theta=slice(0, 0)), nc)  # a netCDF file too, as for zarr
    assert nc.read_bytes() == before
    assert jb.save_dataset(ds, nc, overwrite=True) == nc


def test_unwritable_folders_are_named_before_writing(tmp_path):
    ds = jb.evaluate_grid([0.1], [0.2], [0.3])
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="out=.*'.*afile' is a file, not a folder"):
        jb.save_dataset(ds, afile / "x.nc")
    with pytest.raises(
        ValueError, match="out=.*folder '/proc' exists but a file cannot be created"
    ):
        jb.save_dataset(ds, "/proc/x.nc")


def test_log_counts_read_right_for_one_block(caplog):
    import logging

    # the words themselves: tests/test_cli.py::test_counts_and_ranges_read_right
    with caplog.at_level(logging.INFO, logger="jaxbell"):
        jb.evaluate_grid(np.linspace(0, 1, 2), np.linspace(0, 1, 2), 0.5)
    text = caplog.text
    assert "in 1 block of" in text and "1 blocks" not in text, text


def test_xla_max_isa_caps_the_vector_isa_and_the_options(monkeypatch):
    """``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` makes an AVX-512 CPU report (and compile for) AVX2:
    no 512-bit option; without the flag, or with a cap above AVX2, it stays AVX-512."""
    monkeypatch.setattr(grid_module, "cpu_flags", lambda: frozenset(_AVX512_FLAGS.split()))
    cases = {
        "": ("AVX-512", {"xla_cpu_prefer_vector_width": 512}),
        "--xla_cpu_max_isa=AVX2": ("AVX2", {}),
        "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=avx": ("AVX", {}),
        "--xla_cpu_max_isa=SSE4_2": ("SSE4.2", {}),
        "--xla_cpu_max_isa=AVX512": ("AVX-512", {"xla_cpu_prefer_vector_width": 512}),
        "--xla_cpu_max_isa='AVX2'": ("AVX2", {}),  # XLA accepts a quoted value
        "--xla_cpu_max_isa=AVX --xla_cpu_max_isa=AVX2": ("AVX2", {}),  # the last one counts
    }
    for flags, (isa, options) in cases.items():
        monkeypatch.setenv("XLA_FLAGS", flags)
        assert grid_module.cpu_vector_isa() == isa, flags
        assert grid_module.cpu_compiler_options() == options, flags
        # explicit flags describe another CPU: this process's cap does not apply to them
        assert grid_module.cpu_vector_isa(frozenset(_AVX512_FLAGS.split())) == "AVX-512"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert grid_module.cpu_vector_isa(frozenset(_OLD_FLAGS.split())) == "SSE4.2"


def _partitioned_loops(compiled_text: str) -> int:
    return compiled_text.count("outer_dimension_partitions")


def test_field_kernels_are_serial_on_a_cpu_and_reductions_are_not(monkeypatch):
    """The field kernels are compiled without XLA's intra-op loop partitioning (the engine's
    thread copies meanwhile); the same kernel compiled with XLA's defaults is partitioned on a
    machine with 2+ CPUs, so the check can fail. An XLA that refused the option would get the
    other options only."""
    import os

    n = 64
    axes = (np.linspace(0, 6, n), np.linspace(-3, 3, n), np.linspace(0, 6, n))
    plan = grid_module.GridPlan(axes, np.dtype(np.float64), 1 << 16, jax.devices("cpu")[:1])
    with grid_module.x64_scope(plan.dtype):
        tab = plan.tables(0, 0, 0)
        serial = grid_module._row_kernel("cpu").lower(tab, 0, plan.block[0], None).compile()
        default = jax.jit(
            grid_module._expand_into, static_argnames="size", compiler_options=None
        ).lower(tab, 0, plan.block[0], None)
        default = default.compile()
    assert _partitioned_loops(serial.as_text()) == 0
    if len(os.sched_getaffinity(0)) >= 2:
        assert _partitioned_loops(default.as_text()) > 0
    options = grid_module._compiler_options
    assert options("cpu", serial=True)["xla_disable_hlo_passes"] == "cpu-parallel-task-assigner"
    assert "xla_disable_hlo_passes" not in (options("cpu") or {})  # reductions keep XLA's
    monkeypatch.setattr(grid_module, "cpu_flags", lambda: frozenset(_AVX2_FLAGS.split()))
    monkeypatch.setattr(grid_module, "SERIAL_KERNEL_OPTIONS", {"xla_cpu_no_such_option": 1})
    options.cache_clear()
    try:
        assert options("cpu", serial=True) is None  # refused: XLA's defaults
    finally:
        monkeypatch.undo()
        options.cache_clear()


@pytest.mark.parametrize("inline", [True, False])
def test_in_memory_copies_run_on_the_engine_thread_on_a_cpu(rng, inline):
    """On a CPU the in-memory output is copied by the engine's own thread (``inline``); with
    copy threads instead the result is the same, bit for bit, and the copies run elsewhere."""
    import threading

    t, p, w = _axes(rng, (9, 6, 5))
    axes, dt, chunk, devs = grid_module._prepare(t, p, w, "float64", 30, 1, "memory")
    plan = grid_module.GridPlan(axes, dt, chunk, devs)
    threads = set()

    class Recording(grid_module.ArrayConsumer):
        def consume_block(self, block, region, arrays):
            threads.add(threading.get_ident())
            super().consume_block(block, region, arrays)

    Recording.inline = inline
    consumer = Recording(plan)
    grid_module.run_engine(plan, consumer, progress=False)
    assert plan.nsteps >= 3
    if inline:
        assert threads == {threading.get_ident()}
    else:
        assert threading.get_ident() not in threads
    ref = grid_module.grid_fields(t, p, w, chunk_size=1000, progress=False)
    for name in grid_module.FIELDS:
        np.testing.assert_array_equal(consumer.out[name], ref[name], err_msg=name)


def test_many_core_cpus_keep_split_kernels_and_copy_threads(monkeypatch, rng):
    """Above SERIAL_MAX_CPUS usable CPUs (not measured) the field kernels keep XLA's split loops
    and the in-memory copy its threads; off the CPU the copy is never inline. Same bits."""
    import threading

    t, p, w = _axes(rng, (9, 6, 5))
    ref = grid_module.grid_fields(t, p, w, chunk_size=30, progress=False)
    options = grid_module._compiler_options
    monkeypatch.setattr(grid_module, "usable_cpus", lambda: grid_module.SERIAL_MAX_CPUS + 1)
    for cache in (options, grid_module._row_kernel):
        cache.cache_clear()
    threads = set()

    class Recording(grid_module.ArrayConsumer):
        def consume_block(self, block, region, arrays):
            threads.add(threading.get_ident())
            super().consume_block(block, region, arrays)

    try:
        assert not grid_module.serial_cpu_engine()
        assert "xla_disable_hlo_passes" not in (options("cpu", serial=True) or {})
        axes, dt, chunk, devs = grid_module._prepare(t, p, w, "float64", 30, 1, "memory")
        plan = grid_module.GridPlan(axes, dt, chunk, devs)
        consumer = Recording(plan)
        assert not consumer.runs_inline()
        grid_module.run_engine(plan, consumer, progress=False)
        assert threads and threading.get_ident() not in threads
        for name in grid_module.FIELDS:
            np.testing.assert_array_equal(consumer.out[name], ref[name], err_msg=name)
    finally:
        monkeypatch.undo()
        for cache in (options, grid_module._row_kernel):
            cache.cache_clear()
    assert grid_module.serial_cpu_engine() == (grid_module.usable_cpus() <= 4)

    class FakeDevice:
        platform = "gpu"

    class FakePlan:
        devices = (FakeDevice(),)

    fake = object.__new__(grid_module.ArrayConsumer)  # without ArrayConsumer's output arrays
    grid_module.Consumer.__init__(fake, FakePlan())
    assert grid_module.ArrayConsumer.inline and not fake.runs_inline()
