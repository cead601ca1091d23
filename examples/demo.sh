#!/usr/bin/env bash
# The README's first command runs this: version a small dataset on the embedded
# default store (a local folder, no server), then read it back.
set -euo pipefail

work=$(mktemp -d -t mountfs-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
echo "== store: ${MOUNTFS_STORE:-the default folder under your data dir}"
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
