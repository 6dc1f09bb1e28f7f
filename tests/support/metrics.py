"""`GET /metrics` as Prometheus scrapes it: over HTTP, read with the client library's own parser."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.support.slack_signing import get

# Every label value sesguard may put on a series: its own words and the source's name from the settings.
SESGUARD_WORDS = {"low", "medium", "high", "critical", "new", "contacting", "confirmed", "escalated", "closed",
                  "suppressed", "waiting", "accepted", "rejected", "superseded", "pending", "gathered", "posted",
                  "failed", "yes", "no", "timeout", "undelivered", "other"}


@dataclass
class Scraped:
    text: str
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]]  # sample name → its labels → value
    types: dict[str, str]  # family name → counter, gauge, histogram…

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][tuple(sorted(labels.items()))]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the series of `name` that carry these labels (among others)."""
        return sum(value for key, value in self.samples.get(name, {}).items() if set(labels.items()) <= set(key))

    def label_values(self, *ignored: str) -> set[str]:
        """Every label value on every series, but those of the client library's own metrics and `ignored`."""
        return {value for name, series in self.samples.items() if name.startswith("sesguard_")
                for key in series for label, value in key if label not in ignored}


def scrape(url: str) -> Scraped:
    reply = get(url)
    assert reply.status == 200, reply
    text = reply.body.decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return Scraped(text, samples, types)
