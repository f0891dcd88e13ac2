"""``loadgen report``: a self-contained HTML report (and a PNG) of one or more stream runs."""
