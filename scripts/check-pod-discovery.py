#!/usr/bin/env python3
"""check-deploy's test of prometheus.yml's pod-discovery job (ffmpeg-processor-pods).

Reads `promtool check service-discovery` output (JSON, stdin) for the job run over deploy/prometheus/pods_test.json,
the discovery metadata Kubernetes gives pods (`__meta_kubernetes_*`), served by file discovery. Every pod named
kept-* must be scraped at its IP on the annotated port and path, with the `namespace` and `pod` labels the
prometheus-adapter rule maps to the HPA's pods; every other pod must be dropped."""
import json
import sys

failures = []
targets = json.load(sys.stdin)
for target in targets:
    found, labels = target["discoveredLabels"], target["labels"]
    name = found["__meta_kubernetes_pod_name"]
    if name.startswith("kept-"):
        ip = found["__address__"].split(":")[0]
        expected = {"namespace": found["__meta_kubernetes_namespace"], "pod": name,
                    "__address__": f"{ip}:3000", "__metrics_path__": "/metrics"}
        wrong = {key: labels.get(key) for key, value in expected.items() if labels.get(key) != value}
        if wrong:
            failures.append(f"{name}: expected {expected}, got {wrong}")
    elif labels:
        failures.append(f"{name}: scraped, but should be dropped")
    if labels:
        print(f"{name}: scraped as {labels.get('__address__')}{labels.get('__metrics_path__')},"
              f" namespace={labels.get('namespace')} pod={labels.get('pod')}")
    else:
        print(f"{name}: dropped")
if len(targets) < 6:
    failures.append(f"{len(targets)} pods discovered, expected every pod of pods_test.json")
for failure in failures:
    print("FAIL:", failure)
sys.exit(1 if failures else 0)
