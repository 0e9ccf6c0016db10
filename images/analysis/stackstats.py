"""Summaries of numbers, for the example stack's analysis image."""
import statistics

__all__ = ["summarize"]


def summarize(values):
    """Count, mean, median and (sample) standard deviation of `values`."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarize")
    return {
        "count": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }
