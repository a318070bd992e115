"""FreSh: choose an embedding configuration before training by comparing the spectrum of the
untrained model's output with the target's (spec/fresh.md).

    >>> from inrlab.fresh import select
    >>> res = select("astronaut", "siren", "model.activation.omega0_first", range(10, 201, 10))
    >>> res.best, res.ranking()[:3]
"""

from .select import FreshResult, parse_sweep, select, select_and_fit
from .spectrum import BINNINGS, spectrum_vector, spectrum_vectors, wasserstein

__all__ = ["FreshResult", "parse_sweep", "select", "select_and_fit", "BINNINGS", "spectrum_vector",
           "spectrum_vectors", "wasserstein"]
