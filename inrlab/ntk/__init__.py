"""Empirical NTK: kernels (structured and Jacobian routes), kernel–vector products, spectra."""

from .kernel import METHODS, kernel, kernel_matvec, measurement_kernel, resolve_method
from .spectrum import eigenvector_frequencies, eigh, lanczos, report, summary

__all__ = ["METHODS", "kernel", "kernel_matvec", "measurement_kernel", "resolve_method", "eigh",
           "summary", "report", "eigenvector_frequencies", "lanczos"]
