"""Scrapes a meshnode /metrics endpoint and parses it with the Prometheus project's own
client library (prometheus_client's OpenMetrics parser), as a Prometheus server would.

Usage: metrics_parse.py METRICS_URL

Prints one JSON object: {"content_type": ..., "families": {name: {"type": ..., "samples":
[[sample name, labels, value], ...]}}}. A reply that does not parse raises, so the process
exits non-zero.
"""
import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main() -> None:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=30) as r:
        content_type = r.headers.get("Content-Type")
        text = r.read().decode("utf-8")
    families = {}
    for f in text_string_to_metric_families(text):
        families[f.name] = {
            "type": f.type,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
    print(json.dumps({"content_type": content_type, "families": families}))


if __name__ == "__main__":
    main()
