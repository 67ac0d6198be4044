"""The benchmark suite: ``python -m benchmarks [--quick] [--json PATH] [--plot PATH]``.

Every figure is taken beside a baseline measured in the same run (a bare relay, or a client
talking to the simulator directly), with the proxy, the upstream and the load generators each in
a process of its own on 127.0.0.1. See ``docs/benchmarks.md``.
"""
