#!/usr/bin/env bash
# The installed package as another program sees it: `cmake --install` into a scratch prefix, then
# examples/fuse_pair and examples/fuse_volume built against it with find_package(efcnet), fusing
# the phantom pair of images and of volumes with the installed default weights exactly as the
# installed `efcnet fuse` does.
#   consumer_test.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 source=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
for file in include/efcnet/efcnet.h include/efcnet/error.h include/efcnet/version.h \
            include/efcnet/volume_fusion.h lib/cmake/efcnet/efcnetConfig.cmake \
            share/efcnet/models/efcnet_default.pth share/efcnet/models/models.tsv bin/efcnet; do
  [ -e "$work/prefix/$file" ] || { echo "consumer_test: $file was not installed" >&2; exit 1; }
done
for example in fuse_pair fuse_volume; do
  cmake -S "$source/examples/$example" -B "$work/$example" -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" || { cat "$work/configure.log" >&2; exit 1; }
  cmake --build "$work/$example" -j 2 >"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
done

models=$work/prefix/share/efcnet/models
"$work/prefix/bin/efcnet" phantom --out-dir "$work/phantom" --size 64 >/dev/null
"$work/fuse_pair/fuse_pair" "$work/phantom/anatomical.png" "$work/phantom/functional.png" "$work/consumer.png" \
  "$models/efcnet_default.pth" "$models/seem_default.pth"
"$work/prefix/bin/efcnet" fuse --anatomical "$work/phantom/anatomical.png" --functional "$work/phantom/functional.png" \
  --output "$work/cli.png" >/dev/null
cmp "$work/consumer.png" "$work/cli.png"

"$work/prefix/bin/efcnet" phantom --volume --out-dir "$work/volumes" --size 48 --slices 4 >/dev/null
"$work/fuse_volume/fuse_volume" "$work/volumes/anatomical.nii.gz" "$work/volumes/functional.nii.gz" \
  "$work/consumer.nii.gz" "$models/efcnet_default.pth" "$models/seem_default.pth"
"$work/prefix/bin/efcnet" fuse --anatomical "$work/volumes/anatomical.nii.gz" \
  --functional "$work/volumes/functional.nii.gz" --output "$work/cli.nii.gz" 2>/dev/null
cmp "$work/consumer.nii.gz" "$work/cli.nii.gz"
echo "consumer_test: the examples built against the installed package fuse as the installed efcnet does"
