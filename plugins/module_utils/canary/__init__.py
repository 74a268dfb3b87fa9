"""The canary judge: per-metric classifiers, a weighted scorer and a threshold verdict.

stats        Mann-Whitney U (scipy), Hodges-Lehmann shift and bounds, Wilson/Newcombe, Fisher
metrics      metric definitions, the data the judge takes, the reference app's default set
classifiers  one classifier per metric kind: pass, fail or inconclusive, with the reason
scorer       weighted score 0..100 and the verdict: pass, marginal, fail or inconclusive
judge        the entry point: judge(specs, data, config)
analysis     fetches each metric from Prometheus for both colours, then judges
report       the self-contained HTML report

Plain Python; no Ansible imports.
"""
