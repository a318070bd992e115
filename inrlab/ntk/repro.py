"""Removed: ``python -m inrlab.ntk.repro`` became the sweep files configs/papers/ntk_*.toml."""

import sys

if __name__ == "__main__":
    sys.exit("inrlab: error: `python -m inrlab.ntk.repro` is gone: run "
             "`inrlab sweep run configs/papers/ntk_multigrid.toml` (or ntk_norms.toml)")
