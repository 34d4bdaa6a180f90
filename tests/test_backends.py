"""The backend interface is the only door: a toy backend registered here gets rate curves,
thresholds, finite-size key and a command-line choice without any change to front, finite,
design or dataset code; Protocol/Device values give the keywords' bits."""

import jax
import numpy as np
import pytest
import xarray as xr

import jaxbell as jb
from jaxbell.cli import main
from jaxbell.rates import backends
from jaxbell.rates.backends import Backend, Entropies

PI = np.pi
CHSH = (PI / 2, PI / 4, 3 * PI / 4)
LOOSE = {"directions": 16, "starts": 4, "steps": 200, "refine": 0, "tol": 1.0}


class Toy(Backend):
    """H = s^2 with s = (|<B>| - eta^L) / (|eta^Q| - eta^L) clipped to [0, 1] (convex in
    |<B>|, so its tangents lie below it): a made-up certified bound, cheap and exact."""

    name, bound, certificate = "toy", "lower", True
    summary = "a toy certified bound (tests)"

    def _scaled(self, batch):
        lo = np.asarray(jb.local_bound(batch.theta, batch.phi, batch.omega))
        hi = np.abs(np.asarray(jb.quantum_bound(batch.theta, batch.phi, batch.omega)))
        s = np.clip((np.abs(batch.bell_value) - lo) / (hi - lo), 0.0, 1.0)
        return s, 1.0 / (hi - lo)

    def entropy(self, batch, protocol, options):
        s, _ = self._scaled(batch)
        return Entropies(s**2, np.zeros(s.shape, dtype=np.int8))

    def tangents(self, batch, protocol, options):
        s, ds = self._scaled(batch)
        slope = 2 * s * ds * np.sign(batch.bell_value)
        return Entropies(s**2, np.zeros(s.shape, dtype=np.int8), s**2, slope[:, None])


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    return backends.register(Toy)


def test_a_registered_backend_gets_every_rate(toy):
    eta_q = abs(float(jb.quantum_bound(*CHSH)))
    h = np.asarray(jb.di_entropy(*CHSH, [0.5 * eta_q, eta_q], method="toy"))
    np.testing.assert_allclose(h, [0.0, 1.0], atol=1e-12)
    ds = jb.rate_curve(*CHSH, num=5, method="toy")
    assert ds.rate_method.item() == "toy" and float(ds.entropy[-1]) == pytest.approx(1.0)
    rate = float(jb.noisy_key_rate(*CHSH, 1.0, x=0, method="toy"))
    assert rate == pytest.approx(1.0 - float(jb.error_correction_cost(
        jb.device_behaviour(*CHSH), 0, 0)), abs=1e-12)  # fmt: skip
    crit = np.asarray(jb.critical_visibility(*CHSH, x=0, method=("qubit", "toy"), options={
        "qubit": LOOSE}))  # fmt: skip
    assert 1 / np.sqrt(2) < crit[0] <= crit[1] < 1  # the attack's threshold below the bound's
    eff = float(jb.critical_efficiency(*CHSH, x=0, bob_key="aligned", method="toy"))
    assert 0.5 < eff < 1
    curve = jb.noisy_rate_curve(*CHSH, [0.9, 1.0], kind="key", x=0, method=["qubit", "toy"],
                                options={"qubit": LOOSE})  # fmt: skip
    assert "noisy_key_rate_gap" in curve and "critical_visibility_gap" in curve
    beh = jb.device_behaviour(*CHSH, visibility=0.99, bob_key="aligned")
    mtf = jb.min_tradeoff_functions(beh, bell=CHSH, method="toy")
    assert mtf.certified and mtf.method == "toy"
    assert (
        float(jb.finite_key_rate(beh, 1e12, bell=CHSH, min_tradeoff=mtf, bob_key="aligned")) > 0.3
    )
    fin = jb.finite_rate_curve(beh, [1e8, 1e12], bell=CHSH, method="toy", bob_key="aligned")
    assert bool(fin.attrs["certified"]) and fin.attrs["rate_method"] == "toy"
    assert float(jb.observed_key_rate(beh, bell=CHSH, method="toy", bob_key="aligned")) > 0.3


def test_a_registered_backend_is_a_command_line_choice(toy, tmp_path, capsys):
    out = tmp_path / "noise.nc"
    args = ["--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4", "--no-progress"]
    assert main(["noise", *args, "--visibility", "0.9:1:3", "--kind", "key", "--x", "0",
                 "--method", "toy", "--out", str(out)]) == 0  # fmt: skip
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.rate_method.item() == "toy" and np.isfinite(ds.critical_visibility).all()
    assert "wrote" in capsys.readouterr().out
    out = tmp_path / "finite.nc"
    assert main(["finite", *args, "--visibility", "0.99", "--rounds", "1e8,1e12",
                 "--method", "toy", "--out", str(out)]) == 0  # fmt: skip
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.attrs["rate_method"] == "toy" and bool(ds.attrs["certified"])
    assert "(certified)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["noise", "--help"])
    assert "toy: a toy certified bound (tests)" in " ".join(capsys.readouterr().out.split())


def test_unsupported_combinations_are_errors_not_fallbacks(toy):
    for kw, what in (
        ({"preprocessing": 0.1}, "preprocessing"),
        ({"constraint": "correlators"}, "constraint 'correlators'"),
    ):
        with pytest.raises(NotImplementedError, match=f"method 'toy' does not support {what}"):
            jb.noisy_key_rate(*CHSH, 0.95, x=0, method="toy", **kw)
    with pytest.raises(NotImplementedError, match="kind 'global'"):
        jb.noisy_global_rate(*CHSH, 0.95, method="toy")
    with pytest.raises(ValueError, match="affine bounds"):
        jb.min_tradeoff_functions(jb.device_behaviour(*CHSH, bob_key=2), bell=CHSH,
                                  method="attack")  # fmt: skip


def test_the_registry_declares_the_three_backends():
    q, a, b = (backends.get(n) for n in ("qubit", "attack", "bff"))
    assert (q.bound, a.bound, b.bound) == ("upper", "upper", "lower")
    assert b.certificate and not q.certificate and not a.certificate
    assert set(a.constraints) == {"correlators", "full"} and q.preprocessing and b.preprocessing
    assert dict(jb.rates.BOUNDS) == {"qubit": "upper", "bff": "lower", "attack": "upper"}
    with pytest.raises(ValueError, match=r"method must be one of \['bff', 'qubit'\]"):
        backends.get("sdp")


# --- Protocol and Device ----------------------------------------------------------------------


def test_values_give_the_bits_of_the_keywords():
    v = np.array([0.9, 0.97])
    kw = {"x": 0, "bob_key": "aligned", "preprocessing": 0.1}
    a = jb.noisy_key_rate(*CHSH, v, **kw, options=LOOSE)
    b = jb.noisy_key_rate(*CHSH, protocol=jb.Protocol(**kw), device=jb.Device(visibility=v),
                          options=LOOSE)  # fmt: skip
    np.testing.assert_array_equal(a, b)
    a = jb.noisy_key_rate(*CHSH, 0.99, x=0, efficiency=0.95, bob_key=2, options=LOOSE)
    b = jb.noisy_key_rate(*CHSH, protocol=jb.Protocol(x=0, bob_key=2), options=LOOSE,
                          device=jb.Device(visibility=0.99, efficiency=0.95))  # fmt: skip
    np.testing.assert_array_equal(a, b)
    a = jb.critical_visibility(*CHSH, x=0, options=LOOSE)
    b = jb.critical_visibility(*CHSH, protocol=jb.Protocol(x=0, bob_key=None), options=LOOSE)
    np.testing.assert_array_equal(a, b)
    eta = 0.9 * abs(float(jb.quantum_bound(*CHSH)))
    a = jb.di_entropy(*CHSH, eta, kind="global", x=1, y=0, options=LOOSE)
    b = jb.di_entropy(*CHSH, eta, protocol=jb.Protocol(kind="global", x=1, y=0), options=LOOSE)
    np.testing.assert_array_equal(a, b)
    beh = jb.device_behaviour(*CHSH, visibility=0.95, bob_key="aligned")
    a = jb.observed_key_rate(beh, bell=CHSH, preprocessing=0.05, options=LOOSE, bob_key="aligned")
    b = jb.observed_key_rate(beh, bell=CHSH, protocol=jb.Protocol(x=0, bob_key=2,
                             preprocessing=0.05), options=LOOSE)  # fmt: skip
    np.testing.assert_array_equal(a, b)
    mtf = jb.min_tradeoff_functions(beh, bell=CHSH, method="qubit", options=LOOSE)
    a = jb.finite_key_rate(beh, 1e9, bell=CHSH, min_tradeoff=mtf, bob_key="aligned")
    b = jb.finite_key_rate(beh, 1e9, bell=CHSH, min_tradeoff=mtf, protocol=jb.Protocol(bob_key=2))
    np.testing.assert_array_equal(a, b)


def test_values_are_checked_where_built_and_name_the_field():
    with pytest.raises(ValueError, match="bob_key"):
        jb.Protocol(bob_key="left")
    with pytest.raises(ValueError, match="preprocessing"):
        jb.Protocol(preprocessing=0.7)
    with pytest.raises(ValueError, match="constraint must be one of"):
        jb.Protocol(constraint="all")
    with pytest.raises(ValueError, match="x must be"):
        jb.Protocol(x=2)
    with pytest.raises(ValueError, match="kind"):
        jb.Protocol(kind="keys")
    with pytest.raises(ValueError, match="visibility"):
        jb.Device(visibility=1.2)
    with pytest.raises(ValueError, match="efficiency"):
        jb.Device(efficiency=0.0)
    assert jb.Protocol(bob_key="aligned").bob_key == 2
    assert jb.Protocol(x=None).inputs == (0, 1)
    with pytest.raises(TypeError, match="not both"):
        jb.noisy_key_rate(*CHSH, 0.9, x=1, protocol=jb.Protocol(x=0))
    with pytest.raises(TypeError, match="not both"):
        jb.noisy_key_rate(*CHSH, 0.9, device=jb.Device(visibility=0.9))
    with pytest.raises(TypeError, match="needs visibility"):
        jb.noisy_key_rate(*CHSH)
    with pytest.raises(TypeError, match="jaxbell.Protocol"):
        jb.noisy_key_rate(*CHSH, 0.9, protocol={"x": 0})


def test_values_are_pytrees():
    p, d = jb.Protocol(x=0, bob_key=2, preprocessing=0.1), jb.Device(visibility=[0.9, 0.95])
    assert jax.tree_util.tree_leaves(p) == [] and hash(p) == hash(jb.Protocol(0, 2, 0.1))
    assert len(jax.tree_util.tree_leaves(d)) == 2

    @jax.jit
    def scaled(protocol, device):  # the protocol is static, the device traced
        return device.visibility * device.efficiency * (1 - 2 * protocol.preprocessing)

    np.testing.assert_allclose(scaled(p, d), np.array([0.9, 0.95]) * 0.8)
    assert jb.Device(visibility=0.9) == jb.Device(visibility=0.9)
