#!/usr/bin/env bash
# The README's first command runs this: version a small dataset on the embedded
# default store (a local folder, no server), then read it back.
set -euo pipefail

work=$(mktemp -d -t mountfs-demo.XXXXXX)
cleanup() {
  if grep -qs " $work/datasets " /proc/mounts; then mountfs umount "$work/datasets" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
samples="$work/samples"
mkdir -p "$samples/train" "$samples/val"
python3 - "$samples" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for split, n in (("train", 40), ("val", 10)):
    for i in range(n):
        with open(os.path.join(root, split, f"img_{i:04d}.bin"), "wb") as fh:
            fh.write(rng.randbytes(rng.randint(20_000, 120_000)))
with open(os.path.join(root, "labels.csv"), "w") as fh:
    fh.write("file,label\n" + "".join(f"train/img_{i:04d}.bin,{i % 3}\n" for i in range(40)))
PY

cd "$work"
store=$(python3 -c 'from mountfs.config import process_config; print(process_config().store)' 2>/dev/null) ||
  store="(unknown: the configuration has an error, which mountfs names below)"
if [ -n "${MOUNTFS_STORE:-}" ]; then
  echo "== store: $store (from MOUNTFS_STORE)"
else
  echo "== store: $store (the default; MOUNTFS_STORE or a config file picks another)"
fi
id=$(mountfs create --project demo --name samples)
echo "== created draft $id"
mountfs add --files "$samples"
mountfs close
echo "== finalized; the catalog now holds:"
mountfs search --project demo
echo "== some files of version $id:"
mountfs list --id "$id" --filter "train/img_000*"
copy=$(mountfs get --id "$id")
echo "== local copy of $id is at: $copy"
diff -r "$samples" "$copy" && echo "== the local copy matches the sample files byte for byte"

echo "== mounting the catalog at $work/datasets (mountfsd)"
mkdir -p "$work/datasets"
mountfsd --mountpoint "$work/datasets" > "$work/mountfsd.log" 2>&1 &
for _ in $(seq 1 300); do
  grep -qs " $work/datasets " /proc/mounts && [ -e "$work/datasets/demo/samples/latest" ] && break
  sleep 0.1
done
version=$(mountfs info --id "$id" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
version_dir="$work/datasets/demo/samples/$version"
echo "== ls -l $version_dir"
ls -l "$version_dir"
echo "== ls $work/datasets/demo/samples  (latest -> $(readlink "$work/datasets/demo/samples/latest"))"
ls "$work/datasets/demo/samples"
diff -r "$samples" "$version_dir" && echo "== every file read through the mount matches the samples"
mountfs umount "$work/datasets"
echo "== unmounted"
