"""The app's Hydra plugins: Hydra builds a sweeper only from the ``hydra_plugins`` package."""
