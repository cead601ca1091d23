"""Peer-harness plugin: mountfs (one finalized version served by ``mountfsd``) as one more system.

    . ../shared/peers/env.sh
    peers run --plugin bench/peers_mountfs.py --systems local,boto3-direct,juicefs-default,mountfs

Registers ``mountfs`` (opt-in: ``default=False``; name it in ``--systems`` or use ``all``).

- ingest (timed by the harness): the mountfs SDK, in mountfs's own venv (the
  harness runs plugins in its tools venv, which has no mountfs), puts
  ``ctx.dataset_dir`` into bucket ``mountfs`` of the harness's SeaweedFS as one
  version: ``Dataset.create`` + ``add_files`` + ``upload`` + ``finalize``.  The
  version id goes to ``<work>/dataset-id``.
- mount: ``mountfsd --mountpoint <work>/mnt --dataset <id>`` in the foreground,
  through ``sh -c 'exec ...'`` because the id exists only after ingest while the
  Plan is built before it.  ``exec`` keeps the PID the harness records (and
  SIGTERMs) the daemon's own.  ``images/`` and ``large/`` are at the mountpoint's
  root (``data_subdir=""``).
- settings by environment only (nothing in ``~`` or ``/run``): ``MOUNTFS_STORE``,
  ``MOUNTFS_CONFIG`` (a TOML file in the work dir with this SeaweedFS's keys under
  ``[s3.hosts."127.0.0.1:PORT"]``), ``MOUNTFS_CACHE_DIR`` and ``MOUNTFS_RUN_DIR``
  under the work dir.  ``clear_cache`` removes the cache dir: chunks *and* the
  imported file table, so a mount is cold (it downloads and imports the manifest).

``MOUNTFS_VENV`` overrides where mountfs's venv is (default: this repository's ``.venv``).
"""
import os
import shlex

from common import Plan, rmtree, system

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("MOUNTFS_VENV", os.path.join(REPO, ".venv"))
PYTHON = os.path.join(VENV, "bin", "python")
MOUNTFSD = os.path.join(VENV, "bin", "mountfsd")
BUCKET = "mountfs"

# run in mountfs's venv: one version from a folder, id printed last
_INGEST = r"""
import json, sys, time
from mountfs import Dataset
src = sys.argv[1]
t0 = time.perf_counter()
ds = Dataset.create(dataset_name="peers", dataset_project="bench")
n = ds.add_files(src)
t1 = time.perf_counter()
ds.upload(show_progress=False)
t2 = time.perf_counter()
ds.finalize()
t3 = time.perf_counter()
print(json.dumps({"id": ds.id, "files": n, "add_s": round(t1 - t0, 2), "upload_s": round(t2 - t1, 2),
                  "finalize_s": round(t3 - t2, 2)}))
"""


@system("mountfs", "mountfsd --dataset <id>: one mountfs version, chunks fetched lazily from S3 into an LMDB-indexed cache",
        default=False)
def mountfs(ctx):
    for path in (PYTHON, MOUNTFSD):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} not found: set MOUNTFS_VENV to mountfs's venv")
    mnt = os.path.join(ctx.work_dir, "mnt")
    cache = os.path.join(ctx.work_dir, "cache")
    run_dir = os.path.join(ctx.work_dir, "run")
    id_file = os.path.join(ctx.work_dir, "dataset-id")
    config = os.path.join(ctx.work_dir, "mountfs.toml")
    host = ctx.endpoint.split("://", 1)[1]  # 127.0.0.1:28333
    store = f"s3://{host}/{BUCKET}/store"
    with open(config, "w") as fh:
        fh.write(f'[s3.hosts."{host}"]\nkey = "{ctx.access_key}"\nsecret = "{ctx.secret_key}"\n'
                 f'secure = false\nregion = "{ctx.region}"\n')
    env = dict(MOUNTFS_STORE=store, MOUNTFS_CONFIG=config, MOUNTFS_CACHE_DIR=cache, MOUNTFS_RUN_DIR=run_dir)

    def ingest():
        import json
        ctx.ensure_bucket(BUCKET)
        ingest_cache = os.path.join(ctx.work_dir, "ingest-cache")
        # a caller's MOUNTFS_* must not leak in; only ours
        full = {k: v for k, v in os.environ.items() if not k.startswith("MOUNTFS_")}
        full.update(env, MOUNTFS_CACHE_DIR=ingest_cache)
        try:
            out = ctx.run([PYTHON, "-c", _INGEST, ctx.dataset_dir], env=full)
        finally:
            rmtree(ingest_cache)
        doc = json.loads(out.strip().splitlines()[-1])
        with open(id_file, "w") as fh:
            fh.write(doc["id"] + "\n")
        return dict(method="mountfs SDK create+add_files+upload+finalize", store=store, **doc)

    script = f'exec {shlex.quote(MOUNTFSD)} --mountpoint "$1" --dataset "$(cat "$2")"'
    return Plan(
        mount_cmd=["sh", "-c", script, "mountfsd", mnt, id_file],
        mountpoint=mnt,
        ingest_fn=ingest,
        cleanup=lambda: (rmtree(cache), rmtree(run_dir)),
        ingest_key="mountfs",
        clear_cache=lambda: rmtree(cache),
        data_subdir="",
        env=env,
    )
