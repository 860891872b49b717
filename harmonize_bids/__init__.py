"""harmonize_bids: diffusion-model contrast harmonization of T1w MRI between field strengths."""

__version__ = "0.1.0"
CODE_URL = "https://github.com/harmonize-bids/harmonize_bids"
