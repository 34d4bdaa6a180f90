"""Batches split over devices: identical to one device and to plain vmap; padding; errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import run_python

import jaxbell as jb
from jaxbell.sharding import batch_over_devices, describe_devices, select_devices

PI = np.pi


def _point(t, p, w, scale):
    """A one-point computation with a loop, like the searches: a few gradient steps on phi."""
    e = jb.strategy_correlators(t, p, w)

    def step(q, _):
        g = jax.grad(lambda q: jb.max_chsh_value(jb.strategy_correlators(t, q, w)))(q)
        return q + scale * g, None

    q, _ = jax.lax.scan(step, p, None, length=5)
    return {"max_chsh": jb.max_chsh_value(e), "phi": q}


def test_matches_plain_vmap_with_padding_and_shared_args(rng):
    t, p, w = (rng.uniform(0, 2 * PI, 7) for _ in range(3))
    fn = batch_over_devices(_point, in_axes=(0, 0, 0, None))
    out = fn(t, p, w, 0.1)
    ref = jax.jit(jax.vmap(_point, in_axes=(0, 0, 0, None)))(t, p, w, 0.1)
    for key in ref:
        assert out[key].shape == (7,)
        np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(ref[key]))
    # an independent check of the first output: the brute-force CHSH of the correlators
    e = np.array([[np.sin(p), np.sin(w)], [np.sin(t + p), np.sin(t + w)]])
    total = e.sum(axis=(0, 1))
    brute = np.max(np.abs([total - 2 * e[i, j] for i in (0, 1) for j in (0, 1)]), axis=0)
    np.testing.assert_allclose(np.asarray(out["max_chsh"]), brute, rtol=1e-14)


def test_tsirelson_example_and_no_recompilation():
    calls = []

    def f(t, p, w):
        calls.append(1)  # traced once per compilation
        return jb.max_chsh_value(jb.strategy_correlators(t, p, w))

    fn = batch_over_devices(f)
    t, p, w = np.full(3, PI / 2), np.full(3, PI / 4), np.full(3, 3 * PI / 4)
    np.testing.assert_allclose(np.asarray(fn(t, p, w)), 2 * np.sqrt(2), rtol=1e-15)
    fn(t + 0.1, p, w)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        ((np.zeros(3), np.zeros(4), np.zeros(3)), {}, ValueError, "different leading lengths"),
        ((np.zeros(0), np.zeros(0), np.zeros(0)), {}, ValueError, "empty"),
        ((0.0, np.zeros(2), np.zeros(2)), {}, ValueError, "leading batch axis"),
        ((np.zeros(2), np.zeros(2)), {"in_axes": (0, 1)}, ValueError, "in_axes entries"),
        ((np.zeros(2), np.zeros(2), np.zeros(2)), {"in_axes": (0, 0)}, ValueError, "in_axes has"),
    ],
)
def test_bad_batches_raise_clear_errors(args, kwargs, exc, match):
    fn = batch_over_devices(lambda *a: sum(a), **kwargs)
    with pytest.raises(exc, match=match):
        fn(*args)


@pytest.mark.parametrize(
    ("devices", "exc", "match"),
    [
        (0, ValueError, "from 1 to"),
        (99, ValueError, "from 1 to"),
        ([], ValueError, "empty"),
        (["cpu"], TypeError, "jax.Device"),
        (True, TypeError, "devices must be"),
        (2.5, TypeError, "devices must be"),
    ],
)
def test_select_devices_errors(devices, exc, match):
    with pytest.raises(exc, match=match):
        select_devices(devices)


def test_select_devices_defaults():
    assert select_devices() == tuple(jax.local_devices())
    assert select_devices(1) == tuple(jax.local_devices()[:1])
    assert select_devices(jax.local_devices()[0]) == (jax.local_devices()[0],)
    assert describe_devices(jax.local_devices()).startswith(f"{jax.local_device_count()} x ")


_FOUR_DEVICES = """
import functools, json, jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxbell as jb
from jaxbell.sharding import batch_over_devices
assert jax.local_device_count() == 4, jax.devices()
rng = np.random.default_rng(7)
t, p, w = (rng.uniform(0, 2 * np.pi, 10) for _ in range(3))  # 10: padded to 12 on 4 devices
f = lambda t, p, w: jb.epsilon_at_quantum_bound(t, p, w) + jb.max_chsh_value(
    jb.strategy_correlators(t, p, w))
one = np.asarray(batch_over_devices(f, devices=1)(t, p, w))
out4 = batch_over_devices(f)(t, p, w)
four = np.asarray(out4)
plain = np.asarray(jax.jit(jax.vmap(f))(t, p, w))
print(json.dumps({"one": one.tolist(), "four": four.tolist(), "plain": plain.tolist(),
                  "ndev": len(out4.sharding.device_set)}))
"""


def test_four_forced_host_devices_give_identical_results():
    out = run_python(_FOUR_DEVICES, host_devices=4)
    import json

    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ndev"] == 4
    one, four, plain = (np.array(res[k]) for k in ("one", "four", "plain"))
    np.testing.assert_array_equal(four, one)
    np.testing.assert_array_equal(four, plain)
    assert np.isnan(four).any() and np.isfinite(four).any()  # both kinds of points occur


def test_functools_partial_closes_over_settings():
    fn = batch_over_devices(functools.partial(_point, scale=0.0))
    t = jnp.linspace(0.1, 1.0, 3)
    out = fn(t, t, t)
    np.testing.assert_array_equal(np.asarray(out["phi"]), np.asarray(t))


_DISTRIBUTED = """
import json, sys, jax, numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, port, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
from jaxbell.grid import write_grid
from jaxbell.reductions import reduce_grid
rng = np.random.default_rng(3)
axes = [np.sort(rng.uniform(0, 2 * np.pi, n)) for n in (14, 9, 8)]
red = reduce_grid(*axes, epsilon_bounds=[0.5, 1e-2], chunk_size=20)
write_grid(*axes, path, chunk_size=20)
from jax.experimental import multihost_utils
multihost_utils.sync_global_devices("written")
print(json.dumps({k: np.asarray(red[k].values).tolist() for k in red.data_vars}))
jax.distributed.shutdown()
"""


@pytest.mark.slow
def test_two_processes_with_jax_distributed(tmp_path):
    """Two processes (jax.distributed, CPU collectives): one store written in shares, and a
    reduction gathered so that each process returns the whole grid's."""
    import json
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = str(sock.getsockname()[1])
    path = tmp_path / "shared.zarr"
    env = dict(os.environ) | {"JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DISTRIBUTED, str(pid), port, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    from jaxbell.reductions import reduce_grid

    rng = np.random.default_rng(3)
    axes = [np.sort(rng.uniform(0, 2 * PI, n)) for n in (14, 9, 8)]
    single = reduce_grid(*axes, epsilon_bounds=[0.5, 1e-2], chunk_size=20)
    expected = {k: np.asarray(single[k].values).tolist() for k in single.data_vars}
    assert results[0] == expected and results[1] == expected
    ds = jb.open_dataset(path)  # complete: both shares written
    ref = jb.evaluate_grid(*axes, chunk_size=20)
    for name in ("max_chsh", "epsilon", "status", "correlators"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)


_PRESHARDED = """
import json, jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from jaxbell.sharding import shard_batch
assert jax.local_device_count() == 4

def newton(c, tol):  # a while_loop that stops at different iterations for each element
    def body(s):
        x, k = s
        return x - (x * x - c) / (2 * x), k + 1
    return jax.lax.while_loop(lambda s: (jnp.abs(s[0] ** 2 - c) > tol) & (s[1] < 100), body,
                              (c, 0))

solver = jax.jit(jax.vmap(newton, in_axes=(0, None)))
c = np.linspace(0.5, 900.0, 10)
(placed,), n = shard_batch((c,))
out = solver(placed, jnp.asarray(1e-12))
x, k = (np.asarray(v)[:n] for v in out)
x1, k1 = (np.asarray(v) for v in solver(c, 1e-12))
print(json.dumps({"same": bool((x == x1).all() and (k == k1).all()), "n": n,
                  "ndev": len(out[0].sharding.device_set), "iters": k.tolist(),
                  "x": x.tolist()}))
"""


def test_shard_batch_runs_a_jitted_vmapped_loop_on_four_devices():
    import json

    out = run_python(_PRESHARDED, host_devices=4)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["same"] and res["n"] == 10 and res["ndev"] == 4
    assert len(set(res["iters"])) > 1  # the elements stop at different iterations
    np.testing.assert_allclose(res["x"], np.sqrt(np.linspace(0.5, 900.0, 10)), rtol=1e-14)
    with pytest.raises(ValueError, match="same leading batch length"):
        from jaxbell.sharding import shard_batch

        shard_batch((np.zeros(3), np.zeros(4)))


# --- fixed blocks per device: map_blocks, the searches and the qubit solver -----------------


def test_map_blocks_pads_keeps_order_and_checks_its_input():
    from jaxbell.sharding import map_blocks

    calls = []

    @jax.jit
    def fn(x, pair, scale):
        calls.append(x.shape)  # traced once per block shape
        return {"y": x * scale + pair[0], "z": jnp.sum(pair[1], axis=-1)}

    x = np.arange(11.0)
    pair = (np.arange(11.0) ** 2, np.arange(33.0).reshape(11, 3))
    out = map_blocks(fn, (x, pair), (2.0,), block=4)
    np.testing.assert_array_equal(out["y"], 2 * x + x**2)  # NumPy, in order, padding dropped
    np.testing.assert_array_equal(out["z"], pair[1].sum(axis=1))
    assert len(calls) == 1 and calls[0] == (4 * jax.local_device_count(),)
    for bad, match in [
        (dict(block=0), "block"),
        (dict(block=2.5), "block"),
    ]:
        with pytest.raises(ValueError, match=match):
            map_blocks(fn, (x, pair), (2.0,), **bad)
    with pytest.raises(ValueError, match="same leading length"):
        map_blocks(fn, (x[:3], pair), (2.0,), block=4)
    with pytest.raises(ValueError, match="empty"):
        map_blocks(fn, (x[:0], (x[:0], pair[1][:0])), (2.0,), block=4)


#: settings small enough for a test, large enough that the problems span several blocks
_SEARCH = dict(perfect_randomness=True, fixed={"omega": np.pi}, restarts=20, steps=20)
_FIND = dict(perfect_randomness=True, restarts=300, steps=20)
_QUBIT = {"directions": 16, "starts": 40, "steps": 60, "refine": 1}
_PROP3 = (PI / 3, PI / 2 - 0.1, 5 * PI / 6)

_SEARCH_AND_RATES = """
import json, jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxbell as jb
from jaxbell import qubit, search
assert jax.local_device_count() == 4, jax.devices()
calls = []  # devices that each call of a solver ran on

def spy(fn):
    def wrapped(*args, **kwargs):
        calls.append((fn.__name__, len(jax.tree.leaves(args[0])[0].sharding.device_set)))
        return fn(*args, **kwargs)
    return wrapped

search._solve_max, search._solve_find = spy(search._solve_max), spy(search._solve_find)
qubit._solve_batch = spy(qubit._solve_batch)
fields = ("theta", "phi", "omega", "max_chsh", "key_rate", "epsilon", "global_rate",
          "self_testing_margin", "supremum", "restarts_at_best", "converged")
out = {}
for d in (1, 4):
    r = jb.max_chsh(devices=d, **S)
    f = jb.find_tuple(2.4, devices=d, **F)
    qubit.clear_cache()
    env = qubit.qubit_envelope(*T, options=Q, devices=d)
    out[d] = {"devices": list(r.devices) + ["|"] + list(f.devices),
              "max_chsh": [getattr(r, k) for k in fields],
              "find_tuple": [getattr(f, k) for k in fields],
              "envelope": [env.vertex_bell_value.tolist(), env.vertex_entropy.tolist(),
                           env.vertex_params.tolist(), env.tangent_intercept.tolist()]}
qubit.clear_cache()
curve = jb.rate_curve(*T, num=7, options=Q)  # all (4) devices
out["curve"] = {k: curve[k].values.tolist() for k in ("entropy", "slope", "intercept", "gap")}
out["calls"] = calls
print(json.dumps(out))
"""


def test_searches_and_rates_identical_on_one_and_four_devices():
    """max_chsh (constrained), find_tuple, the qubit envelope and rate_curve on 4 forced host
    devices equal, bit for bit, the same computations on 1 device (in the child: devices=1; and
    rate_curve here, in a process with one device)."""
    import collections
    import json

    settings = f"S, F, Q, T = {_SEARCH!r}, {_FIND!r}, {_QUBIT!r}, {_PROP3!r}\n"
    proc = run_python(settings + _SEARCH_AND_RATES, host_devices=4)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    one, four = res["1"], res["4"]
    assert one["devices"] == ["cpu:0", "|", "cpu:0"]
    every = [f"cpu:{i}" for i in range(4)]
    assert four["devices"] == every + ["|"] + every
    for key in ("max_chsh", "find_tuple", "envelope"):
        assert one[key] == four[key], key
    # every solver ran split over 4 devices when asked, and on one when asked
    counts = collections.Counter(map(tuple, res["calls"]))  # (solver, devices): calls
    assert {s for s, _ in counts} == {"_solve_max", "_solve_find", "_solve_batch"}
    for solver in ("_solve_max", "_solve_find", "_solve_batch"):
        assert 0 < counts[solver, 4] < counts[solver, 1], counts  # several blocks per call
    # independent checks of what was computed: Prop. 2's plane maximum is 3 sqrt(3)/2 at
    # omega = pi, the level set is hit, the key entropy at eta^Q is 1 bit
    assert abs(one["max_chsh"][3] - 3 * np.sqrt(3) / 2) < 1e-9
    assert abs(one["find_tuple"][3] - 2.4) < 1e-9
    assert one["envelope"][1][-1] == pytest.approx(1.0, abs=1e-12)
    # rate_curve in this process (one device) against the child's, on four
    from jaxbell import qubit

    assert jax.local_device_count() == 1
    qubit.clear_cache()
    curve = jb.rate_curve(*_PROP3, num=7, options=_QUBIT)
    for name, values in res["curve"].items():
        np.testing.assert_array_equal(curve[name].values, np.array(values), err_msg=name)


def test_searches_and_rates_check_devices_before_any_work():
    from jaxbell import qubit

    calls = [
        lambda d: jb.max_chsh(devices=d),
        lambda d: jb.find_tuple(2.5, devices=d),
        lambda d: jb.tradeoff_curve([0.1], devices=d),
        lambda d: qubit.qubit_envelope(*_PROP3, devices=d),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="devices=99"):
            call(99)
        with pytest.raises(TypeError, match="devices must"):
            call("gpu")
