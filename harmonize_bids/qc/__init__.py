"""Quality control: metrics, figures and HTML reports."""
