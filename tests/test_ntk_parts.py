"""eNTK definitions (inrlab.ntk.parts): parts of the parameters add up to the full kernel, the
NTK parameterization re-weights weight shares by 1/fan-in, and kernel moments."""

import numpy as np
import pytest
import torch

from inrlab.errors import InrlabError
from inrlab.ntk import kernel
from inrlab.ntk.compare import model_spectrum
from inrlab.ntk.jacobian import jacobian
from inrlab.ntk.parts import definition_kernel, parameter_kernel
from inrlab.ntk.spectrum import kernel_moments
from tests.test_ntk import rel, small_model


@pytest.fixture
def points():
    return torch.rand(20, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1


@pytest.mark.parametrize("name,norm", [("relu", "layer"), ("mpe", "none"), ("relu", "batch")])
def test_parts_add_up_to_the_full_kernel(name, norm, points):
    model = small_model(name, norm, out_dim=1)
    full = kernel(model, points)
    hidden = definition_kernel(model, points, "hidden")
    head = definition_kernel(model, points, "head")
    assert rel(hidden + head, full) < 1e-10
    affine = parameter_kernel(model, points, lambda n: n.startswith("norms."))
    assert rel(definition_kernel(model, points, "no_affine") + affine, full) < 1e-10
    assert (norm == "none") == (float(affine.abs().max()) == 0.0)


def test_ntk_param_divides_each_weight_share_by_its_fan_in(points):
    """Against the Jacobian with each linear weight's columns scaled by 1/√fan-in."""
    model = small_model("ffe", out_dim=1).double()
    jac = []
    for name, p in model.named_parameters():
        m = small_model("ffe", out_dim=1).double()
        m.load_state_dict(model.state_dict())
        for n, q in m.named_parameters():
            q.requires_grad_(n == name)
        j = jacobian(m, points.double(), torch.ones(1, 1, dtype=torch.float64))[:, 0]
        jac.append(j / (p.shape[1] ** 0.5 if p.ndim == 2 else 1.0))
    j = torch.cat(jac, 1)
    assert rel(definition_kernel(model, points, "ntk_param"), j @ j.T) < 1e-10
    # and it is the full kernel only when every fan-in is 1
    assert rel(definition_kernel(model, points, "ntk_param"), kernel(model, points)) > 0.1


def test_bad_definition(points):
    with pytest.raises(InrlabError, match="unknown eNTK definition 'nope'"):
        definition_kernel(small_model("relu"), points, "nope")


def test_kernel_moments_and_model_spectrum_fields(points):
    k = np.array([[2.0, 1.0, 0.0], [1.0, 4.0, -1.0], [0.0, -1.0, 3.0]])
    m = kernel_moments(k)
    assert m["diag_mean"] == pytest.approx(3.0) and m["offdiag_mean"] == pytest.approx(0.0)
    s = model_spectrum(small_model("relu", out_dim=1), points, definition="head")
    assert s["diag_mean"] == pytest.approx(s["mean"]) and "offdiag_mean" in s
