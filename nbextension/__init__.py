"""cudaspawner notebook side: GPU status and verification in the Jupyter server."""
