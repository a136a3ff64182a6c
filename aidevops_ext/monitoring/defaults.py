"""Default monitoring settings, shared by the drift and quality monitors and the rule parser (no imports)."""

DEFAULT_MIN_ROWS = 200
DEFAULT_PSI_BANDS = (0.1, 0.25)
DEFAULT_ALPHA = 0.01
DEFAULT_WASSERSTEIN_THRESHOLD = 0.1  # reference stds: a tenth of a std is material (half of Cohen's "small")
DEFAULT_MISSING_THRESHOLD = 0.05  # absolute change in the missing rate
DEFAULT_MIN_LABELS = 100
