"""Training: losses, samplers, optimiser, callbacks and the fit orchestration."""
