"""Empirical NTK: kernels (structured and Jacobian routes), kernel–vector products, spectra."""

from .kernel import METHODS, kernel, kernel_matvec, resolve_method

__all__ = ["METHODS", "kernel", "kernel_matvec", "resolve_method"]
