#!/usr/bin/env bash
# Builds the `bss:latest` image FROM scratch, with no registry: the release binary plus the few
# shared libraries it links (glibc, libm, libgcc_s) and the dynamic loader, copied from this host.
#   bash cluster/docker/build.sh                  # builds the release binary first
#   BSS_BIN=target/debug/bss bash cluster/docker/build.sh   # an image of a binary already built
#   BSS_IMAGE=bss:test …                          # another tag than bss:latest
set -euo pipefail
cd "$(dirname "$0")/../.."
# Git keeps no file modes but the executable bit; nodes refuse key files others can read.
chmod 600 configs/federation/operator*.key configs/compose/pop*.key
if [ -n "${BSS_BIN:-}" ]; then
  bin=$BSS_BIN
else
  cargo build --release -p bss-cluster
  bin=target/release/bss
fi
root=target/docker-rootfs
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/data"
cp "$bin" "$root/usr/local/bin/bss"
# The loader and every library `ldd` names, at the same paths.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cat > "$root/../docker-rootfs.Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY . /
ENTRYPOINT ["/usr/local/bin/bss"]
DOCKERFILE
image=${BSS_IMAGE:-bss:latest}
docker build -q -t "$image" -f target/docker-rootfs.Dockerfile "$root"
echo "built $image"
