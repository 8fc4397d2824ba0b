"""The ``feedbackloop`` command line, one module per command group."""
