"""Backend implementations; the contract and the name -> factory dict live in sca.generate.backend."""
