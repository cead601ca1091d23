"""What every bench in ``bench/`` shares, so that each bench script holds only its measurement.

- ``options``: the common command-line options (``--out --work --quick --only --repeat --keep``)
- ``run``: ``BenchRun``, one run's work dir, page-cache drops, data sets, rows and JSON document
- ``data``: the data set sizes and seeded trees, disk usage, copies checked against their source
- ``steps``: measured child processes (wall time, peak RSS, CPU) and bench steps in fresh interpreters
- ``sdk``: the mountfs SDK calls the benches time (ingest, local copy), run inside a step
- ``servers``: the private SeaweedFS, the mountfs settings for a store, bucket helpers
- ``mounts``: ``mountfs mount``/``umount`` of a version and the daemon's probes
- ``procs``: ``/proc`` probes (process CPU and memory, the machine's CPU, page-cache drops)
- ``profile``: ``py-spy`` around a phase of a daemon or attached to a step
- ``report``: summaries, number formats, the result table, the JSON file
- ``machine``: the machine and code a result came from

Standard library only (SeaweedFS comes from ``tests/servers.py``), so a bench
runs wherever mountfs's venv does.
"""
