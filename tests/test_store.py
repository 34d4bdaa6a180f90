"""Out-of-core grids in zarr: equal to the in-memory grid, resumable after kill / Ctrl-C / a full
disk, never mixing settings, lazily opened, memory bounded."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

import jaxbell as jb
from jaxbell import grid as grid_module
from jaxbell import store as store_module
from jaxbell.grid import write_grid
from jaxbell.store import StoreWriteError, store_progress

pytest.importorskip("zarr")
pytest.importorskip("dask")

PI = np.pi
#: attributes that record when and how long, not what
VOLATILE = ("history", "elapsed_seconds", "output")


def _axes(seed=5, n=(13, 7, 6)):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(0, 2 * PI, k)) for k in n]


def _strip(ds):
    ds = ds.copy()
    for key in VOLATILE:
        ds.attrs.pop(key, None)
    return ds


def _assert_same_grid(a, b):
    xr.testing.assert_identical(_strip(a.load()), _strip(b.load()))
    assert "history" in a.attrs and "history" in b.attrs


def test_store_equals_evaluate_grid_and_opens_lazily(tmp_path):
    axes = _axes()
    ds = write_grid(*axes, tmp_path / "g.zarr", chunk_size=10, progress=False)
    import dask.array as da

    assert isinstance(ds.max_chsh.data, da.Array)  # lazy, one dask chunk per block
    assert ds.chunksizes["omega"][0] == 6 and ds.chunksizes["phi"][0] == 1
    ref = jb.evaluate_grid(*axes, chunk_size=10)
    _assert_same_grid(ds, ref)
    assert store_progress(tmp_path / "g.zarr") == (13 * 7, 13 * 7)
    again = jb.open_dataset(tmp_path / "g.zarr")
    assert "finished" in again.attrs["history"]


def test_float32_store(tmp_path):
    axes = _axes(n=(5, 4, 3))
    ds = write_grid(*axes, tmp_path / "g.zarr", dtype="float32", chunk_size=7, compressor="none")
    ref = jb.evaluate_grid(*axes, dtype="float32", chunk_size=7)
    _assert_same_grid(ds, ref)


def test_shares_of_processes_fill_one_store(tmp_path):
    """process=(i, n) shares: each leaves the store incomplete; together they complete it."""
    axes = _axes()
    path = tmp_path / "g.zarr"
    part = write_grid(*axes, path, chunk_size=10, process=(0, 2), progress=False)
    done, total = store_progress(path)
    assert 0 < done < total
    with pytest.raises(ValueError, match=rf"unfinished grid store \({done} of {total} blocks"):
        jb.open_dataset(path)
    # unfinished blocks read as fill values: NaN, False, status -1 ("not computed")
    status = part.status.values
    assert (status == -1).any() and (status >= 0).any()
    assert np.isnan(part.local_bound.values[status == -1]).all()
    assert not part.self_testing.values[status == -1].any()
    ref = jb.evaluate_grid(*axes, chunk_size=10)
    finished = status >= 0
    np.testing.assert_array_equal(part.max_chsh.values[finished], ref.max_chsh.values[finished])
    full = write_grid(*axes, path, process=(1, 2), progress=False)
    _assert_same_grid(full, ref)


_CHILD = """
import signal, sys, time, jax, numpy as np
# a shell that started us in the background (e.g. CI) may have set SIGINT to "ignore", which
# Python keeps; Ctrl-C in a terminal raises KeyboardInterrupt, so simulate that
signal.signal(signal.SIGINT, signal.default_int_handler)
jax.config.update("jax_enable_x64", True)
from jaxbell import store
original = store.GridStore.write_block

def slow(self, block_id, region, arrays, info=None):
    # write half the fields, pause, then everything and the record: kills land mid-block
    targets = self._open_arrays()
    for name in list(arrays)[:5]:
        targets[name][region] = arrays[name]
    time.sleep(0.03)
    return original(self, block_id, region, arrays, info)

store.GridStore.write_block = slow
rng = np.random.default_rng(5)
axes = [np.sort(rng.uniform(0, 2 * np.pi, k)) for k in (24, 10, 8)]
if sys.argv[1] == "api":
    from jaxbell.grid import write_grid
    write_grid(*axes, sys.argv[2], chunk_size=16, progress=False)
else:
    from jaxbell.cli import main
    sys.exit(main(["grid", "--theta", "0:2pi:24", "--phi", "0:pi:10", "--omega", "1:2:8",
                   "--out", sys.argv[2], "--chunk-size", "16", "--no-progress"]))
"""


def _start_child(mode, path):
    env = dict(os.environ) | {"JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_blocks(proc, path, n, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        progress = store_progress(path)
        if progress is not None and progress[0] >= n:
            return progress
        if proc.poll() is not None:
            raise AssertionError(f"child ended early:\n{proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError("no progress")


def _corrupt_unfinished_block(path):
    """Fill an unfinished block's chunks with garbage, as a block written halfway would be."""
    import zarr

    record = store_module.read_record(path)
    nbt, nbp, nbo = record["nblocks"]
    bt, bp, bo = record["block_shape"]
    done = store_module.GridStore(path, record).done_ids()
    todo = next(b for b in range(nbt * nbp * nbo) if b not in done)
    bi, bj, bk = todo // (nbp * nbo), (todo // nbo) % nbp, todo % nbo
    group = zarr.open_group(str(path), mode="r+")
    region = (
        slice(bi * bt, (bi + 1) * bt),
        slice(bj * bp, (bj + 1) * bp),
        slice(bk * bo, (bk + 1) * bo),
    )
    group["max_chsh"][region] = 99.0
    group["status"][region] = 0
    return todo


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    path = tmp_path / "killed.zarr"
    proc = _start_child("api", path)
    done, total = _wait_for_blocks(proc, path, 8)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    done, total = store_progress(path)
    assert 8 <= done < total, "the child finished before it could be killed"
    _corrupt_unfinished_block(path)
    rng = np.random.default_rng(5)  # the child's axes
    axes = [np.sort(rng.uniform(0, 2 * PI, k)) for k in (24, 10, 8)]
    resumed = write_grid(*axes, path, progress=False)  # settings come from the store
    assert f"{done} of {total} blocks" in resumed.attrs["history"]
    fresh = write_grid(*axes, tmp_path / "fresh.zarr", chunk_size=16, progress=False)
    _assert_same_grid(resumed, fresh)


def test_ctrl_c_then_the_same_command_resumes(tmp_path, capsys):
    path = tmp_path / "int.zarr"
    proc = _start_child("cli", path)
    _wait_for_blocks(proc, path, 6)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command" in err
    done, total = store_progress(path)
    assert done < total
    from jaxbell.cli import main

    argv = ["grid", "--theta", "0:2pi:24", "--phi", "0:pi:10", "--omega", "1:2:8"]
    assert main([*argv, "--out", str(path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {path}: {done} of {total} blocks" in captured.err
    ref = tmp_path / "ref.zarr"
    assert main([*argv, "--out", str(ref), "--chunk-size", "16", "--no-progress"]) == 0
    _assert_same_grid(jb.open_dataset(path), jb.open_dataset(ref))


def _failing_writes(monkeypatch, fail_at, action):
    """Run ``action`` at the ``fail_at``-th write of a field chunk (within the store's own write
    path, in the middle of a block: 11 fields per block)."""
    original = store_module.GridStore._open_arrays
    calls = []

    class Proxy:
        def __init__(self, array, store):
            self.array, self.store = array, store

        def __setitem__(self, key, value):
            calls.append(1)
            if len(calls) == fail_at:
                action(self.store)
            self.array[key] = value

    def open_arrays(self):
        return {k: Proxy(v, self) for k, v in original(self).items()}

    monkeypatch.setattr(store_module.GridStore, "_open_arrays", open_arrays)


def test_full_disk_is_a_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    axes = _axes()
    path = tmp_path / "full.zarr"

    def disk_full(store):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        _failing_writes(m, 6 * 11 + 4, disk_full)  # block 7, 5th field
        with pytest.raises(StoreWriteError, match="No space left") as info:
            write_grid(*axes, path, chunk_size=10, progress=False)
    msg = str(info.value)
    assert "finished and recorded" in msg and "resume" in msg and info.value.errno == errno.ENOSPC
    done, total = store_progress(path)
    assert 5 <= done < total
    ref = jb.evaluate_grid(*axes, chunk_size=10)
    part = jb.open_dataset(path, allow_incomplete=True)
    finished = part.status.values >= 0
    np.testing.assert_array_equal(part.epsilon.values[finished], ref.epsilon.values[finished])
    _assert_same_grid(write_grid(*axes, path, progress=False), ref)


def test_removed_store_mid_run_is_a_clear_error(tmp_path, monkeypatch):
    import shutil

    axes = _axes()
    path = tmp_path / "gone.zarr"
    _failing_writes(
        monkeypatch, 3 * 11 + 2, lambda store: shutil.rmtree(store.path, ignore_errors=True)
    )
    with pytest.raises(StoreWriteError, match="removed or moved") as info:
        write_grid(*axes, path, chunk_size=10, progress=False)
    msg = str(info.value)  # never the claim that finished blocks survive
    assert "will not be lost" not in msg and "no finished block survives" in msg
    assert "from scratch" in msg


def test_other_settings_are_an_error_unless_overwrite(tmp_path):
    axes = _axes(n=(5, 4, 3))
    path = tmp_path / "g.zarr"
    write_grid(*axes, path, chunk_size=7)
    tweaked = axes[1].copy()
    tweaked[1] += 1e-9
    for kwargs, match in [
        ({"dtype": "float32"}, "dtype: stored 'float64', asked 'float32'"),
        ({"chunk_size": 8}, "chunk_size: stored 7, asked 8"),
        ({"compressor": "none"}, "compressor"),
        ({"phi": tweaked}, "phi axis.*same ends and size, different values"),
        ({"omega": axes[2][:2]}, "omega axis: stored 3 points"),
    ]:
        args = {"theta": axes[0], "phi": axes[1], "omega": axes[2]}
        args |= {k: v for k, v in kwargs.items() if k in args}
        options = {k: v for k, v in kwargs.items() if k not in args}
        with pytest.raises(ValueError, match=match) as info:
            write_grid(args["theta"], args["phi"], args["omega"], path, **options)
        assert "overwrite" in str(info.value)
    # the settings of a resumed store are the stored ones unless given
    assert write_grid(*axes, path).attrs["chunk_size"] == 7
    ds = write_grid(*axes, path, dtype="float32", chunk_size=8, overwrite=True)
    assert ds.local_bound.dtype == np.float32 and ds.attrs["chunk_size"] == 8
    _assert_same_grid(ds, jb.evaluate_grid(*axes, dtype="float32", chunk_size=8))


def test_paths_that_are_not_jaxbell_stores(tmp_path):
    axes = _axes(n=(3, 2, 2))
    plain = jb.save_dataset(jb.evaluate_grid(*axes), tmp_path / "plain.zarr")
    with pytest.raises(ValueError, match="not a jaxbell grid store"):
        write_grid(*axes, plain)
    folder = tmp_path / "folder.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="folder of other files, not a zarr store"):
        write_grid(*axes, folder)
    with pytest.raises(ValueError, match="refusing to remove"):
        write_grid(*axes, folder, overwrite=True)
    assert (folder / "notes.txt").exists()
    # a plain zarr store may be replaced explicitly
    write_grid(*axes, plain, overwrite=True)
    done, total = store_progress(plain)
    assert done == total >= 1


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"path": "g.nc"}, ValueError, r"end the name in \.zarr"),
        ({"path": "missing/g.zarr"}, ValueError, "does not exist"),
        ({"path": 3}, TypeError, "file name"),
        ({"overwrite": "yes"}, TypeError, "overwrite"),
        ({"compressor": "lz4"}, ValueError, "compressor"),
        ({"process": (2, 2)}, ValueError, "process"),
        ({"process": "0/2"}, TypeError, "process"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"process": (0, 2), "overwrite": True}, ValueError, "multi-process"),
    ],
)
def test_bad_input_gives_clear_errors(tmp_path, kwargs, exc, match):
    args = {"path": tmp_path / "g.zarr"} | kwargs
    if isinstance(args["path"], str):
        args["path"] = str(tmp_path / args["path"])
    path = args.pop("path")
    with pytest.raises(exc, match=match):
        write_grid([0.1, 0.2], [0.3], [0.4], path, **args)


_PEAK = """
import json, resource, sys, jax, numpy as np
jax.config.update("jax_enable_x64", True)
n, what, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
axes = [np.linspace(0, 2 * np.pi, n)] * 3
if what == "zarr":
    from jaxbell.grid import write_grid
    write_grid(*axes, path, progress=False)
else:
    from jaxbell.reductions import reduce_grid
    reduce_grid(*axes, progress=False)
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("what", ["zarr", "reduce"])
def test_peak_memory_stays_bounded_as_the_grid_grows(tmp_path, what):
    peaks = {}
    for n in (160, 256):  # 4.1 M and 16.8 M points: 414 MiB and 1696 MiB of float64 fields
        out = subprocess.run(
            [sys.executable, "-c", _PEAK, str(n), what, str(tmp_path / f"g{n}.zarr")],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ) | {"JAX_PLATFORMS": "cpu"},
        )
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
    fields_mib = 256**3 * grid_module.bytes_per_point("float64") / 2**20
    assert peaks[256] < min(2048, 0.5 * fields_mib), (peaks, fields_mib)
    # blocks are full-sized at both sizes: memory must not grow with the grid
    assert peaks[256] - peaks[160] < 0.1 * fields_mib, (peaks, fields_mib)


def _open_strictly(path):
    """xarray's own opener, as a user calls it, with every warning an error."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xr.open_dataset(path, engine="zarr").load()


def test_finished_store_is_consolidated_and_xarray_opens_it_without_warnings(tmp_path):
    from jaxbell.store import is_consolidated

    axes = _axes(n=(5, 4, 3))
    path = tmp_path / "g.zarr"
    write_grid(*axes, path, chunk_size=4, process=(0, 2), progress=False)
    assert not is_consolidated(path)  # unfinished: a resume may still change the metadata
    write_grid(*axes, path, process=(1, 2), progress=False)  # resumed to the end
    assert is_consolidated(path)
    ref = jb.evaluate_grid(*axes, chunk_size=4)
    plain = _open_strictly(path)
    _assert_same_grid(plain, ref)
    assert "finished" in plain.attrs["history"]  # the attributes are the final ones
    # an already finished store: nothing computed, still consolidated, same data
    write_grid(*axes, path, progress=False)
    _assert_same_grid(_open_strictly(path), ref)
    _assert_same_grid(jb.open_dataset(path), ref)


def test_saved_zarr_is_consolidated_and_strings_round_trip(tmp_path):
    """save_dataset: no UnstableSpecificationWarning (no fixed-length UTF-32 in zarr v3), no
    warning when xarray opens it, and strings read back as they were written (also .nc)."""
    ds = xr.Dataset(
        {
            "value": (("row", "kind"), np.arange(8.0).reshape(4, 2)),
            "node_status": (("kind",), np.array(["optimal", "optimal_inaccurate"])),
        },
        coords={
            "row": np.array(["00", "01", "10", "11"]),
            "kind": np.array(["key", "global"]),
            "rate_method": "qubit",
        },
        attrs={"title": "strings"},
    )
    path = jb.save_dataset(ds, tmp_path / "s.zarr")  # pytest turns warnings into errors
    plain = _open_strictly(path)
    assert plain.node_status.values.tolist() == ds.node_status.values.tolist()
    nc = jb.save_dataset(ds, tmp_path / "s.nc")
    for back in (jb.open_dataset(path).load(), jb.open_dataset(nc).load()):
        xr.testing.assert_identical(back, ds)
        for name, var in ds.variables.items():
            assert back[name].dtype == var.dtype, name
    assert back.sel(kind="global", row="10").value == 5.0


def test_a_one_point_axis_is_described_once(tmp_path):
    path = tmp_path / "g.zarr"
    write_grid([0.1, 0.2], [0.3], [0.4], path, progress=False)
    with pytest.raises(ValueError, match="phi axis: stored 1 point at 0.2999") as info:
        write_grid([0.1, 0.2], [0.35], [0.4], path, progress=False)
    assert "asked 1 point at 0.3499" in str(info.value) and "points from" not in str(info.value)
