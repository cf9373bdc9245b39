"""The webhook's lock-free counter and histogram expose exactly what prometheus_client's own
would after the same increments and observations."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from jitgate.webhook.metrics import LATENCY_BUCKETS, LoopCounter, LoopHistogram
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric

AMOUNTS = st.lists(st.sampled_from(LATENCY_BUCKETS) | st.floats(), max_size=30)


def _samples(metric: Metric) -> list[tuple[str, dict[str, str], str]]:
    # NaN sums compare by their text, as a scrape shows them; `_created` differs by the clock.
    return [
        (sample.name, sample.labels, repr(sample.value))
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]


@given(amounts=AMOUNTS)
def test_a_loop_histogram_exposes_what_a_histogram_does(amounts: list[float]) -> None:
    exposed = []
    for kind in (Histogram, LoopHistogram):
        histogram = kind("h", "h", ["e"], buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
        child = histogram.labels("validate")
        for amount in amounts:
            child.observe(amount)
        exposed.append([_samples(metric) for metric in histogram.collect()])
    assert exposed[0] == exposed[1]


@given(amounts=st.lists(st.floats(min_value=0, allow_infinity=False), max_size=30))
def test_a_loop_counter_exposes_what_a_counter_does(amounts: list[float]) -> None:
    exposed = []
    for kind in (Counter, LoopCounter):
        counter = kind("c", "c", ["a"], registry=CollectorRegistry())
        for amount in amounts:
            counter.labels("exec").inc(amount)
        counter.labels("exec").inc()
        exposed.append([_samples(metric) for metric in counter.collect()])
    assert exposed[0] == exposed[1]
