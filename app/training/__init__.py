"""The job side: a run is built (``build``), then run (``fit``), in a run dir it holds.

Imports torch (inside ``runtime``'s functions only, which every ``hydra_main`` shares), and
nothing of ``app.checks`` or ``app.launch``: a job trusts the config the launch check passed.
"""
