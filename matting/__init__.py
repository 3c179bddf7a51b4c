"""Matting beyond the Layer Diffusion decoder: chroma keying, trimap-based matting (pymatting
solvers), and temporally stable video portrait matting.

Pure numpy / OpenCV / SciPy / pymatting: no torch, no host, no files. pymatting (numba) is
imported only when a solver runs. Modules: ``keying`` (colour-difference keyer), ``trimap_solve``
(image + trimap -> alpha, foreground), ``video`` (frames + masks -> RGBA frames).
"""
