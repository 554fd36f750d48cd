"""The eval suite: how much does retrieved evidence buy a small model on knowledge benchmarks?

`benchmarks` loads questions, `conditions` says where evidence comes from,
`runner` answers every question under every condition through the same
`rag.orchestrator.retrieve` and `answer` path the CLI uses, `metrics` scores, `report` summarises.
Nothing heavy is imported here, so `rag --help` stays fast.
"""
