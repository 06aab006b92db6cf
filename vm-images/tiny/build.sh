#!/usr/bin/env bash
# Builds the tiny viopool guest from Debian packages only: Debian's stock
# kernel (linux-image-amd64) and an initramfs holding busybox-static, the
# virtio drivers (and the generic modules they need) in dependency order,
# a static AF_ALG helper and the test agent (init). Nothing here is committed:
# the output goes to the build directory.
#   vm-images/tiny/build.sh OUTDIR [KERNEL_VERSION]
# OUTDIR gets vmlinuz, initramfs.img and modules.txt (the modules inside).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build.sh OUTDIR [KERNEL_VERSION]}
KVER=${2:-}
if [ -z "$KVER" ]; then
  # The newest Debian kernel that has both its image and its modules.
  for v in $(ls /lib/modules 2>/dev/null | sort -V -r); do
    if [ -f "/boot/vmlinuz-$v" ] && [ -f "/lib/modules/$v/modules.dep" ]; then KVER=$v; break; fi
  done
fi
[ -n "$KVER" ] || { echo "build.sh: no kernel found: install linux-image-amd64 (scripts/install-deps)" >&2; exit 1; }
BUSYBOX=$(command -v busybox) || { echo "build.sh: busybox-static is missing (scripts/install-deps)" >&2; exit 1; }
file -L "$BUSYBOX" 2>/dev/null | grep -q "statically linked" || { echo "build.sh: $BUSYBOX is not static (install busybox-static)" >&2; exit 1; }

# What the guest loads; their dependencies come from modinfo.
# 9p: the "host" check mounts the host's root read-only and runs a program from it.
WANTED=(virtio_pci virtio_net virtio_blk virtio_crypto algif_skcipher netfs fscache 9pnet 9pnet_virtio 9p)

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,sbin,proc,sys,dev,tmp,lib/modules} "$OUT"

# Dependency order: depth-first over modinfo's "depends", each module once.
ORDER=()
declare -A SEEN=()
visit() {
  local m=$1
  [ -n "${SEEN[$m]:-}" ] && return
  SEEN[$m]=1
  local deps
  deps=$(modinfo -k "$KVER" -F depends "$m") || { echo "build.sh: no module $m in $KVER" >&2; exit 1; }
  local d
  for d in ${deps//,/ }; do visit "$d"; done
  ORDER+=("$m")
}
for m in "${WANTED[@]}"; do visit "$m"; done

: > "$STAGE/lib/modules/load.order"
for m in "${ORDER[@]}"; do
  f=$(modinfo -k "$KVER" -n "$m")
  case $f in
    *.ko) cp "$f" "$STAGE/lib/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" > "$STAGE/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$STAGE/lib/modules/$m.ko" ;;
    *) echo "build.sh: $m is built in or unknown ($f)" >&2; exit 1 ;;
  esac
  echo "$m" >> "$STAGE/lib/modules/load.order"
done

cp "$BUSYBOX" "$STAGE/bin/busybox"
for app in $("$BUSYBOX" --list); do
  [ "$app" = busybox ] || ln -sf busybox "$STAGE/bin/$app"
done
gcc -static -O2 -Wall -Wextra -Werror -o "$STAGE/bin/afalg-kat" "$HERE/afalg_kat.c"
install -m 0755 "$HERE/init" "$STAGE/init"

(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -9 > "$OUT/initramfs.img.tmp"
mv "$OUT/initramfs.img.tmp" "$OUT/initramfs.img"
cp "/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
printf '%s\n' "${ORDER[@]}" > "$OUT/modules.txt"
echo "$KVER" > "$OUT/kernel-version"
echo "build.sh: $OUT/initramfs.img ($(du -h "$OUT/initramfs.img" | cut -f1)), kernel $KVER, ${#ORDER[@]} modules"
