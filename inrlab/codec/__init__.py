"""Image codecs: the latent codec (an overfitted INR of multiresolution latent grids, a small
synthesis network and a context entropy model, COOL-CHIC / C3 style: ``latent``, ``bitstream``)
and weight quantisation of a trained INR (``weights``, COIN style)."""
