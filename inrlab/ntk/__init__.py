"""Empirical NTK: kernels (structured and Jacobian routes), kernel–vector products, spectra."""

from .kernel import METHODS, kernel, kernel_matvec, measurement_kernel, resolve_method
from .patch import patch_kernel
from .spectrum import eigenvector_frequencies, eigh, lanczos, report, summary

__all__ = ["METHODS", "kernel", "kernel_matvec", "measurement_kernel", "resolve_method",
           "patch_kernel", "eigh",
           "summary", "report", "eigenvector_frequencies", "lanczos"]
